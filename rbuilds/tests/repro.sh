#!/usr/bin/env bash
# Reproducibility proof: two clones of one commit, in directories of
# different names and depths and checked out under different umasks, each
# build the whole image from scratch (kernel, static binaries, ramdisks,
# EIF) with their own build directories; every artefact must be identical to
# the byte. Takes two full builds (about 2 x 10 minutes on 2 idle cores).
# Each clone compiles its own kernel; with --against, the first build is
# this checkout's, whose kernel may come from the shared cache
# (RBUILDS_CACHE_DIR), so a cached kernel is checked against a fresh one.
#
# Usage: rbuilds/tests/repro.sh [--network] [--against] [COMMIT]   (default HEAD)
#   --network  build the images with rbuilds.sh --network
#   --against  the first build is this checkout's own rbuilds/build (it must
#              be clean and at COMMIT, and built with the same options, as
#              `tools/devtool test` does just before): one build instead of two
# RBUILDS_REPRO_DIR keeps the clones there instead of a temporary directory.
set -euo pipefail

say() { printf '[repro] %s\n' "$*" >&2; }
# shellcheck source=rbuilds/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/errtrap.sh"
report_errors repro
die() {
    printf '[repro] ERROR: %s\n' "$*" >&2
    exit 1
}

NETWORK=()
AGAINST=0
while [ $# -gt 0 ]; do
    case "$1" in
        --network) NETWORK=(--network) ;;
        --against) AGAINST=1 ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
    shift
done
ROOT=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
COMMIT=$(git -C "$ROOT" rev-parse "${1:-HEAD}") || die "unknown commit ${1:-HEAD}"
WORK=${RBUILDS_REPRO_DIR:-$(mktemp -d /tmp/rbuilds-repro.XXXXXX)}
FIRST=$WORK/a/enclaves
SECOND=$WORK/second-clone/nested/enclaves-framework
ARTEFACTS=(kernel/current/bzImage bootstrap.cpio enclave.customer.cpio enclave.eif enclave.eif.pcrs)

clone() {
    local dir=$1 mask=$2
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    (umask "$mask" && git clone -q --no-local "$ROOT" "$dir" && git -C "$dir" checkout -q "$COMMIT") ||
        die "cannot clone $ROOT at $COMMIT into $dir"
}

# build DIR: the image of the clone in DIR, with a kernel cache of its own
# (RBUILDS_CACHE_DIR inside the clone), so its kernel is compiled here and
# not taken from the cache that other builds share.
build() {
    local dir=$1 start=$SECONDS
    say "building in $dir"
    (cd "$dir/rbuilds" && env -u RBUILDS_BUILD_DIR -u SOURCE_DATE_EPOCH \
        RBUILDS_CACHE_DIR="$dir/rbuilds/build/cache" ./rbuilds.sh "${NETWORK[@]}" --cmd make_all) ||
        die "the build in $dir failed"
    case "$(readlink -f "$dir/rbuilds/build/kernel/current")" in
        "$dir"/*) ;;
        *) die "the kernel of $dir was not built in it" ;;
    esac
    say "built in $((SECONDS - start)) s"
}

say "commit $COMMIT, clones in $WORK"
if [ "$AGAINST" -eq 1 ]; then
    [ "$(git -C "$ROOT" rev-parse HEAD)" = "$COMMIT" ] || die "--against: $ROOT is not at $COMMIT"
    # Tracked files only: an untracked one that reached the build would make
    # the comparison fail, never pass wrongly.
    [ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ] ||
        die "--against: $ROOT has changes; its build is not the commit's"
    for artefact in "${ARTEFACTS[@]}"; do
        [ -e "$ROOT/rbuilds/build/$artefact" ] || die "--against: no $artefact in $ROOT/rbuilds/build"
    done
    FIRST=$ROOT
    say "first build: this checkout's ($ROOT/rbuilds/build)"
else
    clone "$FIRST" 0022
    build "$FIRST"
fi
clone "$SECOND" 0002
build "$SECOND"

failed=0
for artefact in "${ARTEFACTS[@]}"; do
    a=$FIRST/rbuilds/build/$artefact
    b=$SECOND/rbuilds/build/$artefact
    if cmp -s "$a" "$b"; then
        say "identical: $artefact  sha256 $(sha256sum <"$a" | cut -c1-64)"
    else
        say "DIFFERENT: $artefact"
        failed=1
    fi
done
say "PCRs of both builds:"
cat "$FIRST/rbuilds/build/enclave.eif.pcrs" "$SECOND/rbuilds/build/enclave.eif.pcrs" >&2
[ "$failed" -eq 0 ] || die "the two builds differ (clones kept in $WORK)"
say "two builds of $COMMIT are byte-identical"
[ -n "${RBUILDS_REPRO_DIR:-}" ] || rm -rf "$WORK"
