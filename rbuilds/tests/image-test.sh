#!/usr/bin/env bash
# End-to-end image test. Builds the image with --network (make_all: the
# production profile without client keys, the image the reproducibility
# proof compares; cached steps are not redone) and checks the EIF against
# its parts; then two more images of the same build, which differ only in
# their customer ramdisk: a debug one and a production one with test keys.
# Builds QEMU's nitro-enclave machine (make_qemu, cached) and boots:
#
# - the debug image in microvm, reached from the host over hvsock: the
#   heartbeat arrives, initctl lists the services as active, `pipeline run
#   -- uname -a` prints the enclave kernel, `pipeline cp` copies 3 MB in and
#   back identically, an HTTP request from the enclave to an address outside
#   it goes through the transparent egress proxies (the destination lives in
#   a network namespace made for the test, and the egress policy allows
#   exactly it), a file copied into /data gets a hash, a VRF proof and an
#   attestation document without anyone asking (fs-monitor -> NATS ->
#   ra-web-srv) which ra-verify checks from the host through the published
#   HTTPS port, and `--require-profile production` refuses it; /data filled
#   to the last byte refuses the next copy as "no space" while a file copied
#   into /apps is attested, and once emptied /data's files are attested again;
#   then the fault suite (fault-checks.sh): nats-server killed and stopped,
#   ra-web-srv and fs-monitor killed in a burst of 1,000 files, a copy cut in
#   the middle, a process using memory until the OOM killer acts, the host's
#   proxies killed; after each, every file written is attested;
# - the production image in nitro-enclave (real PCRs from QEMU's emulated
#   NSM), the test acting as the hostile host: no pipeline without a key or
#   with a key the image does not list, a client expecting other PCRs sends
#   nothing, the deploy key copies into /data (attested, verified with
#   --require-profile production) but cannot read /var/lib/ra-web-srv, write
#   /usr/bin or run commands, and initctl over vsock may list but not stop,
#   unless over the attested channel with a key allowed to manage;
#   it is built with --app reference_apps/inference_server (app-checks.sh).
#
# Each time the console shows no kernel or init message at warning level or
# worse (judged by level: rbuilds-tool console-check), and drop_enclave
# powers the enclave off.
#
# Usage: rbuilds/tests/image-test.sh   (run by `tools/devtool image-test`)
# IMAGE_TEST_PARTS=debug or production boots only that image (after the same
# builds), for a quicker look at one side; CI runs both.
set -euo pipefail

RBUILDS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${RBUILDS_BUILD_DIR:-$RBUILDS_DIR/build}
# The image make_all builds (and the reproducibility proof compares), and
# the two booted here.
BASE_NAME=${RBUILDS_IMAGE_NAME:-enclave}
DEBUG_NAME=$BASE_NAME-debug
PROD_NAME=$BASE_NAME-prod
RB=("$RBUILDS_DIR/rbuilds.sh" --network)
BIN=$BUILD_DIR/target/x86_64-unknown-linux-gnu/release
TOOL=$BUILD_DIR/tool-target/release/rbuilds-tool
WORK=$(mktemp -d /tmp/rbuilds-image-test.XXXXXX)
NETNS=rbuilds-test-$$
# The outside world of the test: one web server on a TEST-NET-1 address.
OUTSIDE_IP=192.0.2.10
OUTSIDE_PORT=8080
# The image booted now (set by boot).
NAME=$BASE_NAME
PARTS=${IMAGE_TEST_PARTS:-}
case "$PARTS" in
    '' | debug | production) ;;
    *) printf '[image-test] IMAGE_TEST_PARTS is debug or production, not %s\n' "$PARTS" >&2; exit 64 ;;
esac

