#!/usr/bin/env bash
# Ramdisk writing: rbuilds-tool cpio against GNU cpio (the reference,
# `find | sort | cpio -o -H newc --reproducible -R 0:0`) on the same tree:
# 2000 small files plus 8 files of 8 MiB (about 86 MB). Prints the best of
# 5 runs of each and the ratio.
set -euo pipefail

# shellcheck source=bench/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
TARGET=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
RUNS=${RUNS:-5}
bench_help "$@"
ensure_apt cpio bc
bench_workdir "${TMPDIR:-/tmp}"
bench_build --quiet -p rbuilds --bin rbuilds-tool
TOOL=$TARGET/release/rbuilds-tool

tree=$WORK/tree
for d in $(seq 0 19); do
    mkdir -p "$tree/dir$d"
    for f in $(seq 0 99); do
        head -c $(((d * 100 + f) * 37 % 20000)) /dev/urandom >"$tree/dir$d/file$f"
    done
done
mkdir -p "$tree/big"
for f in $(seq 0 7); do head -c 8388608 /dev/urandom >"$tree/big/blob$f"; done
size=$(du -sb "$tree" | cut -f1)

# best_of CMD...: the best wall time of $RUNS runs, in seconds.
best_of() {
    local best="" i t0 t1 t
    for i in $(seq "$RUNS"); do
        t0=$(now)
        "$@" >/dev/null 2>&1
        t1=$(now)
        t=$(echo "$t1 - $t0" | bc)
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" -eq 1 ]; then best=$t; fi
        : "$i"
    done
    printf '%s\n' "$best"
}

ours() { "$TOOL" cpio --root "$tree" --output "$WORK/ours.cpio" --mtime 0; }
gnu() { (cd "$tree" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 >"$WORK/gnu.cpio"); }

t_ours=$(best_of ours)
t_gnu=$(best_of gnu)
printf 'rbuilds cpio: tree of %s bytes, %s files; best of %s runs\n' "$size" "$(find "$tree" -type f | wc -l)" "$RUNS"
printf '  rbuilds-tool cpio  %8.3f s  %7.1f MB/s\n' "$t_ours" "$(echo "$size / $t_ours / 1000000" | bc -l)"
printf '  GNU cpio (ref)     %8.3f s  %7.1f MB/s\n' "$t_gnu" "$(echo "$size / $t_gnu / 1000000" | bc -l)"
printf '  ratio (GNU / ours) %8s\n' "$(ratio "$t_gnu" "$t_ours")"
