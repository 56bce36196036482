#!/usr/bin/env bash
# Benchmark of enclave-init (run by `tools/devtool bench enclave-init`; not a test).
#
# enclave-init and runit (Debian's runsvdir/runsv/sv, the reference
# supervisor) run the same trivial services in the same run. Figures:
#   startup    time from starting the supervisor to N services running
#              (polled with `initctl list` / `sv status`), median of R runs
#   restart    interval between two starts of a service that exits at once,
#              against its 1 s delay (RestartSec = 1; runsv waits 1 s too)
#   control    one status request from a fresh client process (`initctl
#              status` / `sv status`), mean of C calls; and the in-connection
#              round trip of `initctl ping -c` (no runit equivalent)
#   logs       time until L lines of output (70 bytes each) are in
#              time-stamped log files rotated at 10 MiB (init's capture
#              against runit's svlogd -tt)
#   memory     resident memory of the supervisor with N services: init
#              alone, against runsvdir plus its N runsv processes
# Ratios are enclave-init / runit (below 1: enclave-init is faster/smaller).
#
# Environment: BENCH_SERVICES (50), BENCH_RUNS (5), BENCH_CALLS (300),
# BENCH_RESTARTS (5), BENCH_LOG_LINES (1000000).
set -euo pipefail

# shellcheck source=bench/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

N=${BENCH_SERVICES:-50}
RUNS=${BENCH_RUNS:-5}
CALLS=${BENCH_CALLS:-300}
RESTARTS=${BENCH_RESTARTS:-5}
LOG_LINES=${BENCH_LOG_LINES:-1000000}

bench_help "$@"

ensure_apt runit
say "building enclave-init (release)"
bench_build -p enclave-init
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
INIT=$TARGET_DIR/release/init
INITCTL=$TARGET_DIR/release/initctl

