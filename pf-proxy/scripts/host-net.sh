#!/usr/bin/env bash
# Host (parent) side networking for pf-proxy: transparent ingress.
#
# `up` redirects TCP connections to this host on the published ports to
# transparent-port-to-vsock on port $INGRESS_PORT, which forwards each one
# to the same port in the enclave. Egress needs no rule on the host:
# vsock-to-ip-transparent connects out like any local program.
#
# Start-up order on the host (the systemd units in ../systemd do this):
#   1. vsock-to-dns -v any:8053                         (DNS for the enclave)
#   2. vsock-to-ip-transparent -v any:8888 --policy /etc/pf-proxy/egress.yaml
#   3. the enclave (it connects out through 1 and 2)
#   4. transparent-port-to-vsock -i 0.0.0.0:8000 -v CID:0
#   5. host-net.sh up 443 8080                          (publish the ports)
set -euo pipefail

INGRESS_PORT=${INGRESS_PORT:-8000}
CHAIN=PF_PROXY_INGRESS

say() { printf '[host-net] %s\n' "$*" >&2; }
die() {
    printf '[host-net] ERROR: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<USAGE
Usage: host-net.sh COMMAND [PORT...]

Commands:
  up PORT...   redirect TCP to this host's PORTs to 127.0.0.1:\$INGRESS_PORT (transparent-port-to-vsock)
  down         remove the rules
  status       show the rules

Environment: INGRESS_PORT (default 8000).
USAGE
}

cmd_up() {
    [ $# -gt 0 ] || die "up needs at least one port to publish"
    command -v iptables >/dev/null || die "iptables is not installed"
    local port
    for port in "$@"; do
        case "$port" in
            '' | *[!0-9]*) die "not a port: $port" ;;
        esac
        if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "not a port: $port"; fi
    done
    iptables -w -t nat -N "$CHAIN" 2>/dev/null || iptables -w -t nat -F "$CHAIN"
    for port in "$@"; do
        iptables -w -t nat -A "$CHAIN" -p tcp --dport "$port" -j REDIRECT --to-ports "$INGRESS_PORT"
    done
    # Outside clients (PREROUTING) and clients on this host (OUTPUT), only
    # for connections to this host's own addresses.
    local hook
    for hook in PREROUTING OUTPUT; do
        iptables -w -t nat -C "$hook" -p tcp -m addrtype --dst-type LOCAL -j "$CHAIN" 2>/dev/null ||
            iptables -w -t nat -A "$hook" -p tcp -m addrtype --dst-type LOCAL -j "$CHAIN"
    done
    say "ports $* redirected to port $INGRESS_PORT"
}

cmd_down() {
    local hook
    for hook in PREROUTING OUTPUT; do
        while iptables -w -t nat -D "$hook" -p tcp -m addrtype --dst-type LOCAL -j "$CHAIN" 2>/dev/null; do :; done
    done
    iptables -w -t nat -F "$CHAIN" 2>/dev/null || true
    iptables -w -t nat -X "$CHAIN" 2>/dev/null || true
    say "ingress rules removed"
}

cmd_status() {
    iptables -w -t nat -S "$CHAIN"
}

main() {
    local cmd=${1:-help}
    [ $# -gt 0 ] && shift
    case "$cmd" in
        up) cmd_up "$@" ;;
        down | status) "cmd_$cmd" ;;
        help | -h | --help) usage ;;
        *)
            usage >&2
            die "unknown command: $cmd"
            ;;
    esac
}

main "$@"
