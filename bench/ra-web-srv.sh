#!/usr/bin/env bash
# Benchmark of ra-web-srv (run by `tools/devtool bench ra-web-srv`; not a test).
#
# Figures, all in the same run on the same machine:
#   sha3       SHA3-512 throughput of POST /generate on one file (time from the
#              request to /ready/ answering 200, which includes the VRF proof
#              and the development NSM's document), against
#              `openssl dgst -sha3-512` and `rhash --sha3-512` on the same file
#              (page cache warm for all three), best of BENCH_ROUNDS
#              interleaved rounds; ratio = generate / openssl throughput
#              (goal: 0.9 or more)
#   proof      GET /proof/ requests per second over HTTPS with wrk (2 threads,
#              BENCH_CONNECTIONS connections, BENCH_SECONDS s), server and wrk
#              sharing the machine's 2 cores
#   burst      BENCH_BURST synthetic entries put into KV fs_hashes at once
#              (real nats-server -js): time until all their documents are in
#              KV fs_att_docs (VRF proof + development NSM document each)
#   pages      a page of 1,000 of /hashes/ and of /readiness/ over HTTPS from
#              the start, the middle and the end of the path order, with the
#              store holding each of BENCH_PAGES_SIZES records (the example
#              list-pages runs the server in-process and loads synthetic
#              records through the library, as the NATS side does at start:
#              a million through the API would take hours of NSM documents);
#              median of BENCH_PAGE_ROUNDS requests, and the ratio of the
#              last size's time to the first's (goal: 2 or less, the
#              same time per page whatever the store holds); memory per
#              record = growth of the process's resident set (VmRSS) over
#              the fill / N, records with an empty document (a real one adds
#              its hex, several KB); one path's lookup in the store, ns
#
# Environment: BENCH_FILE_MIB (1024), BENCH_SECONDS (10), BENCH_CONNECTIONS (32),
# BENCH_BURST (10000), BENCH_ROUNDS (3), BENCH_PAGES_SIZES ("100000 1000000"),
# BENCH_PAGE_ROUNDS (10), BENCH_FIGURES ("server pages": server = sha3, proof
# and burst, which share one server; pages alone: BENCH_FIGURES=pages).
set -euo pipefail

# shellcheck source=bench/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

FILE_MIB=${BENCH_FILE_MIB:-1024}
SECONDS_RUN=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
BURST=${BENCH_BURST:-10000}
ROUNDS=${BENCH_ROUNDS:-3}
PAGES_SIZES=${BENCH_PAGES_SIZES:-100000 1000000}
PAGE_ROUNDS=${BENCH_PAGE_ROUNDS:-10}
FIGURES=${BENCH_FIGURES:-server pages}

bench_help "$@"

# want FIGURE: whether BENCH_FIGURES asks for it.
want() { [[ " $FIGURES " == *" $1 "* ]]; }
want server || want pages || die "BENCH_FIGURES: server and/or pages, not '$FIGURES'"

if want server; then
    ensure_apt wrk rhash openssl curl bc python3 nats-server
fi
say "building ra-web-srv (release)"
cd "$ROOT_DIR"
bench_build -p ra-web-srv --bin ra-web-srv --example fs-hashes-burst --example list-pages
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
BIN="$target_dir/release/ra-web-srv"

bench_workdir /var/tmp

# run_pages: list-pages for each of BENCH_PAGES_SIZES, its lines in $WORK/pages.
run_pages() {
    local n
    for n in $PAGES_SIZES; do
        say "pages of 1,000 with $n records in the store"
        "$target_dir/release/examples/list-pages" "$n" "$PAGE_ROUNDS" >>"$WORK/pages"
    done
}

# pages_report: the pages figure as a table, from list-pages' lines
# (`records N ...`, `page N LIST POSITION MEDIAN_US BEST_US`) in $WORK/pages.
pages_report() {
    printf '\nlist pages of 1,000 over HTTPS (median of %s requests, µs; ratio = last size / first; %s cores, load average %s)\n' \
        "$PAGE_ROUNDS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
    awk '
        $1 == "records" { n[++sizes] = $2; mem[$2] = $4; fill[$2] = $6; lookup[$2] = $8 }
        $1 == "page" { t[$2, $3, $4] = $5; if (!(($3, $4) in seen)) { seen[$3, $4] = 1; order[++rows] = $3 SUBSEP $4 } }
        END {
            printf "%-12s %-8s", "list", "page"
            for (i = 1; i <= sizes; i++) printf " %12s", n[i] " rec"
            printf " %7s\n", "ratio"
            for (r = 1; r <= rows; r++) {
                split(order[r], key, SUBSEP)
                printf "%-12s %-8s", "/" key[1] "/", key[2]
                for (i = 1; i <= sizes; i++) printf " %12s", t[n[i], key[1], key[2]]
                small = t[n[1], key[1], key[2]]; large = t[n[sizes], key[1], key[2]]
                if (small > 0) printf " %7.2f\n", large / small; else printf " %7s\n", "n/a"
            }
            for (i = 1; i <= sizes; i++)
                printf "%s records: %s bytes per record (VmRSS growth / N), filled in %s s, one lookup %s ns\n", n[i], mem[n[i]], fill[n[i]], lookup[n[i]]
        }' "$WORK/pages"
}

