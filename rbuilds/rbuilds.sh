#!/usr/bin/env bash
# rbuilds.sh: reproducible enclave images (EIF) with our own kernel, init and
# services, and a local runner that boots them in a QEMU micro-VM.
#
# Three ways to use it:
#   ./rbuilds.sh --cmd make_all            one command, then exit
#   ./rbuilds.sh                           a prompt (on a terminal)
#   { echo make_all; echo list_enclaves; } | ./rbuilds.sh
#                                          commands read from stdin
# `lsh` in the last two modes runs the next line as a host shell command.
# Run `./rbuilds.sh --man` for every command and setting.
set -euo pipefail

RBUILDS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(dirname "$RBUILDS_DIR")

# Settings (environment).
BUILD_DIR=${RBUILDS_BUILD_DIR:-$RBUILDS_DIR/build}
# The kernel and QEMU, keyed by everything that goes into them, outlive a
# clone and its build directory: a fresh clone reuses them.
CACHE_DIR=${RBUILDS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/enclaves-framework/rbuilds}
IMAGE_NAME=${RBUILDS_IMAGE_NAME:-enclave}
JOBS=${RBUILDS_JOBS:-2}
MEMORY_MIB=${RBUILDS_MEMORY_MIB:-512}
CPUS=${RBUILDS_CPUS:-2}
GUEST_CID=${RBUILDS_GUEST_CID:-16}
BOOT_TIMEOUT=${RBUILDS_BOOT_TIMEOUT:-120}

KERNEL_FRAGMENT=$ROOT_DIR/.linux/enclave.config
KERNEL_PATCHES=$ROOT_DIR/.linux/patches
KERNEL_PACKAGE=linux-source-6.12
KERNEL_TARBALL=/usr/src/$KERNEL_PACKAGE.tar.xz
# Nitro's kernel command line (nitro-cli's bootstrap images), without
# `nomodules`: this kernel has no module support, so the word would reach
# init as an unknown argument. `console_msg_format=syslog` puts each kernel
# message's level in front of it on the console (`<3>` an error, `<6>`
# information), so a console is judged by level (rbuilds-tool console-check).
KERNEL_CMDLINE="reboot=k panic=30 pci=off console=ttyS0 console_msg_format=syslog i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd random.trust_cpu=on"
RUST_TARGET=x86_64-unknown-linux-gnu
STATIC_TARGET_DIR=$BUILD_DIR/target
TOOL_TARGET_DIR=$BUILD_DIR/tool-target
TOOL=$TOOL_TARGET_DIR/release/rbuilds-tool
EIF=$BUILD_DIR/$IMAGE_NAME.eif
# The image's own ramdisk (the bootstrap ramdisk, init alone, is shared).
CUSTOMER_CPIO=$BUILD_DIR/$IMAGE_NAME.customer.cpio
RUN_DIR=$BUILD_DIR/run
# Ports inside the enclave.
PIPELINE_PORT=53000
INITCTL_PORT=9001
HEARTBEAT_PORT=9000
# initctl's exit status when init refuses a command (read-only control).
INITCTL_REFUSED=77

DEBUG=0
NETWORK=${RBUILDS_NETWORK:-0}
TTY=0
DOCKERFILE=${RBUILDS_DOCKERFILE:-}
# The build context of --dockerfile (default: the Dockerfile's directory).
DOCKER_CONTEXT=${RBUILDS_DOCKER_CONTEXT:-}
# production: no remote exec, an attested and encrypted pipeline for the
# keys of AUTHORIZED_KEYS only (none: no pipeline listener), init control
# from the host read-only; debug: the host is root in the enclave.
PROFILE=${RBUILDS_PROFILE:-production}
AUTHORIZED_KEYS=${RBUILDS_AUTHORIZED_KEYS:-}

# Messages go to stderr, or to file descriptor 3 when the caller opened it
# (`3>&1`, as with --tty, keeps them apart from a command's own output).
log() {
    if [ "${TTY:-0}" -eq 1 ] && { true >&3; } 2>/dev/null; then
        printf '[rbuilds] %s\n' "$*" >&3
    else
        printf '[rbuilds] %s\n' "$*" >&2
    fi
}
# step NAME: announces a build step.
step() { log "== $* =="; }
# ensure_apt and ensure_cargo_tool, shared with tools/devtool; they report
# through say and die, which are rbuilds's own here (defined after).
# shellcheck source=tools/functions
source "$ROOT_DIR/tools/functions"
say() { log "$@"; }
die() {
    printf '[rbuilds] ERROR: %s\n' "$*" >&2
    exit 1
}
# shellcheck source=rbuilds/lib/errtrap.sh
source "$RBUILDS_DIR/lib/errtrap.sh"
report_errors rbuilds

# ---------------------------------------------------------------- helpers

