# shellcheck shell=bash
# --app DIR (or RBUILDS_APP=DIR): an application built into the image
# without a Docker engine, from its manifest DIR/app.toml (docs/apps.md).
#
#   make_apps      its binaries, static and reproducible like the
#                  framework's, in their own target directory
#                  (BUILD_DIR/app-target: the app's rustflags differ)
#   make_ramdisks  the binaries, files and init services in the customer
#                  ramdisk (measured in PCR2), a vsock-to-ip service per
#                  published port, and NAME.app.sh, the checked manifest the
#                  runner reads; make_eif records the app in NAME.eif.pcrs
#   run_eif_image  the VM's memory is at least the manifest's; each port is
#                  published on the host's 127.0.0.1 by ip-to-vsock (the
#                  enclave's vsock-to-ip connects it to the app)
#   drop_enclave   stops those host proxies
#
# rbuilds-tool app-manifest checks the manifest (unknown keys, paths leaving
# the app's directory, reserved destinations, ports, services that would run
# as root) and prints it as shell assignments: APP_NAME, APP_DIR,
# APP_MEMORY_MIB, APP_RUSTFLAGS, and flat arrays of records APP_BINARIES
# (package bin dest), APP_FILES (source dest mode), APP_SERVICES (source
# name), APP_PORTS (host, published enclave port, http or https).
# Sourced by rbuilds.sh; uses its settings and helpers.

APP_PATH=${RBUILDS_APP:+$(realpath -m "$RBUILDS_APP")}
APP_TARGET_DIR=$BUILD_DIR/app-target
APP_LOADED=0

# app_record: the checked manifest of image IMAGE_NAME (written by
# make_ramdisks, read by run_eif_image).
app_record() { printf '%s/%s.app.sh\n' "$BUILD_DIR" "$IMAGE_NAME"; }

# app_load: reads and checks the manifest of --app; false without --app.
app_load() {
    [ -n "$APP_PATH" ] || return 1
    [ "$APP_LOADED" -eq 1 ] && return 0
    [ -f "$APP_PATH/app.toml" ] || die "--app $APP_PATH: no app.toml there (see docs/apps.md)"
    make_tool
    local vars
    vars=$("$TOOL" app-manifest "$APP_PATH" --passwd "$RBUILDS_DIR/image/etc/passwd") ||
        die "--app $APP_PATH: the manifest is not usable (above)"
    eval "$vars"
    APP_VARS=$vars
    APP_LOADED=1
}

# app_static_build PACKAGE BIN: one binary, static, as static_build builds
# the framework's (paths remapped, SOURCE_DATE_EPOCH 0), with the manifest's
# rustflags; CARGO_ENCODED_RUSTFLAGS keeps each flag one word.
app_static_build() {
    local package=$1 bin=$2 flags encoded
    flags=(-C target-feature=+crt-static "--remap-path-prefix=$ROOT_DIR=/src"
        "--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
        "--remap-path-prefix=${RUSTUP_HOME:-$HOME/.rustup}=/rustup"
        "--remap-path-prefix=$APP_TARGET_DIR=/target" "${APP_RUSTFLAGS[@]}")
    encoded=$(
        IFS=$'\x1f'
        printf '%s' "${flags[*]}"
    )
    (cd "$ROOT_DIR" && CARGO_ENCODED_RUSTFLAGS=$encoded CARGO_TARGET_DIR=$APP_TARGET_DIR \
        OPENSSL_STATIC=1 SOURCE_DATE_EPOCH=0 \
        cargo build --quiet --release --locked --target "$RUST_TARGET" -p "$package" --bin "$bin") ||
        die "static build of $package ($bin) for app $APP_NAME failed"
}

