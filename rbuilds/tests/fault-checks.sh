# shellcheck shell=bash
# The fault suite of the image test (nats-server killed and stopped,
# ra-web-srv and fs-monitor killed in a burst, a copy cut, a process killed
# by the OOM killer, the host's proxies killed), run in the debug image after
# debug_checks (the host is root there, so it can kill what it likes).
# Each fault, then the whole attested-file loop checked again with nothing
# lost: every file copied into /data/faults before, during and after the
# faults is hashed and attested with its SHA3-512 (attested_set.py against
# ra-web-srv's /hashes/), /ready/ says nothing is pending or failed, and the newest
# file's document passes ra-verify from the host. The time from each fault
# to a working loop is reported (FAULT_RECOVERY).
#
# Sourced by image-test.sh; uses its BIN, WORK, NETNS, PIPE_ADDR, INITCTL,
# RB, BUILD_DIR, NAME, OUTSIDE_IP, OUTSIDE_PORT, RBUILDS_DIR and its say and
# fail.

FAULT_RECOVERY=()
# The warnings the faults cause on init's console (console-check --expected).
# shellcheck disable=SC2034 # used by image-test.sh
FAULT_EXPECTED=(
    "service 'nats-server' (pid"
    "service 'nats-server' is unhealthy"
    "service 'ra-web-srv' (pid"
    "service 'fs-monitor' (pid"
    # (console_clean_and_drop: an OOM report that killed awk)
    "oom-kill:awk"
)

# in_enclave CMD...: CMD as root in the debug enclave.
in_enclave() { timeout 60 "$BIN/pipeline" run "${PIPE_ADDR[@]}" -- "$@"; }

# put NAME: a fresh 10 kB file, kept in $WORK/faults, copied to /data/faults/NAME.
put() {
    head -c 10000 /dev/urandom >"$WORK/faults/$1"
    timeout 60 "$BIN/pipeline" cp -q "$WORK/faults/$1" "enclave:/data/faults/$1" "${PIPE_ADDR[@]}" ||
        fail "copy of $1 in the fault suite"
    LAST_PUT=$1
}

# kill_service SIGNAL NAME: sends SIGNAL to the service's process.
kill_service() {
    in_enclave sh -c "kill -$1 \$(pidof $2)" || fail "kill -$1 $2"
}

# wait_active SERVICE...: each is active again within 60 s.
wait_active() {
    local service
    for service in "$@"; do
        for _ in $(seq 120); do
            timeout 30 "${INITCTL[@]}" list 2>/dev/null | grep -Eq "^$service +enabled +active" && continue 2
            sleep 0.5
        done
        fail "$service did not become active again"
    done
}

# recovered FAULT BEGAN: every file put so far is attested with its hash,
# nothing is pending, and the newest file's document passes ra-verify.
recovered() {
    local fault=$1 began=$2
    ip netns exec "$NETNS" timeout 300 python3 "$RBUILDS_DIR/tests/attested_set.py" \
        --url https://127.0.0.1:8443 --dir "$WORK/faults" --prefix /data/faults/ --timeout 240 >&2 ||
        fail "after '$fault': not every file written before, during and after it was attested, or /ready/ not 200"
    ip netns exec "$NETNS" timeout 60 "$BIN/ra-verify" doc --url https://127.0.0.1:8443 \
        --path "/data/faults/$LAST_PUT" --file "$WORK/faults/$LAST_PUT" --root "$WORK/dev-root.pem" \
        --nonce --timeout 20 >"$WORK/verify-fault.out" 2>&1 ||
        { cat "$WORK/verify-fault.out" >&2; fail "after '$fault': ra-verify refused /data/faults/$LAST_PUT"; }
    FAULT_RECOVERY+=("$fault: $((SECONDS - began)) s")
    say "fault '$fault': the attested-file loop works again $((SECONDS - began)) s after it ($(find "$WORK/faults" -type f | wc -l) files, all attested)"
}

