#!/usr/bin/env bash
# Real face images for the tests, under ${FACESTREAM_TESTDATA:-<repo>/.facestream/testdata}:
#   johns/<Name>/*.jpg    dlib examples/johns: 5 identities x 11 aligned face images
#   faces/*.jpg, *.xml    dlib examples/faces: 9 photos, labelled boxes in training/testing.xml
#   astronaut.png         scikit-image's sample portrait
# They come from Debian's dlib source package (only its 8.6 MB orig tarball, not the 200 MB
# models one) and one scikit-image wheel, every file sha256-pinned. Third-party photos: fetched
# at test time, never committed. Idempotent; prints the folder as its last line. apt runs with a
# private state folder, so the system's sources and package lists are left as they are.
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${FACESTREAM_TESTDATA:-$repo/.facestream/testdata}
python=${FACESTREAM_PYTHON:-$repo/.venv/bin/python}
[[ -x $python ]] || python=python3

DLIB_TARBALL=dlib_19.24+dfsg.orig.tar.bz2
DLIB_SHA256=66b4263822a2ff91a3e769e501c7d7927a13089e178c1427ec19cb0475823cf6
SKIMAGE=scikit-image==0.25.2
SKIMAGE_WHEEL=scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
SKIMAGE_SHA256=24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641
ASTRONAUT_SHA256=88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5

downloads=$out/.downloads
dlib_stamp=$out/.dlib-examples.sha256

log() { echo "testdata: $*" >&2; }
sha_ok() { [[ -f $1 ]] && [[ $(sha256sum "$1" | cut -d' ' -f1) == "$2" ]]; }

# The orig tarball's URI, from the Debian archive this machine already uses for its release.
dlib_uri() {
    local apt=$downloads/apt codename mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:?not a Debian release}")
    mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' \
        "Release: $codename" 'Component: main' | head -n1)
    mirror=${mirror:-http://deb.debian.org/debian/}
    mkdir -p "$apt/lists/partial" "$apt/cache" "$apt/sources.list.d"
    local signed=""
    [[ -f $keyring ]] && signed="[signed-by=$keyring] "
    echo "deb-src ${signed}$mirror $codename main" >"$apt/sources.list"
    # Sandbox user root: apt's _apt user cannot write to this private folder.
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sources.list.d"
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
    log "apt-get update (deb-src $mirror $codename main, private state in $apt)"
    apt-get "${opts[@]}" -qq update >&2
    local line
    line=$(apt-get "${opts[@]}" --print-uris source dlib 2>/dev/null | grep -F " $DLIB_TARBALL ") || {
        echo "testdata: Debian no longer lists $DLIB_TARBALL for dlib in $codename;" \
            "update DLIB_TARBALL and DLIB_SHA256 in $0" >&2
        return 1
    }
    # Line: 'URI' FILE SIZE SHA256:HEX
    if [[ $line != *"SHA256:$DLIB_SHA256"* ]]; then
        echo "testdata: apt lists $DLIB_TARBALL with another sha256 than pinned: $line" >&2
        return 1
    fi
    line=${line#\'}
    echo "${line%%\'*}"
}

fetch_dlib_examples() {
    local tarball=$downloads/$DLIB_TARBALL uri
    uri=$(dlib_uri)
    log "downloading $uri"
    /usr/lib/apt/apt-helper -o APT::Sandbox::User=root download-file "$uri" "$tarball" \
        "SHA256:$DLIB_SHA256" >&2
    sha_ok "$tarball" "$DLIB_SHA256" || { echo "testdata: $tarball: sha256 mismatch" >&2; return 1; }
    rm -rf "$out/johns" "$out/faces"
    log "extracting examples/johns and examples/faces"
    # Python's tarfile, not tar -j: a fresh Debian image has no bzip2.
    "$python" - "$tarball" "$out" <<'PY'
import sys
import tarfile
from pathlib import PurePosixPath

tarball, out = sys.argv[1:]
with tarfile.open(tarball) as tar:
    wanted = []
    for member in tar:
        parts = PurePosixPath(member.name).parts
        if member.isfile() and parts[1:3] in (("examples", "johns"), ("examples", "faces")):
            member.name = str(PurePosixPath(*parts[2:]))
            wanted.append(member)
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    tar.extractall(out, members=wanted, **safe)
PY
    echo "$DLIB_SHA256" >"$dlib_stamp"
    rm -rf "$tarball" "$downloads/apt"
}

fetch_astronaut() {
    local wheel=$downloads/$SKIMAGE_WHEEL
    log "downloading $SKIMAGE ($SKIMAGE_WHEEL)"
    # A fixed platform and Python tag, so every machine gets the one pinned wheel.
    "$python" -m pip download -q --no-deps --only-binary=:all: --disable-pip-version-check \
        --platform manylinux_2_17_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
        -d "$downloads" "$SKIMAGE" >&2
    sha_ok "$wheel" "$SKIMAGE_SHA256" || { echo "testdata: $wheel: sha256 mismatch" >&2; return 1; }
    "$python" -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
        "$wheel" skimage/data/astronaut.png >"$out/astronaut.png.part"
    sha_ok "$out/astronaut.png.part" "$ASTRONAUT_SHA256" || {
        echo "testdata: astronaut.png in $SKIMAGE_WHEEL: sha256 mismatch" >&2
        return 1
    }
    mv "$out/astronaut.png.part" "$out/astronaut.png"
    rm -f "$wheel"
}

mkdir -p "$downloads"
# One run at a time per folder: two test sessions may start together.
exec 9>"$out/.lock"
flock 9
if [[ -f $dlib_stamp && $(<"$dlib_stamp") == "$DLIB_SHA256" && -f $out/faces/testing.xml ]]; then
    log "dlib examples already in $out"
else
    fetch_dlib_examples
fi
if sha_ok "$out/astronaut.png" "$ASTRONAUT_SHA256"; then
    log "astronaut.png already in $out"
else
    fetch_astronaut
fi
echo "$out"
