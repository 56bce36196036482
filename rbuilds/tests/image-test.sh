#!/usr/bin/env bash
# End-to-end image test: build the image with --network (make_all; cached
# steps are not redone), check the EIF against its parts, build QEMU's
# nitro-enclave machine (make_qemu, cached), and boot the image twice, in
# microvm and in nitro-enclave, each time reaching it from the host over
# hvsock: the heartbeat
# arrives, initctl lists the services as active, `pipeline run -- uname -a`
# prints the enclave kernel, `pipeline cp` copies 3 MB in and back
# identically, an HTTP request from the enclave to an address outside it
# goes through the transparent egress proxies (the destination lives in a
# network namespace made for the test, and the egress policy allows exactly
# it), a file copied into /data gets a hash, a VRF proof and an attestation
# document without anyone asking (fs-monitor -> NATS -> ra-web-srv) which
# ra-verify checks from the host through the published HTTPS port, the
# console shows no kernel or init message at warning level or worse (judged
# by level: rbuilds-tool console-check), and drop_enclave powers it off.
#
# Usage: rbuilds/tests/image-test.sh   (run by `tools/devtool image-test`)
set -euo pipefail

RBUILDS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${RBUILDS_BUILD_DIR:-$RBUILDS_DIR/build}
NAME=${RBUILDS_IMAGE_NAME:-enclave}
RB=("$RBUILDS_DIR/rbuilds.sh" --network)
BIN=$BUILD_DIR/target/x86_64-unknown-linux-gnu/release
TOOL=$BUILD_DIR/tool-target/release/rbuilds-tool
VSOCK=$BUILD_DIR/run/$NAME/vm.vsock
WORK=$(mktemp -d /tmp/rbuilds-image-test.XXXXXX)
NETNS=rbuilds-test-$$
# The outside world of the test: one web server on a TEST-NET-1 address.
OUTSIDE_IP=192.0.2.10
OUTSIDE_PORT=8080

