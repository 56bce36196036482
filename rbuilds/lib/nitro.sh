# shellcheck shell=bash
# Running on a Nitro host: nitro-cli starts the enclave, answers its boot
# heartbeat (vsock port 9000) and gives it a CID that changes on every run,
# so the CID is read from nitro-cli's answer and kept in the run directory.
# Sourced by rbuilds.sh; uses its settings and helpers (log, die, step...).

# on_nitro: nitro-cli is here and RBUILDS_RUNNER does not ask for QEMU.
on_nitro() {
    [ "${RBUILDS_RUNNER:-auto}" != qemu ] && command -v nitro-cli >/dev/null 2>&1
}

# nitro_run DIR DEBUG: run-enclave with the configured memory and CPUs;
# DEBUG=1 adds --debug-mode (console readable, PCRs read as zeros).
nitro_run() {
    local dir=$1 debug=$2 args id cid
    ensure_apt jq
    args=(run-enclave --eif-path "$EIF" --memory "$MEMORY_MIB" --cpu-count "$CPUS")
    [ -n "${RBUILDS_GUEST_CID_FIXED:-}" ] && args+=(--enclave-cid "$RBUILDS_GUEST_CID_FIXED")
    [ "$debug" -eq 1 ] && args+=(--debug-mode)
    log "nitro-cli ${args[*]}"
    nitro-cli "${args[@]}" >"$dir/run.json" 2>"$dir/nitro-cli.log" ||
        die "nitro-cli run-enclave failed: $(tail -n 5 "$dir/nitro-cli.log")"
    id=$(jq -er .EnclaveID "$dir/run.json") || die "no EnclaveID in nitro-cli's answer ($dir/run.json)"
    cid=$(jq -er .EnclaveCID "$dir/run.json") || die "no EnclaveCID in nitro-cli's answer ($dir/run.json)"
    printf 'name=%s\nid=%s\ncid=%s\nmachine=nitro\ndebug=%s\n' "$IMAGE_NAME" "$id" "$cid" "$debug" \
        >"$dir/info"
    [ "$NETWORK" -eq 1 ] && network_host_start "$dir" vsock
    log "enclave $id running with CID $cid (nitro-cli answered its heartbeat)"
    log "reach it with: pipeline run --addr vsock:$cid:$PIPELINE_PORT -- uname -a"
    log "               initctl -a vsock:$cid:$INITCTL_PORT list"
}

# nitro_info_value DIR KEY: a value of the run directory's info file.
nitro_info_value() { sed -n "s/^$2=//p" "$1/info"; }

nitro_console() {
    local dir=$1
    [ "$(nitro_info_value "$dir" debug)" = 1 ] ||
        die "the console of a Nitro enclave is readable in debug mode only (run_eif_image_debugmode_cli)"
    nitro-cli console --enclave-id "$(nitro_info_value "$dir" id)"
}

nitro_list() {
    nitro-cli describe-enclaves
}

# nitro_drop DIR: initctl shutdown over vsock, then terminate-enclave (which
# also covers an enclave that did not stop by itself).
nitro_drop() {
    local dir=$1 cid id initctl=$STATIC_TARGET_DIR/$RUST_TARGET/release/initctl
    cid=$(nitro_info_value "$dir" cid)
    id=$(nitro_info_value "$dir" id)
    if [ -x "$initctl" ]; then
        timeout 10 "$initctl" -a "vsock:$cid:$INITCTL_PORT" shutdown >/dev/null 2>&1 ||
            log "initctl shutdown did not answer or was refused (production): terminating"
        sleep 2
    fi
    nitro-cli terminate-enclave --enclave-id "$id" >/dev/null 2>&1 ||
        log "terminate-enclave: $id is already gone"
    network_host_stop "$dir"
}