say() { printf '[image-test] %s\n' "$*" >&2; }
# shellcheck source=rbuilds/lib/errtrap.sh
source "$RBUILDS_DIR/lib/errtrap.sh"
report_errors image-test
# shellcheck source=rbuilds/tests/fault-checks.sh
source "$RBUILDS_DIR/tests/fault-checks.sh"
# shellcheck source=rbuilds/tests/app-checks.sh
source "$RBUILDS_DIR/tests/app-checks.sh"
fail() {
    printf '[image-test] FAIL: %s\n' "$*" >&2
    if [ -f "$BUILD_DIR/run/$NAME/console.log" ]; then
        say "console of $NAME (last 40 lines):"
        tail -n 40 "$BUILD_DIR/run/$NAME/console.log" >&2
    fi
    exit 1
}
cleanup() {
    "${RB[@]}" --cmd drop_enclaves_all >/dev/null 2>&1 || say "drop_enclaves_all failed"
    if [ -n "${WEB_PID:-}" ]; then kill "$WEB_PID" 2>/dev/null || true; fi
    ip netns del "$NETNS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

start=$SECONDS
"${RB[@]}" --cmd make_all || fail "make_all"
say "make_all: $((SECONDS - start)) s"

# The EIF holds exactly the kernel and the two ramdisks that were built.
eif=$BUILD_DIR/$BASE_NAME.eif
"$TOOL" eif-extract "$eif" --out-dir "$WORK/parts" >/dev/null || fail "eif-extract"
cmp -s "$WORK/parts/kernel" "$BUILD_DIR/kernel/current/bzImage" || fail "EIF kernel != bzImage"
cmp -s "$WORK/parts/ramdisk0" "$BUILD_DIR/bootstrap.cpio" || fail "EIF ramdisk 0 != bootstrap.cpio"
cmp -s "$WORK/parts/ramdisk1" "$BUILD_DIR/$BASE_NAME.customer.cpio" || fail "EIF ramdisk 1 != $BASE_NAME.customer.cpio"
bootstrap=$("$TOOL" cpio-list "$BUILD_DIR/bootstrap.cpio") || fail "cpio-list bootstrap.cpio"
customer=$("$TOOL" cpio-list "$BUILD_DIR/$BASE_NAME.customer.cpio") || fail "cpio-list $BASE_NAME.customer.cpio"
grep -q ' init$' <<<"$bootstrap" || fail "no /init in the bootstrap ramdisk"
grep -q ' rootfs/usr/bin/pipeline$' <<<"$customer" || fail "no pipeline in the customer ramdisk"
# Production without client keys: no pipeline listener at all.
if grep -q ' rootfs/service/pipeline.service$' <<<"$customer"; then
    fail "a production image without --authorized-keys has a pipeline service"
fi
grep -q '"Profile": "production"' "$eif.pcrs" || fail "$eif.pcrs does not record the production profile"
say "EIF $(stat -c %s "$eif") bytes; PCRs: $(tr -d ' \n' <"$eif.pcrs")"

# The test's client keys: deploy may write the inbox and read the outbox;
# admin may also run commands and manage init's services; stranger is not
# in the image.
for key in deploy admin stranger; do
    "$BIN/pipeline" keygen --out "$WORK/$key" >/dev/null || fail "pipeline keygen --out $WORK/$key"
done
{
    printf 'write=/data:/apps,read=/data/out %s\n' "$(cat "$WORK/deploy.pub")"
    printf 'exec,manage,write=/data:/apps,read=/data:/apps %s\n' "$(cat "$WORK/admin.pub")"
} >"$WORK/authorized_keys"
RBUILDS_IMAGE_NAME=$DEBUG_NAME "${RB[@]}" --profile debug --cmd make_eif >/dev/null ||
    fail "make_eif of the debug image"
RBUILDS_IMAGE_NAME=$PROD_NAME "${RB[@]}" --app "$APP_TEST_DIR" --authorized-keys "$WORK/authorized_keys" --cmd make_eif >/dev/null ||
    fail "make_eif of the production image with the test's keys"
for name in "$DEBUG_NAME" "$PROD_NAME"; do
    cmp -s "$BUILD_DIR/$name.eif" "$eif" && fail "$name.eif equals $BASE_NAME.eif"
done
grep -q '"Profile": "debug"' "$BUILD_DIR/$DEBUG_NAME.eif.pcrs" || fail "the debug image's PCR file does not say debug"
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

# boot IMAGE MACHINE: boots IMAGE in QEMU MACHINE; sets NAME, VSOCK, PIPE
# (pipeline with the enclave's address), INITCTL.
boot() {
    NAME=$1
    export RBUILDS_IMAGE_NAME=$1 RBUILDS_MACHINE=$2
    say "== $NAME in $RBUILDS_MACHINE =="
    boot_start=$SECONDS
    VSOCK=$BUILD_DIR/run/$NAME/vm.vsock
    PIPE_ADDR=(--addr "hvsock:$VSOCK:53000")
    INITCTL=("$BIN/initctl" -a "hvsock:$VSOCK:9001")
    "${RB[@]}" --cmd run_eif_image || fail "run_eif_image"
    say "boot to heartbeat: $(cat "$BUILD_DIR/run/$NAME/heartbeat") s"
}

# services_ready SERVICE...: each is active, and the one-shot net succeeded.
services_ready() {
    local services service net_done=0
    services=$(timeout 30 "${INITCTL[@]}" list) || fail "initctl list"
    printf '%s\n' "$services" >&2
    for service in "$@"; do
        printf '%s\n' "$services" | grep -Eq "^$service +enabled +active" ||
            fail "$service service not active"
    done
    # net is a one-shot (iptables and resolver set-up): wait for it to finish.
    for _ in $(seq 60); do
        # (console-lines: a kernel message may be printed inside init's line)
        if "$TOOL" console-lines "$BUILD_DIR/run/$NAME/console.log" |
            grep -Eq "service 'net' \(pid [0-9]+\) exited with status 0"; then
            net_done=1
            break
        fi
        sleep 0.5
    done
    [ "$net_done" -eq 1 ] || fail "the net service (enclave-net.sh up, dns) did not succeed"
    say "boot to services ready: $((SECONDS - boot_start)) s"
}

# attested FILE TRUST...: FILE copied to /data/report.bin gets a document
# that ra-verify accepts from the host (through the host's ip-to-vsock on
# 127.0.0.1:8443, the enclave's ingress, ra-web-srv); TRUST are ra-verify's
# trust options. Prints ra-verify's output to stderr.
attested() {
    local file=$1 copied=$SECONDS ok=0
    shift
    trust=("$@")
    for _ in $(seq 120); do
        if verify --file "$file" --nonce >"$WORK/verify.out" 2>&1; then
            ok=1
            break
        fi
        sleep 0.5
    done
    cat "$WORK/verify.out" >&2
    [ "$ok" -eq 1 ] || fail "ra-verify did not accept the document of /data/report.bin"
    say "attestation ($RBUILDS_MACHINE): /data/report.bin verified from the host $((SECONDS - copied)) s after the copy"
}
verify() {
    ip netns exec "$NETNS" timeout 60 "$BIN/ra-verify" doc --url https://127.0.0.1:8443 \
        --path /data/report.bin "${trust[@]}" --timeout 20 "$@"
}
# passes CHECK...: each check is PASS in the last verification.
passes() {
    local check
    for check in "$@"; do
        grep -q "^PASS $check:" "$WORK/verify.out" || fail "ra-verify: no PASS for $check"
    done
}

# console_clean_and_drop [TEXT...]: the console judged by level, then
# power-off; each TEXT is a warning the test provoked, which must be there
# (oom-kill:NAME: an OOM report whose victim is NAME).
console_clean_and_drop() {
    local expected=() text
    for text in "$@"; do
        case "$text" in
            oom-kill:*) expected+=(--expected-oom-kill "${text#oom-kill:}") ;;
            *) expected+=(--expected "$text") ;;
        esac
    done
    # By level, not by words: kernel messages at warning or worse, init's
    # WARN and ERROR lines, and lines with no level (rbuilds/src/console.rs).
    "$TOOL" console-check "${expected[@]}" "$BUILD_DIR/run/$NAME/console.log" >&2 ||
        fail "the console shows problems (above)"
    "${RB[@]}" --cmd drop_enclave 2>&1 | tee "$WORK/drop.log" >&2 || fail "drop_enclave"
    grep -q 'did not power off by itself' "$WORK/drop.log" && fail "the enclave did not end by itself"
    if [ "$NAME" = "$PROD_NAME" ]; then
        # The host may stop the VM, not ask the enclave to shut down.
        grep -q 'refuses shutdown from the host' "$WORK/drop.log" ||
            fail "the production enclave accepted shutdown from the host"
        return 0
    fi
    # With ACPI (microvm) init powers off; without (nitro-enclave, as on Nitro)
    # it reboots, which ends the VM.
    grep -Eq 'reboot: (Power down|Restarting system)' "$BUILD_DIR/logs/$NAME-console.log" ||
        fail "the kernel did not power off or reboot"
}

