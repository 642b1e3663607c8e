#!/usr/bin/env bash
# The cross-family table of docs/synth.md: one single-task detector per family (cored train),
# each tested on every family's test split (cored eval); prints a Markdown table of ROC-AUC %
# (rows: trained on, columns: tested on). No continual method is run.
#
#   tools/synth_cross.sh DATA OUT ROWS [COLS]     ROWS, COLS: comma-separated task names
#                                                 (COLS defaults to every task in DATA/synth.json)
#
# Training follows the demo's task-1 settings: tiny model at DATA's size, Adam lr 0.002,
# batch 32, 20 epochs, selection by validation AUC (EPOCHS, SEED and THREADS override).
# A row whose OUT/<task>/summary.json exists is not trained again.
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: $0 DATA OUT ROWS [COLS]" >&2; exit 2; }
DATA=$1
OUT=$2
ROWS=$3
PY=/usr/bin/python3
CORED=${CORED:-./cored}
EPOCHS=${EPOCHS:-20}
SEED=${SEED:-2020}
THREADS=${THREADS:+--threads $THREADS}
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}

[ -f "$DATA/synth.json" ] || { echo "$0: $DATA/synth.json not found (make DATA with cored synth)" >&2; exit 1; }
SIZE=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["size"])' "$DATA/synth.json")
COLS=${4:-$($PY -c 'import json,sys; print(",".join(t["name"] for t in json.load(open(sys.argv[1]))["tasks"]))' "$DATA/synth.json")}
mkdir -p "$OUT"

for task in ${ROWS//,/ }; do
    run=$OUT/$task
    if [ ! -f "$run/summary.json" ]; then
        start=$(date +%s)
        "$CORED" train --model tiny --size "$SIZE" --batch 32 --epochs "$EPOCHS" --optimizer adam --lr 0.002 \
            --select auc --seed "$SEED" --data "$DATA" --task "$task" --out "$run" --force --quiet $THREADS
        echo "trained $task in $(( $(date +%s) - start )) s" >&2
    fi
    "$CORED" eval --model "$run/best.safetensors" --data "$DATA" --tasks "$COLS" --json "$run/eval.json" \
        $THREADS >/dev/null
done

$PY - "$OUT" "$ROWS" "$COLS" <<'EOF'
import json, sys
out, rows, cols = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
print("| train \\ test | " + " | ".join(cols) + " |")
print("|---|" + "---:|" * len(cols))
for r in rows:
    res = json.load(open(f"{out}/{r}/eval.json"))["tasks"]
    cells = [("**%.1f**" if c == r else "%.1f") % (100 * res[c]["auc"]) for c in cols]
    print(f"| {r} | " + " | ".join(cells) + " |")
EOF
