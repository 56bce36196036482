#!/usr/bin/env bash
# Enclave (guest) side networking for pf-proxy.
#
# The enclave has no network card. `up` makes outside addresses routable
# over the loopback device and redirects every outgoing TCP connection that
# is not to 127.0.0.0/8 (or ::1) to ip-to-vsock-transparent on
# 127.0.0.1:$EGRESS_PORT, which sends it to the host over vsock. `dns`
# points the resolver at dns-to-vsock on 127.0.0.1:53.
#
# Start-up order in the enclave:
#   1. enclave-net.sh up            (loopback, route, iptables rules)
#   2. ip-to-vsock-transparent -i 127.0.0.1:8888 -v 3:8888
#      (and -i [::1]:8888 for IPv6, unless IPV6=0)
#   3. dns-to-vsock -i 127.0.0.1:53 -v 3:8053 ; enclave-net.sh dns
#   4. vsock-to-ip -v any:PORT -i 127.0.0.1:PORT   (one per published service)
#   5. the applications
# The host side must be up before the enclave connects out (see host-net.sh).
set -euo pipefail

EGRESS_PORT=${EGRESS_PORT:-8888}
IPV6=${IPV6:-1}
CHAIN=PF_PROXY_EGRESS
RESOLV_CONF=${RESOLV_CONF:-/etc/resolv.conf}

say() { printf '[enclave-net] %s\n' "$*" >&2; }
die() {
    printf '[enclave-net] ERROR: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<USAGE
Usage: enclave-net.sh COMMAND

Commands:
  up       bring up loopback, route every address over it, redirect outgoing TCP to 127.0.0.1:\$EGRESS_PORT
  down     remove the rules and the route
  dns      write $RESOLV_CONF to use 127.0.0.1 (dns-to-vsock)
  status   show the rules

Environment: EGRESS_PORT (default 8888), IPV6 (1: also ip6tables; 0: IPv4 only),
RESOLV_CONF (default /etc/resolv.conf).
USAGE
}

# rules TOOL LOOPBACK: (re)creates the redirect chain and hooks it into OUTPUT.
rules_up() {
    local tool=$1 loopback=$2
    "$tool" -w -t nat -N "$CHAIN" 2>/dev/null || "$tool" -w -t nat -F "$CHAIN"
    "$tool" -w -t nat -A "$CHAIN" -d "$loopback" -j RETURN
    "$tool" -w -t nat -A "$CHAIN" -p tcp -j REDIRECT --to-ports "$EGRESS_PORT"
    "$tool" -w -t nat -C OUTPUT -p tcp -j "$CHAIN" 2>/dev/null ||
        "$tool" -w -t nat -A OUTPUT -p tcp -j "$CHAIN"
}

rules_down() {
    local tool=$1
    while "$tool" -w -t nat -D OUTPUT -p tcp -j "$CHAIN" 2>/dev/null; do :; done
    "$tool" -w -t nat -F "$CHAIN" 2>/dev/null || true
    "$tool" -w -t nat -X "$CHAIN" 2>/dev/null || true
}

cmd_up() {
    command -v iptables >/dev/null || die "iptables is not installed"
    ip link set lo up
    # A fresh enclave's loopback may lack 127.0.0.1 until it is assigned.
    ip addr add 127.0.0.1/8 dev lo 2>/dev/null || true
    ip route replace default dev lo src 127.0.0.1
    rules_up iptables 127.0.0.0/8
    if [ "$IPV6" = 1 ]; then
        command -v ip6tables >/dev/null || die "ip6tables is not installed (or set IPV6=0)"
        ip -6 route replace default dev lo
        rules_up ip6tables ::1/128
    fi
    say "outgoing TCP redirected to 127.0.0.1:$EGRESS_PORT"
}

cmd_down() {
    rules_down iptables
    ip route del default dev lo 2>/dev/null || true
    if [ "$IPV6" = 1 ] && command -v ip6tables >/dev/null; then
        rules_down ip6tables
        ip -6 route del default dev lo 2>/dev/null || true
    fi
    say "egress rules removed"
}

cmd_dns() {
    printf 'nameserver 127.0.0.1\n' >"$RESOLV_CONF.tmp"
    mv "$RESOLV_CONF.tmp" "$RESOLV_CONF"
    say "$RESOLV_CONF points at 127.0.0.1"
}

cmd_status() {
    iptables -w -t nat -S "$CHAIN"
    if [ "$IPV6" = 1 ]; then ip6tables -w -t nat -S "$CHAIN"; fi
}

main() {
    local cmd=${1:-help}
    case "$cmd" in
        up | down | dns | status) "cmd_$cmd" ;;
        help | -h | --help) usage ;;
        *)
            usage >&2
            die "unknown command: $cmd"
            ;;
    esac
}

main "$@"