# The debug image: the host is root in it, and every tool works as before.
debug_checks() {
    local pipe=("$BIN/pipeline")
    uname_out=$(timeout 60 "${pipe[@]}" run "${PIPE_ADDR[@]}" --connect-attempts 10 -- uname -a) ||
        fail "pipeline run -- uname -a"
    say "uname -a in the enclave: $uname_out"
    case "$uname_out" in
        "Linux enclave 6.12."*) ;;
        *) fail "unexpected kernel: $uname_out" ;;
    esac
    services_ready pipeline nats-server ra-web-srv fs-monitor egress dns ingress

    # 3 MB each way (guest -> host streams above 32 KiB need the kernel patch
    # in .linux/patches: see docs/rbuilds.md).
    head -c 3000000 /dev/urandom >"$WORK/in.bin"
    timeout 120 "${pipe[@]}" cp -q "$WORK/in.bin" enclave:/tmp/in.bin "${PIPE_ADDR[@]}" ||
        fail "pipeline cp to the enclave"
    inside=$(timeout 60 "${pipe[@]}" run "${PIPE_ADDR[@]}" -- sha256sum /tmp/in.bin) ||
        fail "sha256sum in the enclave"
    [ "${inside%% *}" = "$(sha256sum <"$WORK/in.bin" | cut -c1-64)" ] || fail "the copy in differs"
    timeout 120 "${pipe[@]}" cp -q enclave:/tmp/in.bin "$WORK/back.bin" "${PIPE_ADDR[@]}" ||
        fail "pipeline cp from the enclave"
    cmp "$WORK/in.bin" "$WORK/back.bin" || fail "the copy back differs"
    timeout 60 "${pipe[@]}" run "${PIPE_ADDR[@]}" -- cat /tmp/in.bin >"$WORK/cat.bin" ||
        fail "pipeline run -- cat"
    cmp "$WORK/in.bin" "$WORK/cat.bin" || fail "pipeline run -- cat: the output differs"
    say "pipeline: 3 MB in (sha256 equal inside), back by cp and by run -- cat (identical)"

    # Egress: the enclave fetches from OUTSIDE_IP, which only the namespace has.
    timeout 60 "${pipe[@]}" run "${PIPE_ADDR[@]}" -- \
        wget -q -O - "http://$OUTSIDE_IP:$OUTSIDE_PORT/payload.bin" >"$WORK/fetched.bin" ||
        fail "wget from the enclave through the egress proxy"
    cmp "$WORK/www/payload.bin" "$WORK/fetched.bin" || fail "the file fetched through egress differs"
    # (busybox 1.35's wget crashes with -T: the time limit is pipeline's.)
    if timeout 60 "${pipe[@]}" run "${PIPE_ADDR[@]}" --timeout 30 -- \
        wget -q -O /dev/null "http://$OUTSIDE_IP:$((OUTSIDE_PORT + 1))/"; then
        fail "a port the egress policy does not allow was reached"
    fi
    grep -q "egress denied by policy.*$OUTSIDE_IP:$((OUTSIDE_PORT + 1))" "$BUILD_DIR/run/$NAME/egress.log" ||
        fail "the host's egress proxy did not log the denial"
    say "egress: 200 KB fetched from $OUTSIDE_IP through the transparent proxies; a denied port refused"

    # Unattended attestation, checked from outside. In microvm there is no
    # /dev/nsm: ra-web-srv signs as development, and the root to pin is the
    # one it wrote (readable here: the host is root in a debug image).
    head -c 1000000 /dev/urandom >"$WORK/report.bin"
    # Private on the host: still hashed and attested in the enclave (the
    # pipeline writes it readable by the services).
    chmod 600 "$WORK/report.bin"
    timeout 60 "${pipe[@]}" cp -q "$WORK/report.bin" enclave:/data/report.bin "${PIPE_ADDR[@]}" ||
        fail "pipeline cp of report.bin into /data"
    timeout 60 "${pipe[@]}" cp -q enclave:/var/lib/ra-web-srv/dev-root.pem "$WORK/dev-root.pem" \
        "${PIPE_ADDR[@]}" || fail "fetching the development root"
    attested "$WORK/report.bin" --root "$WORK/dev-root.pem"
    passes tls_binding cose_signature certificate_chain user_data file_hash vrf_proof nonce
    head -c 1000 /dev/urandom >"$WORK/other.bin"
    if verify --file "$WORK/other.bin" >"$WORK/verify-other.out" 2>&1; then
        fail "ra-verify accepted the document for a different file"
    fi
    grep -q "^FAIL file_hash:" "$WORK/verify-other.out" || fail "ra-verify: no FAIL file_hash for a different file"
    if ip netns exec "$NETNS" timeout 60 "$BIN/ra-verify" doc --url https://127.0.0.1:8443 \
        --path /data/report.bin >"$WORK/verify-aws.out" 2>&1; then
        fail "a document that is not AWS-signed passed against the AWS root"
    fi
    if verify --pcrs "$BUILD_DIR/$NAME.eif.pcrs" --require-profile production >"$WORK/verify-profile.out" 2>&1; then
        fail "ra-verify --require-profile production accepted the debug image"
    fi
    grep -q "^FAIL profile:" "$WORK/verify-profile.out" || fail "ra-verify: no FAIL profile for the debug image"
    say "attestation: a different file, the pinned AWS root and --require-profile production are refused"
    full_inbox_checks
}

