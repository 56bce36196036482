#!/usr/bin/env bash
# End-to-end image test: build the image (make_all; cached steps are not
# redone), check the EIF against its parts, boot it in the local micro-VM
# and reach it from the host over hvsock: the heartbeat arrives, initctl
# lists the services as active, `pipeline run -- uname -a` prints the
# enclave kernel, `pipeline cp` copies a file in and one back identically,
# the console shows no errors, and drop_enclave powers it off.
#
# Usage: rbuilds/tests/image-test.sh   (run by `tools/devtool image-test`)
set -euo pipefail

RBUILDS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${RBUILDS_BUILD_DIR:-$RBUILDS_DIR/build}
NAME=${RBUILDS_IMAGE_NAME:-enclave}
RB=("$RBUILDS_DIR/rbuilds.sh")
BIN=$BUILD_DIR/target/x86_64-unknown-linux-gnu/release
TOOL=$BUILD_DIR/tool-target/release/rbuilds-tool
VSOCK=$BUILD_DIR/run/$NAME/vm.vsock
WORK=$(mktemp -d /tmp/rbuilds-image-test.XXXXXX)

say() { printf '[image-test] %s\n' "$*" >&2; }
fail() {
    printf '[image-test] FAIL: %s\n' "$*" >&2
    if [ -f "$BUILD_DIR/run/$NAME/console.log" ]; then
        say "console (last 40 lines):"
        tail -n 40 "$BUILD_DIR/run/$NAME/console.log" >&2
    fi
    exit 1
}
cleanup() {
    "${RB[@]}" --cmd list_enclaves 2>/dev/null | grep -q "^$NAME " &&
        "${RB[@]}" --cmd drop_enclave >/dev/null 2>&1
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
printf '%s\n' "$services" | grep -Eq '^pipeline +enabled +active' || fail "pipeline service not active"
say "boot to services ready: $((SECONDS - boot)) s"

# Host -> enclave: 3 MB; enclave -> host: 32 KiB (larger guest -> host
# streams stall in vhost-device-vsock 0.3.0: see docs/rbuilds.md).
head -c 3000000 /dev/urandom >"$WORK/in.bin"
timeout 120 "$BIN/pipeline" cp -q "$WORK/in.bin" enclave:/tmp/in.bin --addr "hvsock:$VSOCK:53000" ||
    fail "pipeline cp to the enclave"
inside=$(timeout 60 "$BIN/pipeline" run --addr "hvsock:$VSOCK:53000" -- sha256sum /tmp/in.bin) ||
    fail "sha256sum in the enclave"
[ "${inside%% *}" = "$(sha256sum <"$WORK/in.bin" | cut -c1-64)" ] || fail "the copy in differs"
head -c 32768 "$WORK/in.bin" >"$WORK/small.bin"
timeout 60 "$BIN/pipeline" cp -q "$WORK/small.bin" enclave:/tmp/small.bin --addr "hvsock:$VSOCK:53000" ||
    fail "pipeline cp of the small file to the enclave"
timeout 60 "$BIN/pipeline" cp -q enclave:/tmp/small.bin "$WORK/back.bin" --addr "hvsock:$VSOCK:53000" ||
    fail "pipeline cp from the enclave"
cmp "$WORK/small.bin" "$WORK/back.bin" || fail "the copy back differs"
say "pipeline cp: 3 MB in (sha256 equal), 32 KiB in and back (identical)"

console=$BUILD_DIR/run/$NAME/console.log
if grep -Ein 'error|kernel panic|call trace|warning:|failed| WARN ' "$console" >&2; then
    fail "the console shows errors (above)"
fi

"${RB[@]}" --cmd drop_enclave || fail "drop_enclave"
grep -q 'reboot: Power down' "$BUILD_DIR/logs/$NAME-console.log" ||
    fail "the enclave did not power off by itself"
say "PASS (total $((SECONDS - start)) s)"