fault_checks() {
    local began copy_pid
    mkdir -p "$WORK/faults"
    in_enclave mkdir -p /data/faults || fail "mkdir /data/faults"
    put before.bin
    recovered "none (baseline)" "$SECONDS"

    # nats-server killed: init restarts it; what was written meanwhile is
    # published once the bus is back.
    began=$SECONDS
    kill_service 9 nats-server
    put during-kill.bin
    wait_active nats-server
    put after-kill.bin
    recovered "nats-server killed (SIGKILL)" "$began"

    # nats-server alive but not answering: only its health check (JetStream's
    # /jsz) notices; init restarts it.
    began=$SECONDS
    kill_service STOP nats-server
    put during-stop.bin
    recovered "nats-server stopped (SIGSTOP)" "$began"
    timeout 30 "${INITCTL[@]}" status nats-server >"$WORK/nats-status.out" || fail "initctl status nats-server"
    grep -Eq 'unhealthy|restarts for health' "$WORK/nats-status.out" ||
        { cat "$WORK/nats-status.out" >&2; fail "initctl status does not show the health restart"; }

    # ra-web-srv and fs-monitor killed in the middle of a burst of 1,000 files.
    mkdir -p "$WORK/faults/burst"
    for i in $(seq 1000); do head -c 64 /dev/urandom >"$WORK/faults/burst/f$i"; done
    began=$SECONDS
    timeout 120 "$BIN/pipeline" cp -q "$WORK/faults/burst" enclave:/data/faults/burst "${PIPE_ADDR[@]}" &
    copy_pid=$!
    sleep 0.5
    kill_service 9 fs-monitor
    kill_service 9 ra-web-srv
    wait "$copy_pid" || fail "the burst copy failed"
    wait_active fs-monitor ra-web-srv
    put after-burst.bin
    recovered "ra-web-srv and fs-monitor killed in a burst of 1000 files" "$began"

    # The vsock connection of a copy cut in the middle: nothing half-written
    # is left, and the next copies work.
    head -c 50000000 /dev/urandom >"$WORK/cut.bin"
    began=$SECONDS
    "$BIN/pipeline" cp -q "$WORK/cut.bin" enclave:/data/faults/cut.bin "${PIPE_ADDR[@]}" &
    copy_pid=$!
    sleep 0.3
    kill -9 "$copy_pid" 2>/dev/null || true
    wait "$copy_pid" 2>/dev/null || true
    sleep 1
    in_enclave ls -A /data/faults >"$WORK/faults.ls" || fail "listing /data/faults"
    if grep -vxE 'burst|[a-z-]+\.bin' "$WORK/faults.ls" | grep -q . || grep -qx cut.bin "$WORK/faults.ls"; then
        cat "$WORK/faults.ls" >&2
        fail "a cut copy left something in /data/faults"
    fi
    put after-cut.bin
    recovered "pipeline copy cut in the middle" "$began"

    # A process using memory until the OOM killer acts: awk keeps 100 kB
    # strings until the enclave's memory runs out. It writes them itself, in
    # user space, so its page faults reach the OOM killer (a buffer filled
    # by read(2) from /dev/zero faults in the kernel, which only fails the
    # read); each allocation is small, so the kernel's overcommit guess
    # grants them all. The kernel kills awk, not a service (the console
    # check wants the report's victim to be awk), and every service stays up.
    local total_kb
    total_kb=$(in_enclave cat /proc/meminfo | sed -n 's/^MemTotal: *\([0-9]*\) kB$/\1/p') ||
        fail "reading /proc/meminfo in the enclave"
    [ -n "$total_kb" ] || fail "no MemTotal in the enclave's /proc/meminfo"
    began=$SECONDS
    put before-oom.bin
    local status=0
    timeout 300 "$BIN/pipeline" run "${PIPE_ADDR[@]}" -- \
        awk 'BEGIN { while (1) a[i++] = sprintf("%100000s", "") }' >"$WORK/oom.out" 2>&1 || status=$?
    # 137: killed by SIGKILL, the OOM killer's signal.
    [ "$status" -eq 137 ] ||
        { cat "$WORK/oom.out" >&2; fail "awk using all memory ended with status $status, not killed (137)"; }
    put after-oom.bin
    wait_active pipeline nats-server ra-web-srv fs-monitor
    recovered "a process using memory until the OOM killer acts ($((total_kb / 1024)) MiB VM)" "$began"

    # The host's ingress (HTTPS to ra-web-srv) and egress proxies killed: the
    # local runner's supervisor restarts them (rbuilds/lib/hostsup.sh).
    local run=$BUILD_DIR/run/$NAME proxy ok=0
    began=$SECONDS
    for proxy in ingress egress; do
        kill -9 "$(cat "$run/$proxy.child")" || fail "kill -9 the host's $proxy proxy"
    done
    put during-proxies.bin
    for _ in $(seq 60); do
        if timeout 60 "$BIN/pipeline" run "${PIPE_ADDR[@]}" --timeout 20 -- \
            wget -q -O /dev/null "http://$OUTSIDE_IP:$OUTSIDE_PORT/payload.bin" 2>/dev/null; then
            ok=1
            break
        fi
        sleep 0.5
    done
    [ "$ok" -eq 1 ] || fail "egress did not work again after the host's egress proxy was killed"
    recovered "host ingress and egress proxies killed" "$began"
    for proxy in ingress egress; do
        [ "$(cat "$run/$proxy.restarts" 2>/dev/null)" = 1 ] || fail "the host's $proxy proxy was not restarted once"
    done
    "${RB[@]}" --cmd list_enclaves >"$WORK/list.out" 2>&1 || fail "list_enclaves"
    grep -q "ingress=up(pid [0-9]*, restarts 1)" "$WORK/list.out" ||
        { cat "$WORK/list.out" >&2; fail "list_enclaves does not show the ingress proxy restarted"; }
    say "fault suite: ${FAULT_RECOVERY[*]}"
}