# shellcheck source=rbuilds/lib/nitro.sh
source "$RBUILDS_DIR/lib/nitro.sh"
# shellcheck source=rbuilds/lib/network.sh
source "$RBUILDS_DIR/lib/network.sh"
# shellcheck source=rbuilds/lib/docker.sh
source "$RBUILDS_DIR/lib/docker.sh"
# shellcheck source=rbuilds/lib/qemu.sh
source "$RBUILDS_DIR/lib/qemu.sh"
# shellcheck source=rbuilds/lib/profile.sh
source "$RBUILDS_DIR/lib/profile.sh"
# shellcheck source=rbuilds/lib/hostsup.sh
source "$RBUILDS_DIR/lib/hostsup.sh"
# shellcheck source=rbuilds/lib/app.sh
source "$RBUILDS_DIR/lib/app.sh"

# The reproducibility inputs: everything time-dependent comes from the last
# commit, so two builds of one commit agree to the byte.
set_build_env() {
    local epoch
    epoch=$(git -C "$ROOT_DIR" log -1 --format=%ct 2>/dev/null) ||
        die "cannot read the last commit time of $ROOT_DIR (SOURCE_DATE_EPOCH)"
    export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$epoch}
    export TZ=UTC LC_ALL=C
    umask 022
}

ensure_root_or_sudo() {
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    else
        SUDO=(sudo)
    fi
}

# The kernel source and QEMU 10 come from bookworm-backports.
ensure_backports() {
    local list=/etc/apt/sources.list.d/bookworm-backports.sources
    grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
    ensure_root_or_sudo
    log "adding the bookworm-backports suite to apt's sources ($list)"
    printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: bookworm-backports" \
        "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" |
        "${SUDO[@]}" tee "$list" >/dev/null || die "cannot write $list"
    "${SUDO[@]}" apt-get update -qq >&2 || die "apt-get update failed"
}

# The host-side helper (cpio writer, EIF reader, heartbeat answer).
make_tool() {
    [ -x "$TOOL" ] && [ "$TOOL" -nt "$RBUILDS_DIR/Cargo.toml" ] &&
        [ -z "$(find "$RBUILDS_DIR/src" -newer "$TOOL" -print -quit)" ] && return 0
    log "building rbuilds-tool"
    (cd "$ROOT_DIR" && CARGO_TARGET_DIR=$TOOL_TARGET_DIR cargo build --quiet --release --locked \
        -p rbuilds --bin rbuilds-tool) || die "cannot build rbuilds-tool"
}

