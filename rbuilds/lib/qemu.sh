# shellcheck shell=bash
# make_qemu: QEMU with the `nitro-enclave` machine (boots an EIF directly and
# emulates the NSM device, /dev/nsm in the guest), built from the Debian
# source of the installed qemu-system-x86, since Debian's binary is built
# without libcbor and lacks both. Cached in $CACHE_DIR/qemu/<version>-<hash
# of this recipe>/ for every clone. Sourced by rbuilds.sh.

QEMU_PACKAGE=qemu-system-x86
# The build's Python tools, pinned (QEMU 10 needs meson >= 1.5; pycotap is
# required by its test harness at configure time).
QEMU_PY_REQUIREMENTS=("meson==1.12.1" "pycotap==1.3.1")
QEMU_SRC_LIST=/etc/apt/sources.list.d/rbuilds-bookworm-backports-src.sources

qemu_key() {
    local version hash
    version=$(dpkg-query -W -f='${Version}' "$QEMU_PACKAGE" 2>/dev/null) || return 1
    hash=$(sha256sum <"$RBUILDS_DIR/lib/qemu.sh" | cut -c1-16)
    printf '%s-%s\n' "${version//[:~]/_}" "$hash"
}

# nitro_qemu: the cached QEMU with the nitro-enclave machine, if built.
nitro_qemu() {
    local key bin
    key=$(qemu_key) || return 1
    bin=$CACHE_DIR/qemu/$key/qemu-system-x86_64
    [ -x "$bin" ] || return 1
    printf '%s\n' "$bin"
}

make_qemu() {
    step "make_qemu"
    ensure_backports
    ensure_apt -t bookworm-backports "$QEMU_PACKAGE"
    ensure_apt libcbor-dev libgnutls28-dev ninja-build libfdt-dev libglib2.0-dev \
        libpixman-1-dev python3-venv pkg-config build-essential xz-utils
    local key dir version src tarball want got machines tmp
    key=$(qemu_key) || die "cannot read the version of $QEMU_PACKAGE"
    dir=$CACHE_DIR/qemu/$key
    if [ -x "$dir/qemu-system-x86_64" ]; then
        log "QEMU $key is cached: $dir/qemu-system-x86_64"
        return 0
    fi
    version=$(dpkg-query -W -f='${Version}' "$QEMU_PACKAGE")
    if [ ! -f "$QEMU_SRC_LIST" ]; then
        ensure_root_or_sudo
        printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' |
            "${SUDO[@]}" tee "$QEMU_SRC_LIST" >/dev/null
        "${SUDO[@]}" apt-get update -q >/dev/null || die "apt-get update failed"
    fi
    src=$BUILD_DIR/qemu/src
    tmp=$(cache_tmp "$dir")
    rm -rf "$src" "$tmp"
    mkdir -p "$src" "$tmp"
    # Only the upstream tarball is needed (QEMU builds without Debian's
    # patches); mirrors that lack the .dsc still serve it. Its checksum
    # comes from the signed source index.
    (cd "$src" && apt-get source -q --download-only "qemu=$version" >"$src/apt-source.log" 2>&1) || true
    tarball=$(find "$src" -maxdepth 1 -name 'qemu_*.orig.tar.xz' -print -quit)
    [ -n "$tarball" ] || die "cannot download the source of qemu $version: $(tail -n 3 "$src/apt-source.log")"
    # apt-cache showsrc lists every version it knows: take the stanza of
    # $version. The index goes to a file first: a reader that stops early
    # in a pipeline kills apt-cache with SIGPIPE, and under pipefail that
    # failed this step at random, without a message.
    apt-cache showsrc qemu >"$src/showsrc" 2>"$src/showsrc.err" ||
        die "apt-cache showsrc qemu failed: $(tail -n 3 "$src/showsrc.err")"
    want=$(awk -v ver="$version" -v f="$(basename "$tarball")" '
        /^Package:/ { v = "" }
        /^Version:/ { v = $2 }
        /^Checksums-Sha256:/ { on = 1; next }
        /^[^ ]/ { on = 0 }
        on && v == ver && $3 == f && !found { print $1; found = 1 }' "$src/showsrc")
    got=$(sha256sum <"$tarball" | cut -c1-64)
    if [ -z "$want" ] || [ "$want" != "$got" ]; then
        die "$(basename "$tarball"): sha256 $got, the source index says ${want:-nothing}"
    fi
    log "unpacking $(basename "$tarball") (sha256 checked)"
    tar -xJf "$tarball" -C "$src" --strip-components=1 || die "cannot unpack $tarball"
    python3 -m venv "$src/venv" || die "cannot make a Python venv"
    "$src/venv/bin/pip" install -q "${QEMU_PY_REQUIREMENTS[@]}" || die "cannot install ${QEMU_PY_REQUIREMENTS[*]}"
    # The Debian source has no edk2 firmware blobs: do not unpack them.
    sed -i 's/^    unpack_edk2_blobs = bzip2.found()$/    unpack_edk2_blobs = false/' "$src/meson.build"
    (
        mkdir -p "$src/build" && cd "$src/build" &&
            ../configure --python="$src/venv/bin/python3" --target-list=x86_64-softmmu \
                --disable-docs --disable-werror --disable-download --disable-rust \
                --disable-install-blobs --enable-libcbor --enable-gnutls >"$src/configure.log" 2>&1 ||
            die "QEMU configure failed: $(tail -n 5 "$src/configure.log")"
        log "building qemu-system-x86_64 with $JOBS jobs (about 3 minutes on 2 idle cores)"
        ninja -j"$JOBS" qemu-system-x86_64 >"$src/build.log" 2>&1 ||
            die "QEMU build failed: $(tail -n 5 "$src/build.log")"
    ) || exit 1
    machines=$("$src/build/qemu-system-x86_64" -machine help) || die "the built QEMU does not start"
    grep -q '^nitro-enclave ' <<<"$machines" || die "the built QEMU has no nitro-enclave machine"
    cp "$src/build/qemu-system-x86_64" "$tmp/"
    rm -rf "$dir"
    mv -T "$tmp" "$dir" || die "cannot move QEMU into the cache ($dir)"
    rm -rf "$src"
    log "QEMU with nitro-enclave: $dir/qemu-system-x86_64"
}