# The host fills /data to the last byte: the next copy is refused as "no
# space", and attestation goes on (the inbox, the bus's store and the
# services' state are separate size-limited mounts), for a file copied into
# /apps meanwhile and for /data once it is emptied.
full_inbox_checks() {
    local pipe=("$BIN/pipeline") ok=0 filled=$SECONDS
    if timeout 120 "${pipe[@]}" run "${PIPE_ADDR[@]}" -- dd if=/dev/zero of=/data/fill bs=1M >"$WORK/fill.out" 2>&1; then
        fail "dd filled /data without running out of space"
    fi
    grep -q "No space left on device" "$WORK/fill.out" || { cat "$WORK/fill.out" >&2; fail "filling /data did not end with no space"; }
    if timeout 60 "${pipe[@]}" cp -q "$WORK/other.bin" enclave:/data/late.bin "${PIPE_ADDR[@]}" >"$WORK/late.out" 2>&1; then
        fail "a copy into the full /data succeeded"
    fi
    grep -qi "no space" "$WORK/late.out" || { cat "$WORK/late.out" >&2; fail "the refused copy does not say no space"; }
    head -c 100000 /dev/urandom >"$WORK/during.bin"
    timeout 60 "${pipe[@]}" cp -q "$WORK/during.bin" enclave:/apps/during.bin "${PIPE_ADDR[@]}" ||
        fail "pipeline cp into /apps while /data is full"
    for _ in $(seq 120); do
        if ip netns exec "$NETNS" timeout 60 "$BIN/ra-verify" doc --url https://127.0.0.1:8443 \
            --path /apps/during.bin --file "$WORK/during.bin" --root "$WORK/dev-root.pem" \
            --nonce --timeout 20 >"$WORK/verify-during.out" 2>&1; then
            ok=1
            break
        fi
        sleep 0.5
    done
    [ "$ok" -eq 1 ] || { cat "$WORK/verify-during.out" >&2; fail "no attestation for /apps/during.bin while /data is full"; }
    say "full inbox: /data full, the copy refused as no space, /apps/during.bin attested $((SECONDS - filled)) s after the fill"
    timeout 60 "${pipe[@]}" run "${PIPE_ADDR[@]}" -- rm /data/fill || fail "rm /data/fill"
    # The space comes back once nothing holds the removed file open (fs-monitor
    # may still be hashing it).
    head -c 1000000 /dev/urandom >"$WORK/report.bin"
    ok=0
    for _ in $(seq 60); do
        if timeout 60 "${pipe[@]}" cp -q "$WORK/report.bin" enclave:/data/report.bin "${PIPE_ADDR[@]}" 2>"$WORK/refill.err"; then
            ok=1
            break
        fi
        sleep 1
    done
    [ "$ok" -eq 1 ] || { cat "$WORK/refill.err" >&2; fail "pipeline cp of a new report.bin into the emptied /data"; }
    attested "$WORK/report.bin" --root "$WORK/dev-root.pem"
    passes file_hash nonce
    say "full inbox: emptied, a new /data/report.bin attested $((SECONDS - filled)) s after the fill"
}

