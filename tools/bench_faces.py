"""Speed of the face pipeline of `cored faces`: decode evenly sampled frames of a 720p H.264
video, detect the faces, crop the largest one as FaceForensics++ does (box x 1.3, square,
256 px), against what a user of the same detector would otherwise run: face-api's own
JavaScript (the npm package @vladmandic/face-api 1.7.15 with its bundled TensorFlow.js, CPU
backend, under Node: tools/face_ref.mjs --bench) on frames the ffmpeg command decodes into a
pipe, cropping with tf.image.cropAndResize.

Rounds alternate the contenders (separate processes): cored on --threads threads and on
one, then the reference on --ref-frames of the same frames (it takes seconds per frame). The
median round of each is reported, with the range, the machine's CPU and load averages, as a
table and as JSON (--json). The video is made once, if missing, by build/bench_video from a
photograph (dlib's bald_guys.jpg: 1986 x 1545, 24 faces; fetched by tools/fetch_real.sh).

    make bench-faces                         # THREADS=1 for one thread
    python3 tools/bench_faces.py --cored ./cored --video-tool build/bench_video --rounds 3
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_json(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def even_frames(n, k):
    """cored's sampling by count: frame floor((i + 1/2) n / k) for i < k."""
    k = min(k, n)
    return [int((i + 0.5) * n // k) for i in range(k)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cored", default=os.path.join(ROOT, "cored"))
    ap.add_argument("--video-tool", default=os.path.join(ROOT, "build", "bench_video"))
    ap.add_argument("--model", default=os.path.join(ROOT, "build", "faces", "ssd_mobilenetv1_face.safetensors"))
    ap.add_argument("--pkg", default=os.path.join(ROOT, "build", "faces", "cache", "face-api-1.7.15"),
                    help="the cached npm package (tools/fetch_faces.sh)")
    ap.add_argument("--video", default=os.path.join(ROOT, "build", "bench", "faces-720p.mp4"))
    ap.add_argument("--photo", default=os.path.join(ROOT, "build", "demo", "cache", "real", "faces", "dlib",
                                                    "bald_guys.jpg"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=32, help="frames per cored pass")
    ap.add_argument("--reps", type=int, default=3, help="passes per cored round (the median pass)")
    ap.add_argument("--ref-frames", type=int, default=3, help="frames per reference round (seconds each)")
    ap.add_argument("--no-ref", action="store_true", help="cored alone")
    ap.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "faces.json"))
    a = ap.parse_args()

    if not os.path.exists(a.video):
        if not os.path.exists(a.photo):
            subprocess.run([os.path.join(ROOT, "tools", "fetch_real.sh"), os.path.join(ROOT, "build", "demo", "cache")],
                           check=True, stdout=subprocess.DEVNULL)
        os.makedirs(os.path.dirname(os.path.abspath(a.video)), exist_ok=True)
        subprocess.run([a.video_tool, a.photo, a.video, "1280", "720", "75", "25"], check=True)
    env = dict(os.environ)
    env.setdefault("GOMP_SPINCOUNT", "10000")  # OpenMP threads that spin steal a shared machine's cores
    ref_ok = not a.no_ref and shutil.which("node") and shutil.which("ffmpeg") and os.path.isdir(a.pkg)
    if not a.no_ref and not ref_ok:
        print("bench_faces: the reference needs node, the ffmpeg command and the npm package "
              f"({a.pkg}: make faces-model); measuring cored alone", file=sys.stderr)

    contenders = [(f"cored, {a.threads} threads", a.threads)]
    if a.threads != 1:
        contenders.append(("cored, 1 thread", 1))
    res = {name: [] for name, _ in contenders}
    ref, loads, info = [], [], None
    for r in range(a.rounds):
        loads.append(os.getloadavg()[0])
        for name, th in contenders:
            j = run_json([a.cored, "bench", "--faces", a.video, "--frames", str(a.frames), "--threads", str(th),
                          "--reps", str(a.reps), "--face-model", a.model, "--json"], env)
            res[name].append(j)
            info = j
            print(f"  round {r + 1}: {name}: {j['frames_per_s']:.2f} frames/s", file=sys.stderr)
        if ref_ok:
            frames = even_frames(info["video_frames"], a.ref_frames)
            j = run_json(["node", os.path.join(ROOT, "tools", "face_ref.mjs"), a.pkg, "--bench", a.video,
                          str(info["width"]), str(info["height"]), ",".join(map(str, frames)), str(info["crop"]),
                          str(info["margin"])])
            j["frames_per_s"] = j["frames"] / j["total_s"]
            ref.append(j)
            print(f"  round {r + 1}: face-api: {j['frames_per_s']:.3f} frames/s", file=sys.stderr)
    loads.append(os.getloadavg()[0])

    def median_round(rounds):
        s = sorted(rounds, key=lambda x: x["frames_per_s"])
        return s[len(s) // 2], s[0]["frames_per_s"], s[-1]["frames_per_s"]

    rows = []
    for name, _ in contenders:
        m, lo, hi = median_round(res[name])
        rows.append({"name": name, "frames_per_s": m["frames_per_s"], "range": [lo, hi], "ms_per_frame": m["ms_per_frame"],
                     "decode_ms": m["decode_ms"], "detect_ms": m["detect_ms"], "crop_ms": m["crop_ms"],
                     "faces_per_frame": m["faces"] / m["frames"], "frames": m["frames"]})
    if ref:
        m, lo, hi = median_round(ref)
        ms = 1e3 / m["frames"]
        rows.append({"name": "face-api 1.7.15 JavaScript (tfjs CPU) + ffmpeg", "frames_per_s": m["frames_per_s"],
                     "range": [lo, hi], "ms_per_frame": m["total_s"] * ms, "decode_ms": m["wait_s"] * ms,
                     "detect_ms": m["detect_s"] * ms, "crop_ms": m["crop_s"] * ms,
                     "faces_per_frame": m["faces"] / m["frames"], "frames": m["frames"]})
    out = {"video": a.video, "width": info["width"], "height": info["height"], "codec": info["codec"],
           "video_frames": info["video_frames"], "crop": info["crop"], "margin": info["margin"], "rounds": a.rounds,
           "cpu": cpu_name(), "cores": os.cpu_count(), "load_average_1min": loads,
           "gomp_spincount": env["GOMP_SPINCOUNT"], "results": rows}
    if ref:
        out["speedup"] = rows[0]["frames_per_s"] / rows[-1]["frames_per_s"]

    print(f"face pipeline (decode + detect + crop of the largest face, {info['crop']} px) on {a.video}: "
          f"{info['width']}x{info['height']} {info['codec']}, {info['video_frames']} frames; "
          f"median of {a.rounds} rounds; {cpu_name()}, {os.cpu_count()} cores, load average "
          f"{min(loads):.1f}-{max(loads):.1f}")
    print(f"{'':48s} {'frames/s':>9s} {'range':>13s} {'ms/frame':>9s} {'decode':>8s} {'detect':>8s} {'crop':>6s} "
          f"{'faces/frame':>11s}")
    for x in rows:
        rng = f"{x['range'][0]:.2f}-{x['range'][1]:.2f}"
        print(f"{x['name'] + ' (' + str(x['frames']) + ' frames)':48s} {x['frames_per_s']:9.3f} {rng:>13s} "
              f"{x['ms_per_frame']:9.1f} {x['decode_ms']:8.1f} {x['detect_ms']:8.1f} {x['crop_ms']:6.2f} "
              f"{x['faces_per_frame']:11.1f}")
    if ref:
        print(f"cored on {a.threads} threads is {out['speedup']:.1f}x face-api's JavaScript "
              f"(decode for face-api: time waiting for ffmpeg's next frame)")
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"JSON: {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
