# shellcheck shell=bash
# The host side of a running enclave stays up: every host-side proxy
# (egress, DNS, HTTPS ingress, an app's published ports) runs under a small
# supervisor that restarts it when it exits, 1 s after the first exit and
# backing off to 10 s while it keeps failing, and counts the restarts.
#
# Files, per process NAME in the enclave's run directory DIR:
#   NAME.pid       the supervisor (kill it to stop both)
#   NAME.child     the process it runs now
#   NAME.restarts  how many times it was restarted
#   NAME.log       the process's output and the supervisor's notes
# list_enclaves shows each one's state (host_processes_state).
#
# vhost-device-vsock is not restarted this way: QEMU holds its vhost-user
# socket, and a new backend would not be reattached to the running VM.
# Sourced by rbuilds.sh; uses its die.

# alive PIDFILE: the process named in PIDFILE is running (not a zombie).
alive() {
    local pid state
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# supervise_host DIR NAME PROGRAM ARGS...: runs PROGRAM until SIGTERM,
# restarting it whenever it exits; its output (and PROGRAM's) is the
# caller's to redirect.
supervise_host() {
    local dir=$1 name=$2 child='' status delay=1 restarts=0
    shift 2
    trap '[ -n "$child" ] && kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT
    while :; do
        "$@" &
        child=$!
        printf '%s\n' "$child" >"$dir/$name.child"
        status=0
        wait "$child" || status=$?
        restarts=$((restarts + 1))
        printf '%s\n' "$restarts" >"$dir/$name.restarts"
        printf '[rbuilds] %s: %s exited with status %s; restart %s in %s s\n' \
            "$(date -u +%FT%TZ)" "$name" "$status" "$restarts" "$delay"
        sleep "$delay" &
        wait $! || true
        delay=$((delay * 2))
        if [ "$delay" -gt 10 ]; then delay=10; fi
    done
}

# start_host_proxy DIR NAME PROGRAM ARGS...: one supervised proxy in the
# background; dies if it does not stay up at start (a bad argument, a port
# in use).
start_host_proxy() {
    local dir=$1 name=$2
    shift 2
    local netns=()
    # RBUILDS_HOST_NETNS runs the host side in a network namespace (tests:
    # the destinations the enclave reaches exist only there). vsock and
    # hybrid vsock sockets are not namespaced, so the enclave still reaches
    # the proxies.
    [ -n "${RBUILDS_HOST_NETNS:-}" ] && netns=(ip netns exec "$RBUILDS_HOST_NETNS")
    : >"$dir/$name.log"
    rm -f "$dir/$name.child" "$dir/$name.restarts"
    # Its own output goes to the log too: it must not hold the caller's
    # stdout or stderr open (a caller reading them would never see an end).
    supervise_host "$dir" "$name" "${netns[@]}" "$@" </dev/null >>"$dir/$name.log" 2>&1 &
    echo $! >"$dir/$name.pid"
    sleep 0.3
    if [ -s "$dir/$name.restarts" ] || ! alive "$dir/$name.child"; then
        kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
        die "host proxy $name exited: $(tail -n 5 "$dir/$name.log")"
    fi
}

# host_processes_state DIR: one word per supervised process of DIR:
# NAME=up (pid P, restarts N) or NAME=down.
host_processes_state() {
    local dir=$1 f name state=()
    for f in "$dir"/*.child; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .child)
        if alive "$dir/$name.pid" && alive "$f"; then
            state+=("$name=up(pid $(cat "$f"), restarts $(cat "$dir/$name.restarts" 2>/dev/null || echo 0))")
        else
            state+=("$name=down")
        fi
    done
    printf '%s\n' "${state[*]:-no host processes}"
}
