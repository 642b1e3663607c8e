#!/bin/sh
# Writes the seed corpus of the video fuzz target (fuzz/corpus/video/): tiny videos (32x24,
# a few frames) in the containers and codecs users meet, a rotated MP4, a file without
# video. Needs the ffmpeg command (Debian: apt-get install ffmpeg); the seeds are committed,
# so neither the build nor the fuzz run needs it.
# Usage: tools/make_video_corpus.sh [output folder]
set -eu
out="${1:-fuzz/corpus/video}"
command -v ffmpeg >/dev/null || { echo "make_video_corpus: needs ffmpeg (apt-get install ffmpeg)" >&2; exit 1; }
mkdir -p "$out"
src="-f lavfi -i testsrc=size=32x24:rate=8 -t 0.75"
ff() { ffmpeg -loglevel error -y -bitexact "$@"; }

ff $src -c:v mpeg4 -g 3 -bf 1 -movflags +faststart "$out/mpeg4-faststart.mp4"
ff $src -c:v mpeg4 -g 3 "$out/mpeg4-moov-last.mp4"
ff $src -c:v libx264 -preset veryfast -g 4 -bf 2 -pix_fmt yuv420p "$out/h264.mp4"
ff $src -c:v libx264 -preset veryfast -g 4 -pix_fmt yuv420p "$out/h264.mkv"
ff $src -c:v libx264 -preset ultrafast -pix_fmt yuv420p -f h264 "$out/raw.h264"
ff $src -c:v mjpeg -q:v 5 "$out/mjpeg.avi"
ff $src -c:v mjpeg -q:v 5 -f mjpeg "$out/raw.mjpeg"
ff $src -c:v libvpx -b:v 50k "$out/vp8.webm"
ff $src -c:v mpeg2video -g 3 -f mpegts "$out/mpeg2.ts"
ff $src -c:v flv "$out/flv1.flv"
ff $src "$out/anim.gif"
ff $src -c:v ffv1 -f nut "$out/ffv1.nut"
ff $src -t 0.25 -pix_fmt yuv420p "$out/raw.y4m"
ff $src -c:v libtheora -q:v 3 "$out/theora.ogv"
ff $src -c:v mpeg4 -g 3 "$out/plain.mp4"
ff -i "$out/plain.mp4" -c copy -metadata:s:v rotate=90 "$out/rotated.mov"
rm "$out/plain.mp4"
ff -f lavfi -i sine=frequency=440:sample_rate=8000 -t 0.25 -c:a pcm_u8 "$out/audio-only.wav"
ls -l "$out"
