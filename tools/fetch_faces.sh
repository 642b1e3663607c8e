#!/usr/bin/env bash
# Fetches the trained SSD-MobileNetV1 face detector from a pinned npm package into a cache
# folder, without installing anything:
#
#   tools/fetch_faces.sh CACHE_DIR      ->  CACHE_DIR/face-api-1.7.15/...
#
# The package's tarball is fetched with `npm pack @vladmandic/face-api@1.7.15` into a
# temporary folder and its SHA-256 checked against the pin below; the files used are
# unpacked, each checked by SHA-256, and copied into the cache. A complete cache is detected
# (every file present with its hash) and nothing is downloaded: nothing is fetched at run
# time, only by this script (`make faces-model` runs it once).
#
# What it holds (docs/faces.md):
#   model/ssd_mobilenetv1_model-weights_manifest.json  the weights manifest (tfjs format:
#                                                     names, shapes, uint8 quantisation)
#   model/ssd_mobilenetv1_model.bin                    the weights (5.4 MB)
#   dist/face-api.esm.js                               the package's JavaScript with its
#                                                     bundled TensorFlow.js: the reference
#                                                     that tests/parity_faces.py runs
#   LICENSE                                            MIT (Vladimir Mandic; the model is
#                                                     face-api.js's, MIT, Vincent Muehler)
#
# Exit status: 0 complete; 3 when npm is missing or cannot fetch the package (no network,
# registry unreachable): callers that can live without the detector treat 3 as "skip";
# 1 for anything else (a hash that does not match, a file missing from the package).
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: tools/fetch_faces.sh CACHE_DIR

Fetches the SSD-MobileNetV1 face detector of the npm package @vladmandic/face-api 1.7.15
(MIT; a 12 MB tarball, fetched with `npm pack`) into CACHE_DIR/face-api-1.7.15, checking
the SHA-256 of the tarball and of every file kept. Nothing is installed. Run again: nothing
is downloaded when the cache is complete. Then:
  python3 tools/face_convert.py CACHE_DIR/face-api-1.7.15 OUT.safetensors
USAGE
}

PKG=@vladmandic/face-api
VERSION=1.7.15
TGZ=vladmandic-face-api-$VERSION.tgz
TGZ_SHA256=0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031

# sha256 path-in-package (also the path in the cache)
FILES="
888f744dffbc84f5f060d1f8427d9742341943a2dfaaf9205d10029b7e7a2955 model/ssd_mobilenetv1_model-weights_manifest.json
2835640602d53718aa6ae9a42896327eaa21beefed056c218d32ca7d79e1e2f8 model/ssd_mobilenetv1_model.bin
14f0e9813f6d9f14a9cdafb6543a74835ebb13085090e2942310a7a737f55d9a dist/face-api.esm.js
9a3442b79acaf4fbc7c2e07b7e2d8f84af9bb3871bf08a69d80304ab00640e9a LICENSE
"

die() {
    echo "fetch_faces: error: $*" >&2
    exit 1
}
unreachable() {
    echo "fetch_faces: error: $*" >&2
    exit 3
}

[ $# -eq 1 ] || { usage >&2; exit 2; }
case "$1" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
dest="$1/face-api-$VERSION"

have_all() {
    local sum path
    while read -r sum path; do
        [ -n "$sum" ] || continue
        [ -f "$dest/$path" ] || return 1
        [ "$(sha256sum "$dest/$path" | cut -d' ' -f1)" = "$sum" ] || return 1
    done <<<"$FILES"
    return 0
}

nfiles=$(grep -c . <<<"$FILES")
if have_all; then
    echo "fetch_faces: $dest is complete ($nfiles files checked), nothing to download" >&2
    echo "$dest"
    exit 0
fi

command -v sha256sum >/dev/null 2>&1 || die "sha256sum (coreutils) is needed"
command -v tar >/dev/null 2>&1 || die "tar is needed"
if ! command -v npm >/dev/null 2>&1; then
    unreachable "npm is needed to fetch $PKG@$VERSION (Debian: apt-get install npm)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cored-faces.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch_faces: $PKG@$VERSION (12 MB, npm pack)" >&2
if ! (cd "$tmp" && npm pack "$PKG@$VERSION" --pack-destination "$tmp" --loglevel=error \
    --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=10000 \
    --fetch-timeout=60000 >"$tmp/npm.log" 2>&1); then
    echo "fetch_faces: npm said:" >&2
    head -n 4 "$tmp/npm.log" | sed 's/^/  /' >&2
    unreachable "cannot fetch $PKG@$VERSION with npm (is the npm registry reachable?)"
fi
[ -f "$tmp/$TGZ" ] || die "npm pack $PKG@$VERSION left no $TGZ"
got=$(sha256sum "$tmp/$TGZ" | cut -d' ' -f1)
[ "$got" = "$TGZ_SHA256" ] || die "$TGZ: SHA-256 is $got, expected $TGZ_SHA256 (corrupt download or a changed package)"
mkdir -p "$tmp/x"
tar -xzf "$tmp/$TGZ" -C "$tmp/x" || die "cannot unpack $TGZ"

while read -r sum path; do
    [ -n "$sum" ] || continue
    src="$tmp/x/package/$path"
    [ -f "$src" ] || die "$TGZ: package/$path is missing"
    got=$(sha256sum "$src" | cut -d' ' -f1)
    [ "$got" = "$sum" ] || die "$TGZ: SHA-256 of package/$path is $got, expected $sum"
    mkdir -p "$(dirname "$dest/$path")"
    cp "$src" "$dest/$path.part"
    chmod 644 "$dest/$path.part"
    mv -f "$dest/$path.part" "$dest/$path"
done <<<"$FILES"

have_all || die "$dest is still incomplete after fetching (a file changed while copying?)"
echo "fetch_faces: $dest is complete: $nfiles files" >&2
echo "$dest"