bench_workdir "${TMPDIR:-/tmp}"
# runsv processes outlive runsvdir: stop each service and its runsv.
# shellcheck disable=SC2317 # called by bench_cleanup
bench_after_stop() {
    local svdir
    for svdir in "$WORK"/*/sv/*; do
        if [ -d "$svdir" ]; then
            sv force-shutdown "$svdir" >/dev/null 2>&1 || true
        fi
    done
}

now_ns() { date +%s%N; }
ms() { awk -v ns="$1" 'BEGIN { printf "%.1f", ns / 1e6 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# finish_run NAME RUN PID DIR T0: records the time since T0 in
# $WORK/NAME.times; keeps the last run's supervisor for the other figures
# (pid and dir in $WORK/NAME.pid and NAME.dir) and stops the others.
finish_run() {
    local name=$1 run=$2 pid=$3 dir=$4 t0=$5
    echo $(($(now_ns) - t0)) >>"$WORK/$name.times"
    if [ "$run" = last ]; then
        echo "$pid" >"$WORK/$name.pid"
        echo "$dir" >"$WORK/$name.dir"
        return
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    if [ "$name" = runit ]; then
        sv force-shutdown "$dir"/sv/* >/dev/null 2>&1 || true
    fi
}

# --- enclave-init ---------------------------------------------------------

init_config() {
    local dir=$1
    mkdir -p "$dir/service" "$dir/log"
    cat >"$dir/init.yaml" <<YAML
service_dir: $dir/service
log_dir: $dir/log
control:
  unix_socket_path: $dir/init.sock
stop_timeout_sec: 2
YAML
}

init_start_to_running() {
    local dir=$WORK/init-start-$1 i t0 pid
    init_config "$dir"
    for i in $(seq 1 "$N"); do
        printf 'ExecStart = "sleep 1000"\n' >"$dir/service/s$i.service"
    done
    t0=$(now_ns)
    "$INIT" -c "$dir/init.yaml" >/dev/null 2>"$dir/init.log" &
    pid=$!
    bench_track "$pid"
    until [ "$("$INITCTL" -s "$dir/init.sock" list 2>/dev/null | grep -c ' active ')" -eq "$N" ]; do :; done
    finish_run init "$1" "$pid" "$dir" "$t0"
}

# --- runit ----------------------------------------------------------------

runit_start_to_running() {
    local dir=$WORK/runit-start-$1 i t0 pid
    mkdir -p "$dir/sv"
    for i in $(seq 1 "$N"); do
        mkdir -p "$dir/sv/s$i"
        printf '#!/bin/sh\nexec sleep 1000\n' >"$dir/sv/s$i/run"
        chmod +x "$dir/sv/s$i/run"
    done
    t0=$(now_ns)
    runsvdir -P "$dir/sv" >/dev/null 2>&1 &
    pid=$!
    bench_track "$pid"
    until [ "$(sv status "$dir"/sv/* 2>/dev/null | grep -c '^run:')" -eq "$N" ]; do :; done
    finish_run runit "$1" "$pid" "$dir" "$t0"
}

say "startup: $N services, $RUNS runs each"
for r in $(seq 1 "$RUNS"); do
    tag=$r
    [ "$r" -eq "$RUNS" ] && tag=last
    init_start_to_running "$tag"
    runit_start_to_running "$tag"
done
init_start=$(median <"$WORK/init.times")
runit_start=$(median <"$WORK/runit.times")

say "memory with $N services"
init_rss=$(rss_kib "$(cat "$WORK/init.pid")")
runit_pid=$(cat "$WORK/runit.pid")
runit_rss=$(rss_kib "$runit_pid")
read -ra runsv_pids <"/proc/$runit_pid/task/$runit_pid/children" || true # no trailing newline
for child in "${runsv_pids[@]}"; do
    runit_rss=$((runit_rss + $(rss_kib "$child")))
done

say "control: $CALLS status calls each"
init_dir=$(cat "$WORK/init.dir")
runit_dir=$(cat "$WORK/runit.dir")
t0=$(now_ns)
for _ in $(seq 1 "$CALLS"); do "$INITCTL" -s "$init_dir/init.sock" status s1 >/dev/null; done
init_call=$((($(now_ns) - t0) / CALLS))
t0=$(now_ns)
for _ in $(seq 1 "$CALLS"); do sv status "$runit_dir/sv/s1" >/dev/null; done
runit_call=$((($(now_ns) - t0) / CALLS))
ping_line=$("$INITCTL" -s "$init_dir/init.sock" ping -c 10000)

say "restart: $RESTARTS restarts each, 1 s delay"
rdir=$WORK/restart-init
init_config "$rdir"
printf 'ExecStart = "sh -c '"'"'date +%%s%%N >> %s/starts; exit 1'"'"'"\nRestart = "on-failure"\nRestartSec = 1\n' "$rdir" \
    >"$rdir/service/crash.service"
"$INIT" -c "$rdir/init.yaml" >/dev/null 2>"$rdir/init.log" &
bench_track "$!"
rrdir=$WORK/restart-runit
mkdir -p "$rrdir/sv/crash"
printf '#!/bin/sh\ndate +%%s%%N >> %s/starts\nexit 1\n' "$rrdir" >"$rrdir/sv/crash/run"
chmod +x "$rrdir/sv/crash/run"
runsvdir -P "$rrdir/sv" >/dev/null 2>&1 &
bench_track "$!"
count_lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
until [ "$(count_lines "$rdir/starts")" -gt "$RESTARTS" ] &&
    [ "$(count_lines "$rrdir/starts")" -gt "$RESTARTS" ]; do
    sleep 0.2
done
mean_interval() { head -n $((RESTARTS + 1)) "$1" | awk 'NR > 1 { s += $1 - p } { p = $1 } END { printf "%d", s / (NR - 1) }'; }
init_restart=$(mean_interval "$rdir/starts")
runit_restart=$(mean_interval "$rrdir/starts")

say "logs: $LOG_LINES lines captured with time stamps and rotation"
# The service prints LOG_LINES lines of 70 bytes, then the marker END-OF-2
# (computed, so that init's note of the command line does not contain it),
# then idles.
# shellcheck disable=SC2016 # $((1+1)) is for the service's shell
spew='yes 0123456789012345678901234567890123456789012345678901234567890123456789 | head -n '"$LOG_LINES"'; echo END-OF-$((1+1)); exec sleep 1000'
# ends_with_marker FILE: whether the marker is at the end of FILE.
ends_with_marker() { [ -f "$1" ] && tail -c 100 "$1" | grep -q END-OF-2; }
ldir=$WORK/logs-init
init_config "$ldir"
printf 'max_log_size: 10485760\nmax_log_files: 4\n' >>"$ldir/init.yaml"
printf 'ExecStart = "sh -c '"'"'%s'"'"'"\n' "$spew" >"$ldir/service/spew.service"
t0=$(now_ns)
"$INIT" -c "$ldir/init.yaml" >/dev/null 2>"$ldir/init.log" &
bench_track "$!"
until ends_with_marker "$ldir/log/spew.log"; do sleep 0.01; done
init_logs=$(($(now_ns) - t0))
lrdir=$WORK/logs-runit
mkdir -p "$lrdir/sv/spew/log/main"
printf '#!/bin/sh\nexec 2>&1\n%s\n' "$spew" >"$lrdir/sv/spew/run"
printf '#!/bin/sh\nexec svlogd -tt ./main\n' >"$lrdir/sv/spew/log/run"
printf 's10485760\nn5\n' >"$lrdir/sv/spew/log/main/config"
chmod +x "$lrdir/sv/spew/run" "$lrdir/sv/spew/log/run"
t0=$(now_ns)
runsvdir -P "$lrdir/sv" >/dev/null 2>&1 &
bench_track "$!"
until ends_with_marker "$lrdir/sv/spew/log/main/current"; do sleep 0.01; done
runit_logs=$(($(now_ns) - t0))
log_mb=$(awk -v n="$LOG_LINES" 'BEGIN { printf "%.0f", n * 71 / 1e6 }')

cat <<REPORT

enclave-init benchmark ($N services; runit $(dpkg-query -W -f='${Version}' runit) as reference)
| figure | enclave-init | runit | ratio |
| --- | --- | --- | --- |
| start to $N services running (median of $RUNS) | $(ms "$init_start") ms | $(ms "$runit_start") ms | $(ratio "$init_start" "$runit_start") |
| restart interval, 1 s delay (mean of $RESTARTS) | $(ms "$init_restart") ms | $(ms "$runit_restart") ms | $(ratio "$init_restart" "$runit_restart") |
| restart overhead beyond the delay | $(ms $((init_restart - 1000000000))) ms | $(ms $((runit_restart - 1000000000))) ms | |
| status request, fresh client process (mean of $CALLS) | $(ms "$init_call") ms | $(ms "$runit_call") ms | $(ratio "$init_call" "$runit_call") |
| $log_mb MB of output in time-stamped, rotated log files | $(ms "$init_logs") ms | $(ms "$runit_logs") ms (svlogd -tt) | $(ratio "$init_logs" "$runit_logs") |
| resident memory with $N services | $init_rss KiB | $runit_rss KiB (runsvdir + $N runsv) | $(ratio "$init_rss" "$runit_rss") |

in-connection round trip: $ping_line
REPORT
