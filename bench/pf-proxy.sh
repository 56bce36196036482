#!/usr/bin/env bash
# Benchmark of pf-proxy (run by `tools/devtool bench pf-proxy`; not a test).
#
# The same TCP path is measured four ways in one run:
#   direct      client -> server
#   socat       client -> socat TCP->UNIX -> socat UNIX->TCP -> server (socat's defaults, as Sentient ran it)
#   socat-256k  the same with 256 KiB socat buffers (-b 262144)
#   pf-proxy    client -> ip-to-vsock -> vsock-to-ip -> server
# with a Unix socket standing in for vsock in the middle. Figures:
# throughput of one stream and of 64 parallel streams, connections per
# second, and p50/p99 round-trip latency of small request/response
# exchanges; ratios are pf-proxy against socat and against direct.
#
# Environment: BENCH_PORT_BASE (17100), BENCH_ONE_STREAM_MIB (2048),
# BENCH_PARALLEL_MIB (32, per stream), BENCH_CONNECT_SECS (3),
# BENCH_ROUNDS (5000).
set -euo pipefail

# shellcheck source=bench/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

PORT_BASE=${BENCH_PORT_BASE:-17100}
ONE_STREAM_MIB=${BENCH_ONE_STREAM_MIB:-2048}
PARALLEL_MIB=${BENCH_PARALLEL_MIB:-32}
CONNECT_SECS=${BENCH_CONNECT_SECS:-3}
ROUNDS=${BENCH_ROUNDS:-5000}

SERVER_PORT=$PORT_BASE
SOCAT_PORT=$((PORT_BASE + 1))
PF_PORT=$((PORT_BASE + 2))
SOCAT_BIG_PORT=$((PORT_BASE + 3))

wait_port() {
    local port=$1 i
    for i in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    die "nothing listens on port $port (attempts: $i)"
}

# value KEY LINE: the value of KEY=VALUE in LINE.
value() {
    tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}

# row LABEL KEY: one line of the table, from the global `result` array.
row() {
    local pf=${result[pf-proxy.$2]}
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" \
        "${result[direct.$2]}" "${result[socat.$2]}" "${result[socat-256k.$2]}" "$pf" \
        "$(ratio "$pf" "${result[socat.$2]}")" "$(ratio "$pf" "${result[socat-256k.$2]}")" \
        "$(ratio "$pf" "${result[direct.$2]}")"
}

main() {
    case "${1:-}" in
        -h | --help)
            bench_usage
            return 0
            ;;
        "") ;;
        *)
            bench_usage >&2
            die "unknown argument: $1"
            ;;
    esac
    ensure_apt socat
    cd "$ROOT_DIR"
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
    say "building pf-proxy (release)"
    bench_build -p pf-proxy --bins --example pf-bench
    local bin=$CARGO_TARGET_DIR/release
    local bench=$bin/examples/pf-bench

    bench_workdir "${TMPDIR:-/tmp}"

    "$bench" server "127.0.0.1:$SERVER_PORT" &
    bench_track "$!"
    # -t 60: after one side's EOF socat gives the other direction 0.5 s by
    # default and then cuts it, which loses the end of long transfers.
    socat -t 60 "TCP-LISTEN:$SOCAT_PORT,bind=127.0.0.1,fork,reuseaddr,backlog=1024" "UNIX-CONNECT:$WORK/socat.sock" &
    bench_track "$!"
    socat -t 60 "UNIX-LISTEN:$WORK/socat.sock,fork,backlog=1024" "TCP:127.0.0.1:$SERVER_PORT" &
    bench_track "$!"
    socat -b 262144 -t 60 "TCP-LISTEN:$SOCAT_BIG_PORT,bind=127.0.0.1,fork,reuseaddr,backlog=1024" "UNIX-CONNECT:$WORK/socat-big.sock" &
    bench_track "$!"
    socat -b 262144 -t 60 "UNIX-LISTEN:$WORK/socat-big.sock,fork,backlog=1024" "TCP:127.0.0.1:$SERVER_PORT" &
    bench_track "$!"
    RUST_LOG=warn "$bin/vsock-to-ip" -v "unix:$WORK/pf.sock" -i "127.0.0.1:$SERVER_PORT" &
    bench_track "$!"
    RUST_LOG=warn "$bin/ip-to-vsock" -i "127.0.0.1:$PF_PORT" -v "unix:$WORK/pf.sock" &
    bench_track "$!"
    wait_port "$SERVER_PORT"
    wait_port "$SOCAT_PORT"
    wait_port "$PF_PORT"
    wait_port "$SOCAT_BIG_PORT"

    declare -gA result
    local load_before
    load_before=$(cut -d' ' -f1 /proc/loadavg)
    local path port line
    for path in direct socat socat-256k pf-proxy; do
        case "$path" in
            direct) port=$SERVER_PORT ;;
            socat) port=$SOCAT_PORT ;;
            socat-256k) port=$SOCAT_BIG_PORT ;;
            pf-proxy) port=$PF_PORT ;;
        esac
        say "measuring $path"
        line=$("$bench" throughput "127.0.0.1:$port" 1 $((ONE_STREAM_MIB << 20)))
        result[$path.one]=$(value mib_per_s "$line")
        line=$("$bench" throughput "127.0.0.1:$port" 64 $((PARALLEL_MIB << 20)))
        result[$path.par]=$(value mib_per_s "$line")
        line=$("$bench" connect-rate "127.0.0.1:$port" 8 "$CONNECT_SECS")
        result[$path.cps]=$(value conn_per_s "$line")
        line=$("$bench" latency "127.0.0.1:$port" "$ROUNDS" 64)
        result[$path.p50]=$(value p50_us "$line")
        result[$path.p99]=$(value p99_us "$line")
    done

    printf '\npf-proxy benchmark (%s cores, %s; load average %s before, %s after: other work on\n' \
        "$(nproc)" "$(date -u +%Y-%m-%d)" "$load_before" "$(cut -d' ' -f1 /proc/loadavg)"
    printf 'the machine skews the figures, compare the columns of one run)\n\n'
    printf '| measure | direct | socat | socat -b 256K | pf-proxy | pf-proxy / socat | pf-proxy / socat -b 256K | pf-proxy / direct |\n'
    printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
    local key label
    for key in one par cps; do
        case "$key" in
            one) label="1 stream, MiB/s (${ONE_STREAM_MIB} MiB)" ;;
            par) label="64 streams, MiB/s (64 x ${PARALLEL_MIB} MiB)" ;;
            cps) label="connections/s (8 clients)" ;;
        esac
        row "$label" "$key"
    done
    for key in p50 p99; do
        row "$key round trip, 64 B, us (lower is better)" "$key"
    done
    printf '\nadded latency over direct (us): socat p50 %s p99 %s, pf-proxy p50 %s p99 %s\n' \
        "$(awk -v a="${result[socat.p50]}" -v b="${result[direct.p50]}" 'BEGIN { printf "%.1f", a - b }')" \
        "$(awk -v a="${result[socat.p99]}" -v b="${result[direct.p99]}" 'BEGIN { printf "%.1f", a - b }')" \
        "$(awk -v a="${result[pf-proxy.p50]}" -v b="${result[direct.p50]}" 'BEGIN { printf "%.1f", a - b }')" \
        "$(awk -v a="${result[pf-proxy.p99]}" -v b="${result[direct.p99]}" 'BEGIN { printf "%.1f", a - b }')"
}

main "$@"