if ! want server; then
    run_pages
    pages_report
    exit 0
fi

elapsed() { echo "$2 - $1" | bc -l; }
mibps() { echo "scale=1; $FILE_MIB / $1" | bc -l; }

FILE="$WORK/data/big.bin"
mkdir -p "$WORK/data"
say "writing a $FILE_MIB MiB file of random bytes"
head -c "$((FILE_MIB * 1024 * 1024))" /dev/urandom >"$FILE"
cat "$FILE" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
NATS_PORT=$(free_port)
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
bench_track "$!"
RUST_LOG=warn "$BIN" --nsm development --state-dir "$WORK/state" --listen "127.0.0.1:$PORT" \
    --http-listen off --root-dir "$WORK/data" --nats-url "nats://127.0.0.1:$NATS_PORT" >/dev/null 2>"$WORK/server.log" &
bench_track "$!"
URL="https://127.0.0.1:$PORT"
for _ in $(seq 200); do
    curl -skf "$URL/health" >/dev/null && break
    sleep 0.05
done
curl -skf "$URL/health" >/dev/null || die "ra-web-srv did not start: $(cat "$WORK/server.log")"

# Each tool runs ROUNDS times, interleaved, and the best time counts (the
# machine is shared: the best run is the one least disturbed). /ready/ is
# polled every 0.1 s by one curl process at a time (each poll costs a TLS
# handshake; polling faster would steal CPU from the hashing it measures).
best() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc -l)" = 1 ]; then echo "$2"; else echo "$1"; fi; }
t_openssl='' t_rhash='' t_generate=''
for round in $(seq "$ROUNDS"); do
    say "round $round: openssl dgst -sha3-512, rhash --sha3-512, POST /generate until /ready/"
    t0=$(now)
    openssl dgst -sha3-512 "$FILE" >/dev/null
    t_openssl=$(best "$t_openssl" "$(elapsed "$t0" "$(now)")")
    t0=$(now)
    rhash --sha3-512 "$FILE" >/dev/null
    t_rhash=$(best "$t_rhash" "$(elapsed "$t0" "$(now)")")
    t0=$(now)
    curl -skf -X POST -H 'Content-Type: application/json' -d "{\"path\":\"$FILE\"}" "$URL/generate" >/dev/null
    until [ "$(curl -sk -o /dev/null -w '%{http_code}' "$URL/ready/?path=$FILE")" = 200 ]; do
        sleep 0.1
    done
    t_generate=$(best "$t_generate" "$(elapsed "$t0" "$(now)")")
done
served=$(curl -skf "$URL/hash/?path=$FILE" | sed -n 's/.*"sha3_512":"\([0-9a-f]*\)".*/\1/p')
expected=$(openssl dgst -sha3-512 -r "$FILE" | cut -d' ' -f1)
[ "$served" = "$expected" ] || die "hash mismatch: served $served, openssl $expected"

say "wrk GET /proof/ for ${SECONDS_RUN}s, $CONNECTIONS connections"
wrk_out=$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_RUN}s" "$URL/proof/?path=$FILE")
rps=$(echo "$wrk_out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
latency=$(echo "$wrk_out" | sed -n 's/^ *Latency *\([^ ]*\).*/\1/p')
errors=$(echo "$wrk_out" | grep -c 'Non-2xx\|Socket errors' || true)

say "$BURST fs_hashes entries in a burst"
burst=$("$target_dir/release/examples/fs-hashes-burst" "nats://127.0.0.1:$NATS_PORT" "$BURST")

if want pages; then
    run_pages
fi

printf '\nra-web-srv benchmark (%s MiB file, %s cores, load average %s)\n' "$FILE_MIB" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %8s s %10s MiB/s\n' "openssl dgst -sha3-512" "$t_openssl" "$(mibps "$t_openssl")"
printf '%-34s %8s s %10s MiB/s\n' "rhash --sha3-512" "$t_rhash" "$(mibps "$t_rhash")"
printf '%-34s %8s s %10s MiB/s\n' "POST /generate (to /ready/ 200)" "$t_generate" "$(mibps "$t_generate")"
printf 'ratio generate/openssl throughput: %s   generate/rhash: %s\n' \
    "$(echo "scale=3; $t_openssl / $t_generate" | bc -l)" "$(echo "scale=3; $t_rhash / $t_generate" | bc -l)"
printf 'GET /proof/ over HTTPS (wrk -t2 -c%s): %s requests/s, mean latency %s%s\n' \
    "$CONNECTIONS" "$rps" "$latency" "$([ "$errors" -gt 0 ] && echo ", with errors (see below)")"
[ "$errors" -gt 0 ] && echo "$wrk_out"
echo "$burst"
if want pages; then
    pages_report
fi
exit 0
