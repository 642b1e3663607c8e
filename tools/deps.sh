#!/bin/sh
# Installs the Debian packages a make target needs, only when some are missing.
# Usage: tools/deps.sh build|test|fuzz|demo|mpi ...
set -eu

pkgs_build="gcc make libc6-dev libopenblas-dev libopenblas-openmp-dev libcjson-dev libjpeg62-turbo-dev libpng-dev libcairo2-dev pkg-config libavformat-dev libavcodec-dev libswscale-dev libavutil-dev"
pkgs_test="python3 python3-numpy python3-torch python3-sklearn python3-torchvision python3-pil"
pkgs_fuzz="clang libclang-rt-14-dev libomp-14-dev"
pkgs_demo="dpkg-dev"
pkgs_mpi="libopenmpi-dev openmpi-bin"

want=""
for group in "$@"; do
    case "$group" in
    build) want="$want $pkgs_build" ;;
    test) want="$want $pkgs_build $pkgs_test" ;;
    fuzz) want="$want $pkgs_build $pkgs_fuzz" ;;
    demo) want="$want $pkgs_build $pkgs_demo" ;;
    mpi) want="$want $pkgs_build $pkgs_mpi" ;;
    *) echo "deps.sh: unknown group '$group'" >&2; exit 2 ;;
    esac
done

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: not a Debian system; make sure these are installed:$want" >&2
    exit 0
fi

missing=""
for p in $want; do
    case " $missing " in *" $p "*) continue ;; esac
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# Node and npm for the face detector's parity test (tests/parity_faces.py), checked by
# command rather than by package: a Node from elsewhere (nodesource's bundles npm and
# conflicts with Debian's npm package) is used as it is.
for group in "$@"; do
    if [ "$group" = test ]; then
        command -v node >/dev/null 2>&1 || missing="$missing nodejs"
        command -v npm >/dev/null 2>&1 || missing="$missing npm"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
sudo=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "deps: need root to install:$missing" >&2; exit 1
    fi
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
