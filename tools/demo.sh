#!/usr/bin/env bash
# `make demo`: cored's main job on real photographs, start to finish, on 2 cores in minutes.
#
#   1. real photographs from pinned Debian packages (tools/fetch_real.sh; cached)
#   2. a continual benchmark synthesised from them, one task per forgery family (cached)
#   3. the protocol: the tiny model learns Blend, then Warp, Texture and Upsample with TL,
#      DL, TG and CoReD, every task tested after every step, the report with plots
#
# Settings (environment): DEMO_DIR (build/demo), DEMO_MODEL (tiny), DEMO_SIZE (64),
# DEMO_EPOCHS (20), DEMO_METHODS (tl,dl,tg,cored), DEMO_SEED (1), DEMO_SELECT (acc: model
# selection by validation accuracy, or auc), THREADS (all cores).
# The demo trains with --preset quick (Adam at lr 0.002, batch 32), which converges within
# 20 epochs on these small sets; every command's default is the paper's SGD (lr 0.05,
# momentum 0.1, batch 128).
set -euo pipefail

CORED=${1:-./cored}
DIR=${DEMO_DIR:-build/demo}
MODEL=${DEMO_MODEL:-tiny}
SIZE=${DEMO_SIZE:-64}
EPOCHS=${DEMO_EPOCHS:-20}
METHODS=${DEMO_METHODS:-tl,dl,tg,cored}
SEED=${DEMO_SEED:-1}
SELECT=${DEMO_SELECT:-acc}
THREADS=${THREADS:+--threads $THREADS}
TASKS=Blend,Warp,Texture,Upsample
DATA=$DIR/data-${SIZE}px-seed$SEED
RUN=$DIR/run

# libgomp's threads spin while they wait; on a machine shared with other work that wastes
# whole time slices. A short spin costs little when the machine is idle.
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}

start=$(date +%s)
say() { printf '\n== %s\n' "$*"; }

say "1/3 real photographs from Debian packages (cached in $DIR/cache)"
tools/fetch_real.sh "$DIR/cache" >/dev/null
echo "$DIR/cache/real: $(find "$DIR/cache/real" -type f -name '*.*' ! -name '*.xml' | wc -l) photographs"

say "2/3 the benchmark: one task per forgery family, ${SIZE} px (cached in $DATA)"
if [ -f "$DATA/synth.json" ]; then
    echo "$DATA is ready"
else
    "$CORED" synth --real "$DIR/cache/real" --out "$DATA" --tasks "$TASKS" --size "$SIZE" --per-class 1000 \
        --eval-per-class 100 --transfer-per-class 400 --seed "$SEED" $THREADS --quiet
fi
"$CORED" data "$DATA" 2>/dev/null

say "3/3 the protocol: $MODEL, $TASKS with $METHODS ($EPOCHS epochs per step)"
"$CORED" protocol --data "$DATA" --tasks "$TASKS" --methods "$METHODS" --preset quick --model "$MODEL" \
    --size "$SIZE" --epochs "$EPOCHS" --seed "$SEED" --select "$SELECT" $THREADS \
    --out "$RUN" --force --log-every 1000000

end=$(date +%s)
say "done in $((end - start)) s: $RUN/report.md, plots in $RUN/plots/"
