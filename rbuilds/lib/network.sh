# shellcheck shell=bash
# --network: what the image needs to reach out (transparent egress over
# vsock, DNS over vsock) and to be reached (ra-web-srv's HTTPS published on
# vsock), and the host-side proxies that answer it.
#
# In the enclave (services started by init, in this order):
#   net      enclave-net.sh up + dns: loopback, a default route over it,
#            iptables REDIRECT of every outgoing TCP connection to 8888,
#            /etc/resolv.conf -> 127.0.0.1
#   egress   ip-to-vsock-transparent 127.0.0.1:8888 -> parent:8888
#   dns      dns-to-vsock 127.0.0.1:53 -> parent:8053
#   ingress  vsock-to-ip any:8443 -> 127.0.0.1:8443 (ra-web-srv)
# On the host (started by run_eif_image, stopped by drop_enclave; each one
# restarted when it exits, see lib/hostsup.sh):
#   vsock-to-ip-transparent on vsock 8888 with the egress policy
#   vsock-to-dns on vsock 8053
#   ip-to-vsock 127.0.0.1:RBUILDS_HTTPS_PORT -> enclave:8443
# Sourced by rbuilds.sh; uses its settings and helpers.

EGRESS_PORT=8888
DNS_PORT=8053
HTTPS_PORT=8443
HOST_HTTPS_PORT=${RBUILDS_HTTPS_PORT:-8443}
EGRESS_POLICY=${RBUILDS_EGRESS_POLICY:-$RBUILDS_DIR/image/network/egress.yaml}

# network_rootfs ROOT BIN: the networking parts of the root file system.
network_rootfs() {
    local root=$1 bin=$2 f lib_dir=/usr/lib/x86_64-linux-gnu/xtables iptables
    for f in ip-to-vsock-transparent dns-to-vsock vsock-to-ip; do
        [ -x "$bin/$f" ] || die "$bin/$f is missing: run make_apps first"
        install_file "$bin/$f" "$root/usr/bin/$f" 0755
    done
    install_file "$ROOT_DIR/pf-proxy/scripts/enclave-net.sh" "$root/usr/bin/enclave-net.sh" 0755
    install_dynamic /bin/bash "$root"
    # enclave-net.sh starts with #!/usr/bin/env bash; busybox has env.
    mkdir -p "$root/usr/bin"
    ln -sf /bin/busybox "$root/usr/bin/env"
    # iptables is one multi-call program; its match and target extensions
    # are shared objects it loads from $lib_dir.
    iptables=$(readlink -f /usr/sbin/iptables)
    install_dynamic "$iptables" "$root"
    for f in iptables iptables-save iptables-restore; do
        ln -sf "$iptables" "$root/usr/sbin/$f"
    done
    for f in "$lib_dir"/*.so; do
        install_file "$f" "$root$f" 0644
    done
    for f in "$RBUILDS_DIR"/image/network/*.service; do
        install_file "$f" "$root/service/$(basename "$f")" 0644
    done
}

# network_host_start DIR KIND: the host-side proxies of a running enclave;
# KIND is `hvsock` (local micro-VM, DIR/vm.vsock) or `vsock` (Nitro, CID from
# DIR/info).
network_host_start() {
    local dir=$1 kind=$2 bin=$STATIC_TARGET_DIR/$RUST_TARGET/release listen enclave f
    for f in vsock-to-ip-transparent vsock-to-dns ip-to-vsock; do
        [ -x "$bin/$f" ] || die "$bin/$f is missing: run make_apps first"
    done
    [ -r "$EGRESS_POLICY" ] || die "egress policy $EGRESS_POLICY is not readable"
    # listen: the host side of a vsock port the enclave connects to.
    if [ "$kind" = hvsock ]; then
        listen="hvsock:$dir/vm.vsock:"
        enclave="hvsock:$dir/vm.vsock:$HTTPS_PORT"
    else
        listen="vsock:any:"
        enclave="vsock:$(sed -n 's/^cid=//p' "$dir/info"):$HTTPS_PORT"
    fi
    start_host_proxy "$dir" egress "$bin/vsock-to-ip-transparent" -v "$listen$EGRESS_PORT" \
        --policy "$EGRESS_POLICY"
    start_host_proxy "$dir" dns "$bin/vsock-to-dns" -v "$listen$DNS_PORT"
    start_host_proxy "$dir" ingress "$bin/ip-to-vsock" -i "127.0.0.1:$HOST_HTTPS_PORT" -v "$enclave"
    log "network: egress policy $EGRESS_POLICY; enclave HTTPS on https://127.0.0.1:$HOST_HTTPS_PORT"
}

network_host_stop() {
    local dir=$1 name
    for name in egress dns ingress; do
        if alive "$dir/$name.pid"; then
            kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
        fi
    done
}
