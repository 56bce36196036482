#!/usr/bin/env bash
# Benchmark of fs-monitor (run by `tools/devtool bench fs-monitor`; not a test).
#
# A real nats-server with JetStream and the release fs-monitor watching an
# empty directory; then N new files (1 to 64 lines each, 16 B to 1.4 KiB)
# are written into it in one burst, and the time until the KV bucket holds
# a hash for every one of them is measured (each hash is checked against
# the file afterwards). In the same run the same files are hashed by the
# reference tools, one process over all files:
#   openssl dgst -sha3-512 FILE...      rhash --sha3-512 FILE...
#   sha3sum -a 512 FILE... (when installed)
# Figures per round: the time to only write the files into an unwatched
# directory (baseline), the time to write them with fs-monitor watching, the
# time from the first write to the last hash in KV, the lag of the last hash
# behind the last write, each reference's time, and the ratios all-in-KV /
# reference (lower is better; fs-monitor's time includes writing the files).
# Then the latency of a single file: written and closed into the watched
# directory, until its hash is in KV (BENCH_SINGLES times; median and max).
# Files and the NATS store live in /dev/shm (the enclave's filesystem is a
# ramdisk too), so disk I/O of other jobs does not blur the figures.
#
# Environment: BENCH_FILES (10000), BENCH_NATS_PORT (17400), BENCH_ROUNDS (3),
# BENCH_SINGLES (50).
set -euo pipefail

# shellcheck source=bench/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

FILES=${BENCH_FILES:-10000}
PORT=${BENCH_NATS_PORT:-17400}
ROUNDS=${BENCH_ROUNDS:-3}
SINGLES=${BENCH_SINGLES:-50}
URL="nats://127.0.0.1:$PORT"
TARGET=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
bench_help "$@"

ensure_apt nats-server rhash openssl bc findutils
say "building fs-monitor (release)"
bench_build -p fs-monitor --bin fs-monitor --example burst
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=/tmp
bench_workdir "$shm"

nats-server -js -a 127.0.0.1 -p "$PORT" -sd "$WORK/store" 2>"$WORK/nats.log" &
bench_track "$!"
for _ in $(seq 100); do
    grep -q "Server is ready" "$WORK/nats.log" 2>/dev/null && break
    sleep 0.05
done
grep -q "Server is ready" "$WORK/nats.log" || die "nats-server did not start: $(cat "$WORK/nats.log")"

# elapsed seconds of a command, its output discarded
timed() {
    local t0 t1
    t0=$(now)
    "$@" >/dev/null
    t1=$(now)
    echo "$t1 - $t0" | bc -l
}

printf '%-6s %-7s %-11s %-10s %-12s %-8s %-10s %-8s %-12s %-10s\n' round files baseline_s written_s all_in_kv_s lag_s openssl_s rhash_s all/openssl all/rhash
for round in $(seq "$ROUNDS"); do
    mkdir -p "$WORK/baseline-$round"
    line=$("$TARGET/release/examples/burst" "$WORK/baseline-$round" - - "$FILES")
    baseline=$(sed -n 's/.*written_s=\([0-9.]*\).*/\1/p' <<<"$line")
    dir="$WORK/watched-$round"
    mkdir -p "$dir"
    "$TARGET/release/fs-monitor" --directory "$dir" --nats-url "$URL" --kv-bucket-name "bench$round" \
        2>"$WORK/fs-monitor-$round.log" &
    monitor=$!
    bench_track "$monitor"
    for _ in $(seq 200); do
        grep -qs "initial scan done" "$WORK/fs-monitor-$round.log" && break
        sleep 0.05
    done
    grep -q "initial scan done" "$WORK/fs-monitor-$round.log" || die "fs-monitor did not start: $(cat "$WORK/fs-monitor-$round.log")"
    line=$("$TARGET/release/examples/burst" "$dir" "$URL" "bench$round" "$FILES")
    written=$(sed -n 's/.*written_s=\([0-9.]*\).*/\1/p' <<<"$line")
    all_in=$(sed -n 's/.*all_in_kv_s=\([0-9.]*\).*/\1/p' <<<"$line")
    if [ "$round" = 1 ]; then
        mkdir -p "$dir/single"
        for i in $(seq "$SINGLES"); do
            mkdir -p "$dir/single/$i"
            sleep 0.01
            "$TARGET/release/examples/burst" "$dir/single/$i" "$URL" "bench$round" 1 |
                sed -n 's/.*all_in_kv_s=\([0-9.]*\).*/\1/p'
        done | sort -n > "$WORK/singles"
    fi
    kill "$monitor"
    wait "$monitor" 2>/dev/null || true
    # the same files, hashed by the reference tools (page cache warm for both)
    openssl_s=$(cd "$dir" && timed xargs -0 openssl dgst -sha3-512 < <(find . -type f -print0))
    rhash_s=$(cd "$dir" && timed xargs -0 rhash --sha3-512 < <(find . -type f -print0))
    lag=$(echo "$all_in - $written" | bc -l)
    printf '%-6s %-7s %-11.3f %-10.3f %-12.3f %-8.3f %-10.3f %-8.3f %-12s %-10s\n' "$round" "$FILES" "$baseline" "$written" \
        "$all_in" "$lag" "$openssl_s" "$rhash_s" "$(ratio "$all_in" "$openssl_s")" "$(ratio "$all_in" "$rhash_s")"
    if command -v sha3sum >/dev/null; then
        printf '       sha3sum -a 512: %.3f s\n' "$(cd "$dir" && timed xargs -0 sha3sum -a 512 < <(find . -type f -print0))"
    fi
done
median=$(sed -n "$(((SINGLES + 1) / 2))p" "$WORK/singles")
max=$(tail -n 1 "$WORK/singles")
printf 'one file, close to hash in KV (%s runs): median %.1f ms, max %.1f ms\n' "$SINGLES" \
    "$(echo "$median * 1000" | bc -l)" "$(echo "$max * 1000" | bc -l)"
say "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
