# Shared by the benchmark scripts of bench/ (each sources it first): the
# repository's root ($ROOT_DIR) and tools/functions, their help text, the
# release build of what they measure, a work directory removed at exit
# together with the processes started for the run, and the arithmetic of the
# figures.
# shellcheck shell=bash

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/functions
source "$ROOT_DIR/tools/functions"

BENCH_PIDS=()
WORK=""

# bench_usage: the running script's header comment, up to `set -euo pipefail`.
bench_usage() {
    sed -n '2,/^set -euo pipefail/{/^set /d;s/^# \{0,1\}//;p;}' "$0"
}

# bench_help ARGS...: prints the usage and exits when ARGS start with -h or --help.
bench_help() {
    case "${1:-}" in
        -h | --help)
            bench_usage
            exit 0
            ;;
    esac
}

# bench_build CARGO_ARGS...: a locked release build in the repository (its
# output goes to stderr, so the figures on stdout stay clean).
bench_build() {
    (cd "$ROOT_DIR" && cargo build --release --locked "$@") >&2
}

# bench_workdir PARENT: makes the work directory $WORK under PARENT; at exit
# the tracked processes are stopped and it is removed.
bench_workdir() {
    WORK=$(mktemp -d "$1/bench.XXXXXX") || die "cannot make a work directory"
    trap bench_cleanup EXIT
}

# bench_track PID: stop PID at exit.
bench_track() { BENCH_PIDS+=("$1"); }

# The EXIT trap: SIGTERM to the tracked processes, then the script's own
# bench_after_stop (if it defines one), then the wait and the work directory.
# shellcheck disable=SC2317 # called by the EXIT trap
bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    if declare -F bench_after_stop >/dev/null; then
        bench_after_stop
    fi
    for pid in "${BENCH_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    [ -z "$WORK" ] || rm -rf "$WORK"
}

# now: seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

# ratio A B: A / B with two decimals; n/a when B is not above 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