say() { printf '[image-test] %s\n' "$*" >&2; }
# shellcheck source=rbuilds/lib/errtrap.sh
source "$RBUILDS_DIR/lib/errtrap.sh"
report_errors image-test
fail() {
    printf '[image-test] FAIL: %s\n' "$*" >&2
    if [ -f "$BUILD_DIR/run/$NAME/console.log" ]; then
        say "console (last 40 lines):"
        tail -n 40 "$BUILD_DIR/run/$NAME/console.log" >&2
    fi
    exit 1
}
cleanup() {
    local enclaves
    enclaves=$("${RB[@]}" --cmd list_enclaves 2>/dev/null) || true
    if grep -q "^$NAME " <<<"$enclaves"; then
        "${RB[@]}" --cmd drop_enclave >/dev/null 2>&1 || say "drop_enclave failed"
    fi
    if [ -n "${WEB_PID:-}" ]; then kill "$WEB_PID" 2>/dev/null || true; fi
    ip netns del "$NETNS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

start=$SECONDS
"${RB[@]}" --cmd make_all || fail "make_all"
say "make_all: $((SECONDS - start)) s"

# The EIF holds exactly the kernel and the two ramdisks that were built.
eif=$BUILD_DIR/$NAME.eif
"$TOOL" eif-extract "$eif" --out-dir "$WORK/parts" >/dev/null || fail "eif-extract"
cmp -s "$WORK/parts/kernel" "$BUILD_DIR/kernel/current/bzImage" || fail "EIF kernel != bzImage"
cmp -s "$WORK/parts/ramdisk0" "$BUILD_DIR/bootstrap.cpio" || fail "EIF ramdisk 0 != bootstrap.cpio"
cmp -s "$WORK/parts/ramdisk1" "$BUILD_DIR/customer.cpio" || fail "EIF ramdisk 1 != customer.cpio"
bootstrap=$("$TOOL" cpio-list "$BUILD_DIR/bootstrap.cpio") || fail "cpio-list bootstrap.cpio"
customer=$("$TOOL" cpio-list "$BUILD_DIR/customer.cpio") || fail "cpio-list customer.cpio"
grep -q ' init$' <<<"$bootstrap" || fail "no /init in the bootstrap ramdisk"
grep -q ' rootfs/usr/bin/pipeline$' <<<"$customer" || fail "no pipeline in the customer ramdisk"
say "EIF $(stat -c %s "$eif") bytes; PCRs: $(tr -d ' \n' <"$eif.pcrs")"

"${RB[@]}" --cmd drop_enclaves_all >/dev/null 2>&1 || true

# The outside: a namespace where OUTSIDE_IP exists, serving a file; the
# host-side proxies run there, the egress policy allows only that address.
ip netns add "$NETNS" || fail "ip netns add"
ip -n "$NETNS" link set lo up
ip -n "$NETNS" addr add "$OUTSIDE_IP/32" dev lo
mkdir -p "$WORK/www"
head -c 200000 /dev/urandom >"$WORK/www/payload.bin"
ip netns exec "$NETNS" python3 -m http.server "$OUTSIDE_PORT" --bind "$OUTSIDE_IP" \
    --directory "$WORK/www" >"$WORK/web.log" 2>&1 &
WEB_PID=$!
printf 'allow:\n  - cidr: %s/32\n    ports: [%s]\n' "$OUTSIDE_IP" "$OUTSIDE_PORT" >"$WORK/egress.yaml"
export RBUILDS_EGRESS_POLICY=$WORK/egress.yaml RBUILDS_HOST_NETNS=$NETNS

# boot_and_check MACHINE: boots the image in QEMU MACHINE and checks it.
boot_and_check() {
    export RBUILDS_MACHINE=$1
    say "== $1 =="
    boot=$SECONDS
    "${RB[@]}" --cmd run_eif_image || fail "run_eif_image"
    say "boot to heartbeat: $(cat "$BUILD_DIR/run/$NAME/heartbeat") s"

    uname_out=$(timeout 60 "$BIN/pipeline" run --addr "hvsock:$VSOCK:53000" --connect-attempts 10 -- uname -a) ||
        fail "pipeline run -- uname -a"
    say "uname -a in the enclave: $uname_out"
    case "$uname_out" in
        "Linux enclave 6.12."*) ;;
        *) fail "unexpected kernel: $uname_out" ;;
    esac

    services=$(timeout 30 "$BIN/initctl" -a "hvsock:$VSOCK:9001" list) || fail "initctl list"
    printf '%s\n' "$services" >&2
    for service in pipeline nats-server ra-web-srv fs-monitor egress dns ingress; do
        printf '%s\n' "$services" | grep -Eq "^$service +enabled +active" ||
            fail "$service service not active"
    done
    # net is a one-shot (iptables and resolver set-up): wait for it to finish.
    net_done=0
    for _ in $(seq 60); do
        if grep -Eq "service 'net' \(pid [0-9]+\) exited with status 0" "$BUILD_DIR/run/$NAME/console.log"; then
            net_done=1
            break
        fi
        sleep 0.5
    done
    [ "$net_done" -eq 1 ] || fail "the net service (enclave-net.sh up, dns) did not succeed"
    say "boot to services ready: $((SECONDS - boot)) s"

    # 3 MB each way (guest -> host streams above 32 KiB need the kernel patch
    # in .linux/patches: see docs/rbuilds.md).
    head -c 3000000 /dev/urandom >"$WORK/in.bin"
    timeout 120 "$BIN/pipeline" cp -q "$WORK/in.bin" enclave:/tmp/in.bin --addr "hvsock:$VSOCK:53000" ||
        fail "pipeline cp to the enclave"
    inside=$(timeout 60 "$BIN/pipeline" run --addr "hvsock:$VSOCK:53000" -- sha256sum /tmp/in.bin) ||
        fail "sha256sum in the enclave"
    [ "${inside%% *}" = "$(sha256sum <"$WORK/in.bin" | cut -c1-64)" ] || fail "the copy in differs"
    timeout 120 "$BIN/pipeline" cp -q enclave:/tmp/in.bin "$WORK/back.bin" --addr "hvsock:$VSOCK:53000" ||
        fail "pipeline cp from the enclave"
    cmp "$WORK/in.bin" "$WORK/back.bin" || fail "the copy back differs"
    timeout 60 "$BIN/pipeline" run --addr "hvsock:$VSOCK:53000" -- cat /tmp/in.bin >"$WORK/cat.bin" ||
        fail "pipeline run -- cat"
    cmp "$WORK/in.bin" "$WORK/cat.bin" || fail "pipeline run -- cat: the output differs"
    say "pipeline: 3 MB in (sha256 equal inside), back by cp and by run -- cat (identical)"

    # Egress: the enclave fetches from OUTSIDE_IP, which only the namespace has.
    timeout 60 "$BIN/pipeline" run --addr "hvsock:$VSOCK:53000" -- \
        wget -q -O - "http://$OUTSIDE_IP:$OUTSIDE_PORT/payload.bin" >"$WORK/fetched.bin" ||
        fail "wget from the enclave through the egress proxy"
    cmp "$WORK/www/payload.bin" "$WORK/fetched.bin" || fail "the file fetched through egress differs"
    # (busybox 1.35's wget crashes with -T: the time limit is pipeline's.)
    if timeout 60 "$BIN/pipeline" run --addr "hvsock:$VSOCK:53000" --timeout 30 -- \
        wget -q -O /dev/null "http://$OUTSIDE_IP:$((OUTSIDE_PORT + 1))/"; then
        fail "a port the egress policy does not allow was reached"
    fi
    grep -q "egress denied by policy.*$OUTSIDE_IP:$((OUTSIDE_PORT + 1))" "$BUILD_DIR/run/$NAME/egress.log" ||
        fail "the host's egress proxy did not log the denial"
    say "egress: 200 KB fetched from $OUTSIDE_IP through the transparent proxies; a denied port refused"

    # Unattended attestation, checked from outside: copy a file in, and wait for
    # ra-verify (through the host's ip-to-vsock on 127.0.0.1:8443, the enclave's
    # ingress, ra-web-srv) to accept its document. In microvm there is no
    # /dev/nsm: ra-web-srv signs as development, and the root to pin is the one
    # it wrote. In QEMU's nitro-enclave machine the NSM is emulated: documents
    # are unsigned (--allow-unsigned) but carry the image's real PCRs, checked
    # against the .eif.pcrs file of the build.
    machine=$(sed -n 's/^machine=//p' "$BUILD_DIR/run/$NAME/info")
    head -c 1000000 /dev/urandom >"$WORK/report.bin"
    timeout 60 "$BIN/pipeline" cp -q "$WORK/report.bin" enclave:/data/report.bin --addr "hvsock:$VSOCK:53000" ||
        fail "pipeline cp of report.bin into /data"
    copied=$SECONDS
    if [ "$machine" = nitro-enclave ]; then
        trust=(--allow-unsigned --pcrs "$eif.pcrs")
        signed_checks=(pcrs)
    else
        timeout 60 "$BIN/pipeline" cp -q enclave:/var/lib/ra-web-srv/dev-root.pem "$WORK/dev-root.pem" \
            --addr "hvsock:$VSOCK:53000" || fail "fetching the development root"
        trust=(--root "$WORK/dev-root.pem")
        signed_checks=(tls_binding cose_signature certificate_chain)
    fi
    verify() {
        ip netns exec "$NETNS" timeout 60 "$BIN/ra-verify" doc --url https://127.0.0.1:8443 \
            --path /data/report.bin "${trust[@]}" --timeout 20 "$@"
    }
    attested=0
    for _ in $(seq 120); do
        if verify --file "$WORK/report.bin" --nonce >"$WORK/verify.out" 2>&1; then
            attested=1
            break
        fi
        sleep 0.5
    done
    cat "$WORK/verify.out" >&2
    [ "$attested" -eq 1 ] || fail "ra-verify did not accept the document of /data/report.bin"
    for check in "${signed_checks[@]}" user_data file_hash vrf_proof nonce; do
        grep -q "^PASS $check:" "$WORK/verify.out" || fail "ra-verify: no PASS for $check"
    done
    say "attestation ($machine): /data/report.bin verified from the host $((SECONDS - copied)) s after the copy"
    head -c 1000 /dev/urandom >"$WORK/other.bin"
    if verify --file "$WORK/other.bin" >"$WORK/verify-other.out" 2>&1; then
        fail "ra-verify accepted the document for a different file"
    fi
    grep -q "^FAIL file_hash:" "$WORK/verify-other.out" || fail "ra-verify: no FAIL file_hash for a different file"
    if ip netns exec "$NETNS" timeout 60 "$BIN/ra-verify" doc --url https://127.0.0.1:8443 \
        --path /data/report.bin >"$WORK/verify-aws.out" 2>&1; then
        fail "a document that is not AWS-signed passed against the AWS root"
    fi
    say "attestation: a different file, and the pinned AWS root, are refused"

    # By level, not by words: kernel messages at warning or worse, init's
    # WARN and ERROR lines, and lines with no level (rbuilds/src/console.rs).
    "$TOOL" console-check "$BUILD_DIR/run/$NAME/console.log" >&2 ||
        fail "the console shows problems (above)"

    "${RB[@]}" --cmd drop_enclave 2>&1 | tee "$WORK/drop.log" >&2 || fail "drop_enclave"
    grep -q 'did not power off by itself' "$WORK/drop.log" && fail "the enclave did not end by itself"
    # With ACPI (microvm) init powers off; without (nitro-enclave, as on Nitro)
    # it reboots, which ends the VM.
    grep -Eq 'reboot: (Power down|Restarting system)' "$BUILD_DIR/logs/$NAME-console.log" ||
        fail "the kernel did not power off or reboot"
}

# microvm: the EIF's parts, no NSM (ra-web-srv signs as development);
# nitro-enclave: the EIF itself, with QEMU's emulated NSM (make_qemu).
"${RB[@]}" --cmd make_qemu || fail "make_qemu"
for machine in microvm nitro-enclave; do
    boot_and_check "$machine"
done
say "PASS (total $((SECONDS - start)) s)"