# app_build: the app's binaries (no-op without --app; cargo skips what is
# up to date).
app_build() {
    app_load || return 0
    set_build_env
    local i start=$SECONDS
    for ((i = 0; i < ${#APP_BINARIES[@]}; i += 3)); do
        log "app $APP_NAME: static build of ${APP_BINARIES[i]} (${APP_BINARIES[i + 1]})"
        app_static_build "${APP_BINARIES[i]}" "${APP_BINARIES[i + 1]}"
    done
    log "app $APP_NAME: binaries built in $((SECONDS - start)) s ($APP_TARGET_DIR/$RUST_TARGET/release)"
}

# app_install SRC DEST MODE: like install_file, but never over a file the
# framework (or another entry) already put there.
app_install() {
    [ -e "$2" ] || [ -L "$2" ] && die "app $APP_NAME: ${2#"$STAGE_ROOT"} is already in the image"
    install_file "$1" "$2" "$3"
}

# app_rootfs ROOT BIN: the app's part of the root file system ROOT (BIN:
# the framework's static binaries); without --app, forgets any earlier
# app of this image.
app_rootfs() {
    local root=$1 bin=$2 i name out f
    rm -f "$(app_record)"
    app_load || return 0
    app_build
    STAGE_ROOT=$root
    local app_bin=$APP_TARGET_DIR/$RUST_TARGET/release
    for ((i = 0; i < ${#APP_BINARIES[@]}; i += 3)); do
        app_install "$app_bin/${APP_BINARIES[i + 1]}" "$root${APP_BINARIES[i + 2]}" 0755
    done
    for ((i = 0; i < ${#APP_FILES[@]}; i += 3)); do
        app_install "${APP_FILES[i]}" "$root${APP_FILES[i + 1]}" "${APP_FILES[i + 2]}"
    done
    for ((i = 0; i < ${#APP_SERVICES[@]}; i += 2)); do
        app_install "${APP_SERVICES[i]}" "$root/service/${APP_SERVICES[i + 1]}.service" 0644
    done
    if [ "${#APP_PORTS[@]}" -gt 0 ]; then
        out=$BUILD_DIR/app-ingress
        rm -rf "$out"
        "$TOOL" app-manifest "$APP_PATH" --ingress-dir "$out" >/dev/null ||
            die "cannot write the app's port services"
        for f in "$out"/*.service; do
            app_install "$f" "$root/service/$(basename "$f")" 0644
        done
        # TLS ports: ra-web-srv terminates them (its --tls-ingress-file).
        if [ -f "$out/tls-ingress" ]; then
            app_install "$out/tls-ingress" "$root/etc/ra-web-srv/tls-ingress" 0644
        fi
        rm -rf "$out"
        if [ ! -e "$root/usr/bin/vsock-to-ip" ]; then
            [ -x "$bin/vsock-to-ip" ] || die "$bin/vsock-to-ip is missing: run make_apps first"
            install_file "$bin/vsock-to-ip" "$root/usr/bin/vsock-to-ip" 0755
        fi
    fi
    printf '%s\n' "$APP_VARS" >"$(app_record)"
    name=""
    for ((i = 0; i < ${#APP_PORTS[@]}; i += 3)); do
        name+=" ${APP_PORTS[i + 2]}://127.0.0.1:${APP_PORTS[i]}->${APP_PORTS[i + 1]}"
    done
    log "app $APP_NAME: $((${#APP_BINARIES[@]} / 3)) binaries, $((${#APP_FILES[@]} / 3)) files," \
        "$((${#APP_SERVICES[@]} / 2)) service(s), ports:${name:- none}, memory $APP_MEMORY_MIB MiB"
}

# app_record_pcrs PCRS: the app's name in the image's .eif.pcrs file.
app_record_pcrs() {
    app_load || return 0
    "$TOOL" app-manifest "$APP_PATH" --record-pcrs "$1" >/dev/null ||
        die "cannot record the app in $1"
}

# app_run_settings: before an image boots, the app it was built with (its
# record, not --app: what runs is what was built): the VM's memory is at
# least the app's.
app_run_settings() {
    local record
    record=$(app_record)
    if [ ! -f "$record" ]; then
        [ -z "$APP_PATH" ] || die "--app: image $IMAGE_NAME was built without an app (make_eif --app first)"
        return 0
    fi
    # shellcheck source=/dev/null
    source "$record"
    APP_LOADED=1
    if [ "$APP_MEMORY_MIB" -gt "$MEMORY_MIB" ]; then
        log "app $APP_NAME needs $APP_MEMORY_MIB MiB: the VM gets that instead of $MEMORY_MIB"
        MEMORY_MIB=$APP_MEMORY_MIB
    fi
}

# app_host_start DIR KIND: the host side of each published port, as
# network_host_start does for 8443 (KIND hvsock: local VM, vsock: Nitro).
app_host_start() {
    local dir=$1 kind=$2 bin=$STATIC_TARGET_DIR/$RUST_TARGET/release enclave i
    [ "$APP_LOADED" -eq 1 ] && [ "${#APP_PORTS[@]}" -gt 0 ] || return 0
    [ -x "$bin/ip-to-vsock" ] || die "$bin/ip-to-vsock is missing: run make_apps first"
    if [ "$kind" = hvsock ]; then
        enclave="hvsock:$dir/vm.vsock:"
    else
        enclave="vsock:$(sed -n 's/^cid=//p' "$dir/info"):"
    fi
    : >"$dir/app-proxies"
    for ((i = 0; i < ${#APP_PORTS[@]}; i += 3)); do
        start_host_proxy "$dir" "app-${APP_PORTS[i]}" "$bin/ip-to-vsock" \
            -i "127.0.0.1:${APP_PORTS[i]}" -v "$enclave${APP_PORTS[i + 1]}"
        printf 'app-%s\n' "${APP_PORTS[i]}" >>"$dir/app-proxies"
        log "app $APP_NAME: ${APP_PORTS[i + 2]}://127.0.0.1:${APP_PORTS[i]} -> enclave 127.0.0.1:${APP_PORTS[i + 1]}"
    done
}

# app_host_stop DIR: stops the proxies app_host_start started.
app_host_stop() {
    local dir=$1 name
    [ -f "$dir/app-proxies" ] || return 0
    while IFS= read -r name; do
        if alive "$dir/$name.pid"; then
            kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
        fi
    done <"$dir/app-proxies"
}