# cache_tmp ENTRY: prints a fresh temporary directory for a cache entry
# (ENTRY.tmp.PID: builds that share the cache each write their own and
# rename it into place), after removing those that builds no longer running
# left behind.
cache_tmp() {
    local entry=$1 stale pid
    for stale in "$entry".tmp.*; do
        [ -d "$stale" ] || continue
        pid=${stale##*.}
        kill -0 "$pid" 2>/dev/null || rm -rf "$stale"
    done
    printf '%s.tmp.%s\n' "$entry" "$$"
}

# ----------------------------------------------------------------- kernel

# kernel_key: the source package's version, then a hash of the configuration
# fragment, the recipe, the patches and the compiler and linker versions (a
# cached kernel is shared by every clone, so all of its inputs name it).
kernel_key() {
    local version hash
    version=$(dpkg-query -W -f='${Version}' "$KERNEL_PACKAGE")
    hash=$({
        cat "$KERNEL_FRAGMENT" "$RBUILDS_DIR/kernel.recipe" "$KERNEL_PATCHES"/*.patch
        gcc --version | head -n 1
        ld --version | head -n 1
    } | sha256sum | cut -c1-16)
    printf '%s-%s\n' "$version" "$hash"
}

make_kernel() {
    step "make_kernel"
    ensure_backports
    ensure_apt build-essential bc flex bison libelf-dev libssl-dev cpio xz-utils patch
    ensure_apt -t bookworm-backports "$KERNEL_PACKAGE"
    set_build_env
    local key dir src tmp
    key=$(kernel_key)
    dir=$CACHE_DIR/kernel/$key
    mkdir -p "$BUILD_DIR/kernel" "$CACHE_DIR/kernel"
    if [ -s "$dir/bzImage" ] && [ -s "$dir/bzImage.config" ]; then
        log "kernel $key is cached: $dir/bzImage"
        ln -sfn "$dir" "$BUILD_DIR/kernel/current"
        return 0
    fi
    src=$BUILD_DIR/kernel/src
    tmp=$(cache_tmp "$dir")
    rm -rf "$src" "$tmp"
    mkdir -p "$src" "$tmp"
    log "unpacking $KERNEL_TARBALL"
    tar -xJf "$KERNEL_TARBALL" -C "$src" --strip-components=1 || die "cannot unpack $KERNEL_TARBALL"
    # shellcheck source=rbuilds/kernel.recipe
    source "$RBUILDS_DIR/kernel.recipe"
    # Every command is checked: errexit does not apply inside a subshell
    # whose status is tested.
    (
        cd "$src" || die "cannot enter $src"
        local patch
        for patch in "$KERNEL_PATCHES"/*.patch; do
            log "applying $(basename "$patch")"
            patch -p1 --forward --fuzz=0 --no-backup-if-mismatch -s <"$patch" ||
                die "$(basename "$patch") does not apply to $KERNEL_PACKAGE"
        done
        # The kernel's time stamp comes from its source package (the tarball's
        # mtime, set by dpkg from the .deb), not from the commit: a new commit
        # reuses the cached kernel and still gets the same bytes.
        KBUILD_BUILD_TIMESTAMP="@$(stat -c %Y "$KERNEL_TARBALL")"
        export KBUILD_BUILD_TIMESTAMP KBUILD_BUILD_USER KBUILD_BUILD_HOST KBUILD_BUILD_VERSION
        make -s tinyconfig >&2 || die "make tinyconfig failed"
        scripts/kconfig/merge_config.sh -m .config "$KERNEL_FRAGMENT" >/dev/null ||
            die "cannot merge $KERNEL_FRAGMENT into the configuration"
        make -s olddefconfig >&2 || die "make olddefconfig failed"
        check_kernel_config .config "$KERNEL_FRAGMENT"
        log "building bzImage with $JOBS jobs (about 3 minutes on 2 cores)"
        local start=$SECONDS
        make -s -j"$JOBS" bzImage >&2 || die "make bzImage failed"
        log "kernel built in $((SECONDS - start)) s"
    ) || die "kernel build failed (sources in $src)"
    cp "$src/arch/x86/boot/bzImage" "$tmp/bzImage"
    cp "$src/.config" "$tmp/bzImage.config"
    rm -rf "$dir"
    mv -T "$tmp" "$dir" || die "cannot move the kernel into the cache ($dir)"
    rm -rf "$src"
    ln -sfn "$dir" "$BUILD_DIR/kernel/current"
    log "kernel $key: $dir/bzImage ($(stat -c %s "$dir/bzImage") bytes)"
}

# check_kernel_config CONFIG FRAGMENT: every option of FRAGMENT kept its value.
check_kernel_config() {
    local config=$1 fragment=$2 line name want bad=0
    while IFS= read -r line; do
        case "$line" in CONFIG_*=*) ;; *) continue ;; esac
        name=${line%%=*}
        want=${line#*=}
        if [ "$want" = n ]; then
            grep -qx "# $name is not set" "$config" || grep -q "^$name=" "$config" || continue
            grep -q "^$name=" "$config" && {
                log "kernel config: $name is set, wanted off"
                bad=1
            }
        elif ! grep -qx "$name=$want" "$config"; then
            log "kernel config: $name=$want was dropped ($(grep -E "^$name=|# $name is not set" "$config" || echo 'not present'))"
            bad=1
        fi
    done <"$fragment"
    [ "$bad" -eq 0 ] || die "kernel config: options of $fragment lost (missing dependencies?)"
}

# ------------------------------------------------------- init, apps, rootfs

# static_build PACKAGE...: static release binaries, paths remapped so the
# bytes do not depend on where the clone or the toolchain lives.
static_build() {
    local packages=() p rustflags
    for p in "$@"; do packages+=(-p "$p"); done
    rustflags="-C target-feature=+crt-static --remap-path-prefix=$ROOT_DIR=/src"
    rustflags+=" --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
    rustflags+=" --remap-path-prefix=${RUSTUP_HOME:-$HOME/.rustup}=/rustup"
    # OpenSSL (SHA3 and the VRF of ra-web-srv) linked statically from
    # libssl-dev's archives. SOURCE_DATE_EPOCH is pinned to 0 here: the cc
    # crate makes every C-compiling build script rerun when it changes, so the
    # commit's time would rebuild ring and everything above it after each
    # commit; no binary of ours records its build time.
    (cd "$ROOT_DIR" && RUSTFLAGS=$rustflags CARGO_TARGET_DIR=$STATIC_TARGET_DIR OPENSSL_STATIC=1 SOURCE_DATE_EPOCH=0 \
        cargo build --quiet --release --locked --target "$RUST_TARGET" "${packages[@]}") ||
        die "static build of $* failed"
}

make_init() {
    step "make_init"
    set_build_env
    static_build enclave-init
    log "init, initctl: $STATIC_TARGET_DIR/$RUST_TARGET/release/{init,initctl}"
}

make_apps() {
    step "make_apps"
    ensure_apt busybox-static nats-server libssl-dev
    set_build_env
    # ra-verify is for the host (checking the enclave's documents).
    static_build pipeline pf-proxy ra-web-srv fs-monitor ra-verify
    log "pipeline, pf-proxy, ra-web-srv, fs-monitor, ra-verify: $STATIC_TARGET_DIR/$RUST_TARGET/release/"
    app_build
}

# install_file SRC DEST MODE
install_file() { install -D -m "$3" "$1" "$2" || die "cannot install $1 as $2"; }

# install_dynamic BIN ROOT: a dynamically linked program of the build host
# and the shared libraries it loads, at their own paths under ROOT.
install_dynamic() {
    local bin=$1 root=$2 lib
    install_file "$bin" "$root$bin" 0755
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        install_file "$(readlink -f "$lib")" "$root$lib" 0755
    done
}

# The two ramdisks, as nitro-cli makes them: bootstrap (init) and customer
# (the root file system under /rootfs, which init chroots into, plus init's
# configuration).
make_ramdisks() {
    step "make_ramdisks"
    make_tool
    set_build_env
    local bin=$STATIC_TARGET_DIR/$RUST_TARGET/release stage=$BUILD_DIR/stage f
    for f in init initctl pipeline ra-web-srv fs-monitor; do
        [ -x "$bin/$f" ] || die "$bin/$f is missing: run make_init and make_apps first"
    done
    rm -rf "$stage"
    mkdir -p "$stage/bootstrap" "$stage/customer"
    install_file "$bin/init" "$stage/bootstrap/init" 0755
    mkdir -p "$stage/bootstrap/dev" "$stage/bootstrap/proc" "$stage/bootstrap/sys"

    local root=$stage/customer/rootfs
    mkdir -p "$root"
    docker_app_layer "$root"
    install_file "$bin/initctl" "$root/usr/bin/initctl" 0755
    install_file "$bin/pipeline" "$root/usr/bin/pipeline" 0755
    install_file "$bin/ra-web-srv" "$root/usr/bin/ra-web-srv" 0755
    install_file "$bin/fs-monitor" "$root/usr/bin/fs-monitor" 0755
    install_file /bin/busybox "$root/bin/busybox" 0755
    install_dynamic /usr/sbin/nats-server "$root"
    install_file "$RBUILDS_DIR/image/nats-server.conf" "$root/etc/nats-server.conf" 0644
    # The services' users and groups (init drops to them; see service/).
    install_file "$RBUILDS_DIR/image/etc/passwd" "$root/etc/passwd" 0644
    install_file "$RBUILDS_DIR/image/etc/group" "$root/etc/group" 0644
    for f in $(/bin/busybox --list); do
        [ "$f" = busybox ] || [ "$f" = init ] || ln -s busybox "$root/bin/$f"
    done
    for f in "$RBUILDS_DIR"/image/service/*.service; do
        install_file "$f" "$root/service/$(basename "$f")" 0644
    done
    mkdir -p "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/run" "$root/log" \
        "$root/etc" "$root/root" "$root/var/lib" "$root/data" "$root/apps"
    profile_rootfs "$stage/customer"
    install_file "$RBUILDS_DIR/image/initctl.yaml" "$root/etc/initctl.yaml" 0644
    [ "$NETWORK" -eq 1 ] && network_rootfs "$root" "$bin"
    app_rootfs "$root" "$bin"

    "$TOOL" cpio --root "$stage/bootstrap" --mtime "$SOURCE_DATE_EPOCH" \
        --output "$BUILD_DIR/bootstrap.cpio" || die "cannot write the bootstrap ramdisk"
    "$TOOL" cpio --root "$stage/customer" --mtime "$SOURCE_DATE_EPOCH" \
        --output "$CUSTOMER_CPIO" || die "cannot write the customer ramdisk"
    log "ramdisks: bootstrap.cpio $(stat -c %s "$BUILD_DIR/bootstrap.cpio") bytes," \
        "$(basename "$CUSTOMER_CPIO") $(stat -c %s "$CUSTOMER_CPIO") bytes ($PROFILE profile)"
}

make_eif() {
    step "make_eif"
    ensure_cargo_tool eif_build eif_build
    set_build_env
    local kernel=$BUILD_DIR/kernel/current
    [ -s "$kernel/bzImage" ] || die "no kernel in $kernel: run make_kernel first"
    make_ramdisks
    local build_time
    build_time=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
    rm -f "$EIF" "$EIF.pcrs"
    eif_build --kernel "$kernel/bzImage" --kernel_config "$kernel/bzImage.config" \
        --cmdline "$KERNEL_CMDLINE" \
        --ramdisk "$BUILD_DIR/bootstrap.cpio" --ramdisk "$CUSTOMER_CPIO" \
        --name "$IMAGE_NAME" --version "$(git -C "$ROOT_DIR" describe --always --dirty)" \
        --build-time "$build_time" --img-os enclaves-framework --img-kernel "$(basename "$(readlink "$kernel")")" \
        --output "$EIF" >"$BUILD_DIR/eif_build.out" || die "eif_build failed"
    "$TOOL" pcrs --eif-build-output "$BUILD_DIR/eif_build.out" --output "$EIF.pcrs" --profile "$PROFILE" ||
        die "cannot read the PCRs eif_build printed"
    app_record_pcrs "$EIF.pcrs"
    log "EIF: $EIF ($(stat -c %s "$EIF") bytes)"
    cat "$EIF.pcrs"
}

make_all() {
    local start=$SECONDS t
    t=$SECONDS
    make_kernel
    log "make_kernel: $((SECONDS - t)) s"
    t=$SECONDS
    make_init
    log "make_init: $((SECONDS - t)) s"
    t=$SECONDS
    make_apps
    log "make_apps: $((SECONDS - t)) s"
    t=$SECONDS
    make_eif
    log "make_eif: $((SECONDS - t)) s"
    log "make_all: $((SECONDS - start)) s"
}

make_clear() {
    step "make_clear"
    rm -rf "$BUILD_DIR/stage" "$BUILD_DIR/bootstrap.cpio" "$CUSTOMER_CPIO" "$EIF" "$EIF.pcrs" "$BUILD_DIR/eif_build.out" \
        "$(app_record)"
    log "removed the image and its ramdisks (cargo targets stay: rm -rf $BUILD_DIR; the kernel and QEMU stay in $CACHE_DIR)"
}

# ---------------------------------------------------------------- running
#
# Locally (no nitro-cli) the EIF's own kernel, command line and ramdisks are
# extracted and booted in a QEMU micro-VM; vhost-device-vsock gives it a
# real vsock that the host reaches as hvsock:RUN_DIR/NAME/vm.vsock:PORT.

enclave_dir() { printf '%s/%s\n' "$RUN_DIR" "$IMAGE_NAME"; }

# is_nitro_run DIR: the enclave recorded in DIR was started by nitro-cli.
is_nitro_run() { grep -qx 'machine=nitro' "$1/info" 2>/dev/null; }


ensure_runner() {
    ensure_backports
    ensure_apt -t bookworm-backports qemu-system-x86
    ensure_cargo_tool vhost-device-vsock vhost-device-vsock
    make_tool
}

qemu_accel() {
    if [ -n "${RBUILDS_ACCEL:-}" ]; then
        printf '%s\n' "$RBUILDS_ACCEL"
    else
        # KVM is listed on these machines but cannot run guests; TCG always works.
        printf 'tcg\n'
    fi
}

# guest_clock_hints: kernel words for a TCG guest, whose TSC is the host's:
# the host's TSC frequency (tsc_early_khz), so the guest does not calibrate
# it against the emulated PIT, which fails when the host is loaded and
# leaves the boot hanging with "tsc: Unable to calibrate against PIT". Only
# given when the host says its TSC has a known, constant frequency.
# With the kernel's HZ (from its configuration) also the delay-loop
# calibration is skipped (lpj: TSC ticks per jiffy), which under TCG logs
# "calibrate_delay_direct() failed to get a good estimate".
guest_clock_hints() {
    local flags mhz hz
    [ "$(qemu_accel)" = tcg ] || return 0
    flags=$(grep -m1 '^flags' /proc/cpuinfo)
    case "$flags" in *constant_tsc*tsc_known_freq* | *tsc_known_freq*constant_tsc*) ;; *) return 0 ;; esac
    mhz=$(sed -n 's/^cpu MHz[[:space:]]*: \([0-9.]*\)$/\1/p; T; q' /proc/cpuinfo)
    [ -n "$mhz" ] || return 0
    hz=$(sed -n 's/^CONFIG_HZ=\([0-9]*\)$/\1/p' "$BUILD_DIR/kernel/current/bzImage.config" 2>/dev/null)
    awk -v mhz="$mhz" -v hz="${hz:-0}" 'BEGIN {
        printf " tsc_early_khz=%d tsc=reliable", mhz * 1000
        if (hz > 0) printf " lpj=%d", mhz * 1000000 / hz
        printf "\n"
    }'
}

run_eif_image() {
    step "run_eif_image"
    [ -s "$EIF" ] || die "no image $EIF: run make_eif first"
    local dir
    dir=$(enclave_dir)
    [ -f "$dir/info" ] && die "enclave $IMAGE_NAME is already running (drop_enclave first)"
    rm -rf "$dir"
    mkdir -p "$dir"
    app_run_settings
    if on_nitro; then
        nitro_run "$dir" "${RUN_DEBUG_MODE:-$DEBUG}"
        app_host_start "$dir" vsock
        return 0
    fi
    ensure_runner
    "$TOOL" eif-extract "$EIF" --out-dir "$dir/parts" >"$dir/parts.json" ||
        die "cannot extract $EIF"
    local machine qemu machine_args
    # nitro-enclave (make_qemu built it) boots the EIF itself, with an
    # emulated NSM; microvm boots the EIF's kernel, command line and
    # ramdisks. RBUILDS_MACHINE=microvm|nitro-enclave chooses; default: the
    # first available.
    machine=${RBUILDS_MACHINE:-auto}
    if [ "$machine" != microvm ] && qemu=$(nitro_qemu); then
        machine=nitro-enclave
        # The EIF's command line plus: noapic (without it the first NSM
        # request waits forever for its interrupt), acpi=off (the machine
        # has no ACPI tables, as Nitro has none) and the clock hints.
        machine_args=(-M "nitro-enclave,vsock=vsock,id=$IMAGE_NAME,memory-backend=mem"
            -kernel "$EIF" -append "noapic acpi=off$(guest_clock_hints)")
    elif [ "$machine" = nitro-enclave ]; then
        die "RBUILDS_MACHINE=nitro-enclave needs the QEMU of make_qemu"
    else
        machine=microvm
        qemu="qemu-system-x86_64"
        machine_args=(-M "microvm,memory-backend=mem"
            -kernel "$dir/parts/kernel" -initrd "$dir/parts/initramfs"
            -append "$(cat "$dir/parts/cmdline")$(guest_clock_hints)"
            -device "vhost-user-vsock-device,chardev=vsock")
    fi
    vhost-device-vsock --vm "guest-cid=$GUEST_CID,socket=$dir/vhost.sock,uds-path=$dir/vm.vsock" \
        >"$dir/vhost.log" 2>&1 &
    echo $! >"$dir/vhost.pid"
    local i
    for i in $(seq 50); do
        [ -S "$dir/vhost.sock" ] && break
        alive "$dir/vhost.pid" || die "vhost-device-vsock exited: $(cat "$dir/vhost.log")"
        sleep 0.1
    done
    [ -S "$dir/vhost.sock" ] || die "vhost-device-vsock did not create $dir/vhost.sock (try $i)"
    "$TOOL" heartbeat --listen "hvsock:$dir/vm.vsock:$HEARTBEAT_PORT" --timeout "$BOOT_TIMEOUT" \
        >"$dir/heartbeat" 2>"$dir/heartbeat.log" &
    local heartbeat_pid=$!
    local start=$SECONDS
    "$qemu" "${machine_args[@]}" -accel "$(qemu_accel)" -cpu max \
        -smp "$CPUS" -m "${MEMORY_MIB}M" \
        -object "memory-backend-memfd,id=mem,size=${MEMORY_MIB}M,share=on" \
        -chardev "socket,id=vsock,path=$dir/vhost.sock" \
        -L /usr/share/qemu -L /usr/share/seabios \
        -nodefaults -no-user-config -display none -no-reboot \
        -serial "file:$dir/console.log" \
        -pidfile "$dir/qemu.pid" -daemonize >"$dir/qemu.log" 2>&1 ||
        die "QEMU did not start: $(cat "$dir/qemu.log")"
    printf 'name=%s\ncid=%s\nmachine=%s\naccel=%s\nvsock=%s\n' "$IMAGE_NAME" "$GUEST_CID" \
        "$machine" "$(qemu_accel)" "$dir/vm.vsock" >"$dir/info"
    log "booting $EIF in QEMU $machine ($(qemu_accel)), CID $GUEST_CID, console: $dir/console.log"
    if ! wait "$heartbeat_pid"; then
        log "no boot heartbeat: $(cat "$dir/heartbeat.log")"
        log "console:"
        tail -n 30 "$dir/console.log" >&2 || true
        drop_enclave
        die "the enclave did not boot"
    fi
    log "heartbeat after $(cat "$dir/heartbeat") s (QEMU started $((SECONDS - start)) s ago)"
    [ "$NETWORK" -eq 1 ] && network_host_start "$dir" hvsock
    app_host_start "$dir" hvsock
    log "reach it with: pipeline run --addr hvsock:$dir/vm.vsock:$PIPELINE_PORT -- uname -a"
    log "               initctl -a hvsock:$dir/vm.vsock:$INITCTL_PORT list"
}

# The debug-mode run of nitro-cli shows the console; locally the console is
# always kept, so this is run_eif_image followed by the console.
run_eif_image_debugmode_cli() {
    RUN_DEBUG_MODE=1 run_eif_image
    attach_console_to_enclave
}

attach_console_to_enclave() {
    local dir
    dir=$(enclave_dir)
    if is_nitro_run "$dir"; then
        nitro_console "$dir"
        return
    fi
    alive "$dir/qemu.pid" || die "enclave $IMAGE_NAME is not running"
    log "console of $IMAGE_NAME (Ctrl-C detaches; the enclave keeps running)"
    tail -n +1 -f --pid="$(cat "$dir/qemu.pid")" "$dir/console.log"
}

list_enclaves() {
    local dir found=0
    on_nitro && nitro_list
    for dir in "$RUN_DIR"/*/; do
        [ -f "$dir/info" ] || continue
        if is_nitro_run "$dir"; then
            found=1
            printf '%s %s\n' "$(basename "$dir")" "$(tr '\n' ' ' <"$dir/info")"
            printf '  host side: %s\n' "$(host_processes_state "$dir")"
        elif alive "$dir/qemu.pid"; then
            found=1
            # shellcheck disable=SC2046
            printf '%s pid=%s %s\n' "$(basename "$dir")" "$(cat "$dir/qemu.pid")" \
                "$(tr '\n' ' ' <"$dir/info")"
            printf '  host side: %s\n' "$(host_processes_state "$dir")"
        fi
    done
    [ "$found" -eq 1 ] || log "no enclaves running"
}

# Asks init to shut down (over vsock, initctl's port), waits for QEMU to
# end, then stops vhost-device-vsock; a VM that does not stop is killed.
drop_enclave() {
    local dir initctl=$STATIC_TARGET_DIR/$RUST_TARGET/release/initctl i
    dir=$(enclave_dir)
    [ -d "$dir" ] || die "no enclave $IMAGE_NAME"
    app_host_stop "$dir"
    if is_nitro_run "$dir"; then
        nitro_drop "$dir"
        rm -rf "$dir"
        log "dropped $IMAGE_NAME"
        return 0
    fi
    network_host_stop "$dir"
    if alive "$dir/qemu.pid"; then
        local status=-1
        if [ -x "$initctl" ]; then
            if timeout 10 "$initctl" -a "hvsock:$dir/vm.vsock:$INITCTL_PORT" shutdown >/dev/null 2>&1; then
                status=0
            else
                status=$?
            fi
        fi
        if [ "$status" -eq 0 ]; then
            for i in $(seq 300); do
                alive "$dir/qemu.pid" || break
                sleep 0.1
            done
        fi
        if [ "$status" -eq "$INITCTL_REFUSED" ]; then
            # A production image takes no orders from the host; stopping the VM
            # is what nitro-cli terminate-enclave does on Nitro.
            log "the enclave refuses shutdown from the host (read-only init control): stopping QEMU"
            kill "$(cat "$dir/qemu.pid")" 2>/dev/null || true
            for i in $(seq 50); do
                alive "$dir/qemu.pid" || break
                sleep 0.1
            done
        elif alive "$dir/qemu.pid"; then
            log "the enclave did not power off by itself: stopping QEMU"
            kill "$(cat "$dir/qemu.pid")" 2>/dev/null || true
            for i in $(seq 50); do
                alive "$dir/qemu.pid" || break
                sleep 0.1
            done
        else
            log "enclave $IMAGE_NAME shut down"
        fi
    fi
    if alive "$dir/vhost.pid"; then
        kill "$(cat "$dir/vhost.pid")" 2>/dev/null || true
    fi
    mkdir -p "$BUILD_DIR/logs"
    cp "$dir/console.log" "$BUILD_DIR/logs/$IMAGE_NAME-console.log" 2>/dev/null || true
    rm -rf "$dir"
    log "dropped $IMAGE_NAME (console kept in $BUILD_DIR/logs/$IMAGE_NAME-console.log)"
}

drop_enclaves_all() {
    local dir
    for dir in "$RUN_DIR"/*/; do
        [ -f "$dir/info" ] || continue
        IMAGE_NAME=$(basename "$dir") drop_enclave
    done
}

# ---------------------------------------------------------------- dispatch

man_page() {
    cat <<'MAN'
rbuilds.sh: build reproducible enclave images (EIF) and run them.

Usage:
  rbuilds.sh [OPTIONS] --cmd COMMAND    run one command
  rbuilds.sh [OPTIONS]                  commands from a prompt or stdin
  rbuilds.sh --man | --info

Options:
  --network          networking in the image (iptables, transparent egress and DNS over
                     vsock, ra-web-srv's HTTPS published on vsock 8443) and the host-side
                     proxies when it runs (egress policy: RBUILDS_EGRESS_POLICY, default deny)
  --dockerfile FILE  (hosts with a Docker engine) the image built from FILE is the bottom
                     layer of the root file system; its ENTRYPOINT/CMD runs as service `app`
  --docker-context DIR
                     the build context of --dockerfile (default: the Dockerfile's directory;
                     the repository root for reference_apps/inference_server/Dockerfile)
  --profile NAME     production (the default: no remote exec, an attested and encrypted
                     pipeline for the --authorized-keys only, init control from the host
                     read-only) or debug (the host is root in the enclave); measured in
                     PCR2 and recorded in NAME.eif.pcrs
  --authorized-keys FILE
                     (production) the client keys the pipeline accepts, one per line with
                     its permissions (see pipeline/README.md); none: no pipeline listener
  --app DIR          an application built into the image from DIR/app.toml (docs/apps.md):
                     its static binaries, files and init services in the customer ramdisk
                     (PCR2; the name in NAME.eif.pcrs); run_eif_image publishes its ports on
                     the host's 127.0.0.1 and gives the VM the memory it asks for
  --tty              messages to file descriptor 3 when it is open (use 3>&1), a terminal
                     for `lsh` commands and docker build
  --debug            trace the script (set -x); on Nitro, run_eif_image in debug mode

Build commands:
  make_kernel     Debian's linux-source-6.12 + .linux/enclave.config on tinyconfig;
                  cached in $RBUILDS_CACHE_DIR/kernel/<version>-<inputs hash>
  make_init       enclave-init (init, initctl), static, release
  make_apps       pipeline, pf-proxy, ra-web-srv, fs-monitor (and ra-verify for the
                  host), static, release
  make_eif        ramdisks (bootstrap.cpio: /init; NAME.customer.cpio: /rootfs,
                  /etc/init.yaml, the profile), then eif_build; writes NAME.eif and
                  NAME.eif.pcrs
  make_all        all of the above (also: make_enclave)
  make_clear      remove the image and ramdisks
  make_qemu       QEMU with the nitro-enclave machine (EIF boot, emulated /dev/nsm) from
                  Debian's qemu source (cached in $RBUILDS_CACHE_DIR/qemu); run_eif_image
                  uses it once built
Running (nitro-cli when present, else QEMU microvm + vhost-device-vsock; RBUILDS_RUNNER=qemu
forces QEMU; state in $RBUILDS_BUILD_DIR/run/NAME):
  run_eif_image                 boot the EIF, answer its heartbeat, print how to reach it
  run_eif_image_debugmode_cli   run_eif_image, then follow the console
  attach_console_to_enclave     follow the console (Ctrl-C detaches)
  list_enclaves                 running enclaves
  drop_enclave                  initctl shutdown, wait for power-off (else stop QEMU)
  drop_enclaves_all             drop_enclave for every running enclave
Other:
  lsh             (prompt/stdin mode) run the next line as a host shell command
  help            this text

Settings (environment): RBUILDS_BUILD_DIR (default rbuilds/build), RBUILDS_CACHE_DIR (the
kernel and QEMU for every clone; default ~/.cache/enclaves-framework/rbuilds), RBUILDS_IMAGE_NAME
(enclave), RBUILDS_APP (--app), RBUILDS_PROFILE (production), RBUILDS_AUTHORIZED_KEYS, RBUILDS_JOBS (2), SOURCE_DATE_EPOCH (default: the last commit's time),
RBUILDS_MEMORY_MIB (512), RBUILDS_CPUS (2), RBUILDS_GUEST_CID (16), RBUILDS_BOOT_TIMEOUT (120 s),
RBUILDS_ACCEL (tcg; kvm where it works), RBUILDS_MACHINE (microvm or nitro-enclave; default: nitro-enclave
once make_qemu built it), RBUILDS_NETWORK (1: --network), RBUILDS_DOCKERFILE (--dockerfile),
RBUILDS_DOCKER_CONTEXT (--docker-context), RBUILDS_HTTPS_PORT (8443: the host port of the
enclave's HTTPS), RBUILDS_HOST_NETNS (run the host-side proxies in this network namespace; tests),
RBUILDS_GUEST_CID_FIXED (Nitro: the CID nitro-cli gives the enclave).
MAN
}

info_page() {
    set_build_env
    local kernel_version
    kernel_version=$(dpkg-query -W -f='${Version}' "$KERNEL_PACKAGE" 2>/dev/null || echo "not installed")
    cat <<INFO
repository:         $ROOT_DIR ($(git -C "$ROOT_DIR" describe --always --dirty 2>/dev/null))
build directory:    $BUILD_DIR
cache (kernel, QEMU): $CACHE_DIR
image:              $EIF
SOURCE_DATE_EPOCH:  $SOURCE_DATE_EPOCH ($(date -u -d "@$SOURCE_DATE_EPOCH" +%FT%TZ))
kernel source:      $KERNEL_PACKAGE $kernel_version
kernel config:      $KERNEL_FRAGMENT
kernel cmdline:     $KERNEL_CMDLINE
profile:            $PROFILE${AUTHORIZED_KEYS:+ (authorized keys: $AUTHORIZED_KEYS)}
eif_build:          $(command -v eif_build || echo "not installed")
INFO
}

COMMANDS=" make_qemu make_kernel make_init make_apps make_eif make_all make_enclave make_clear make_tool run_eif_image run_eif_image_debugmode_cli attach_console_to_enclave list_enclaves drop_enclave drop_enclaves_all help "

run_command() {
    local cmd=$1
    case "$COMMANDS" in
        *" $cmd "*) ;;
        *) die "unknown command: $cmd (see --man)" ;;
    esac
    case "$cmd" in
        make_enclave) make_all ;;
        help) man_page ;;
        *) "$cmd" ;;
    esac
}

# Prompt and stdin modes: one command per line; `lsh` runs the next line in
# the host shell. A failed command ends the session with its status (it runs
# in this shell: in a subshell whose status is tested, errexit would not
# stop it at the first failure).
command_loop() {
    local line prompt=""
    [ -t 0 ] && prompt="rbuilds> "
    while IFS= read -r -p "$prompt" line; do
        line=${line#"${line%%[![:space:]]*}"}
        line=${line%"${line##*[![:space:]]}"}
        case "$line" in
            "" | "#"*) continue ;;
            exit | quit) break ;;
            lsh)
                IFS= read -r -p "${prompt:+lsh> }" line || die "lsh: no command follows"
                if [ "$TTY" -eq 1 ]; then
                    script -q -e -c "$line" /dev/null || log "lsh: exit status $?"
                else
                    bash -c "$line" || log "lsh: exit status $?"
                fi
                ;;
            *) run_command "$line" ;;
        esac
    done
}

main() {
    local cmd="" info=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --cmd)
                [ $# -ge 2 ] || die "--cmd needs a command"
                cmd=$2
                shift
                ;;
            --man | -h | --help)
                man_page
                return 0
                ;;
            --info) info=1 ;;
            --debug) DEBUG=1 ;;
            --network) NETWORK=1 ;;
            --profile)
                [ $# -ge 2 ] || die "--profile needs production or debug"
                PROFILE=$2
                shift
                ;;
            --authorized-keys)
                [ $# -ge 2 ] || die "--authorized-keys needs a file"
                AUTHORIZED_KEYS=$(realpath -m "$2")
                shift
                ;;
            --tty) TTY=1 ;;
            --app)
                [ $# -ge 2 ] || die "--app needs a directory"
                APP_PATH=$(realpath -m "$2")
                shift
                ;;
            --dockerfile)
                [ $# -ge 2 ] || die "--dockerfile needs a path"
                DOCKERFILE=$(realpath -m "$2")
                shift
                ;;
            --docker-context)
                [ $# -ge 2 ] || die "--docker-context needs a directory"
                DOCKER_CONTEXT=$(realpath -m "$2")
                shift
                ;;
            *) die "unknown option: $1 (see --man)" ;;
        esac
        shift
    done
    [ "$DEBUG" -eq 1 ] && set -x
    check_profile
    if [ "$info" -eq 1 ]; then
        info_page
        return 0
    fi
    mkdir -p "$BUILD_DIR"
    if [ -n "$cmd" ]; then
        run_command "$cmd"
    else
        command_loop
    fi
}

main "$@"