# refused WHAT COMMAND...: COMMAND must fail; its output is kept for a look.
refused() {
    local what=$1
    shift
    if timeout 60 "$@" >"$WORK/refused.out" 2>&1; then
        cat "$WORK/refused.out" >&2
        fail "the host could $what"
    fi
    say "refused as it should be: $what ($(tail -n 1 "$WORK/refused.out"))"
}

# The production image, the test playing the hostile host.
production_checks() {
    local pcrs=$BUILD_DIR/$NAME.eif.pcrs pipe=("$BIN/pipeline")
    # QEMU's emulated NSM: documents unsigned, with the image's real PCRs.
    local trust=(--expect-pcrs "$pcrs" --allow-unsigned)
    # (attested and verify set trust to ra-verify's options: keep these apart)
    local channel=("${trust[@]}")
    local deploy=("${PIPE_ADDR[@]}" --key "$WORK/deploy" "${trust[@]}")
    local admin=("${PIPE_ADDR[@]}" --key "$WORK/admin" "${trust[@]}")
    services_ready pipeline nats-server ra-web-srv fs-monitor egress dns ingress

    refused "use the pipeline without a key" "${pipe[@]}" run "${PIPE_ADDR[@]}" -- id
    refused "use the pipeline with a key the image does not list" \
        "${pipe[@]}" run "${PIPE_ADDR[@]}" --key "$WORK/stranger" "${trust[@]}" -- id
    head -c 1000 /dev/urandom >"$WORK/small.bin"
    refused "talk to an enclave whose PCRs are not the expected ones" \
        "${pipe[@]}" cp -q "$WORK/small.bin" enclave:/data/should-not-arrive.bin "${PIPE_ADDR[@]}" \
        --key "$WORK/deploy" --expect-pcrs "$BUILD_DIR/$DEBUG_NAME.eif.pcrs" --allow-unsigned
    grep -qi 'pcr' "$WORK/refused.out" || fail "the refusal does not name the PCRs"

    head -c 1000000 /dev/urandom >"$WORK/report.bin"
    # Private on the host: still hashed and attested in the enclave (the
    # pipeline writes it readable by the services).
    chmod 600 "$WORK/report.bin"
    timeout 60 "${pipe[@]}" cp -q "$WORK/report.bin" enclave:/data/report.bin "${deploy[@]}" ||
        fail "the deploy key could not copy into /data"
    attested "$WORK/report.bin" --allow-unsigned --pcrs "$pcrs" --require-profile production
    passes pcrs user_data file_hash vrf_proof nonce profile
    refused "read the attestation server's keys" \
        "${pipe[@]}" cp -q enclave:/var/lib/ra-web-srv/tls-key.pem "$WORK/stolen.pem" "${deploy[@]}"
    [ -e "$WORK/stolen.pem" ] && fail "a refused copy left $WORK/stolen.pem"
    refused "replace a measured binary" \
        "${pipe[@]}" cp -q "$WORK/report.bin" enclave:/usr/bin/ra-web-srv "${deploy[@]}"
    refused "run a command with the deploy key" "${pipe[@]}" run "${deploy[@]}" -- id
    refused "read /var/lib with the admin key" \
        "${pipe[@]}" cp -q enclave:/var/lib/ra-web-srv/vrf-key.json "$WORK/stolen.json" "${admin[@]}"
    # A key allowed to exec runs as the pipeline's own user, never root.
    id_out=$(timeout 60 "${pipe[@]}" run "${admin[@]}" -- id) || fail "the admin key could not run id"
    say "id in the enclave (admin key): $id_out"
    case "$id_out" in
        uid=0*) fail "commands run as root in a production image" ;;
    esac
    refused "stop the attestation server over vsock" "${INITCTL[@]}" stop ra-web-srv
    refused "stop the attestation server with a key not allowed to manage" \
        "${INITCTL[@]}" --key "$WORK/deploy" "${channel[@]}" stop ra-web-srv
    grep -q "read-only" "$WORK/refused.out" || fail "the deploy key's stop was not refused as read-only"
    services_ready ra-web-srv
    # The admin key may manage init's services, over the attested channel.
    timeout 60 "${INITCTL[@]}" --key "$WORK/admin" "${channel[@]}" restart fs-monitor ||
        fail "the admin key could not restart fs-monitor over the attested channel"
    services_ready fs-monitor
    say "initctl: the admin key restarted fs-monitor over the attested channel"
    trust=(--allow-unsigned --pcrs "$BUILD_DIR/$DEBUG_NAME.eif.pcrs" --require-profile production)
    if verify >"$WORK/verify-debug.out" 2>&1; then
        fail "the production enclave passed against the debug image's PCRs"
    fi
    grep -q "^FAIL pcrs:" "$WORK/verify-debug.out" || fail "ra-verify: no FAIL pcrs against the debug image"
    say "production: the host can copy into /data with its key and nothing more"
}

"${RB[@]}" --cmd make_qemu || fail "make_qemu"
# microvm: the EIF's parts, no NSM (ra-web-srv signs as development);
# nitro-enclave: the EIF itself, with QEMU's emulated NSM (make_qemu).
if [ "$PARTS" != production ]; then
    boot "$DEBUG_NAME" microvm
    debug_checks
    fault_checks
    # The faults were worth warnings.
    console_clean_and_drop "${FAULT_EXPECTED[@]}"
fi
if [ "$PARTS" != debug ]; then
    boot "$PROD_NAME" nitro-enclave
    production_checks
    app_checks
    # The refused stop was worth a warning.
    console_clean_and_drop "control request ServiceStop refused: the connection is read-only"
fi
say "PASS${PARTS:+ ($PARTS only)} (total $((SECONDS - start)) s)"
