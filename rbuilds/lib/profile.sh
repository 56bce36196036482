# shellcheck shell=bash
# Image profiles: what differs between a production and a debug image. All
# of it is in the customer ramdisk, so it is measured in PCR2, and the
# .eif.pcrs file names the profile (ra-verify --require-profile).
#
#   production  pipeline: attested, encrypted, only the keys given with
#               --authorized-keys, each with its permissions (no keys: no
#               pipeline listener at all); init control over vsock read-only,
#               full for keys allowed to manage (over the attested channel)
#   debug       pipeline: plaintext, no authentication, exec as root;
#               init control over vsock with every command
# Sourced by rbuilds.sh; uses its settings and helpers.

# check_profile: dies on an unknown profile or unusable key file.
check_profile() {
    case "$PROFILE" in
        production | debug) ;;
        *) die "unknown profile $PROFILE (production or debug)" ;;
    esac
    if [ -n "$AUTHORIZED_KEYS" ]; then
        [ "$PROFILE" = production ] || die "--authorized-keys is for the production profile (debug has no authentication)"
        [ -r "$AUTHORIZED_KEYS" ] || die "--authorized-keys: $AUTHORIZED_KEYS is not readable"
    fi
}

# profile_rootfs CUSTOMER: the profile's files in the customer ramdisk's
# staging directory CUSTOMER (init.yaml at its top, the rest under rootfs/).
profile_rootfs() {
    local customer=$1 root=$1/rootfs access=read-only f
    local attested="# attested: none (no client keys in this image)"
    local banner="image profile: production (no remote exec; attested, encrypted pipeline; init control from the host read-only)"
    check_profile
    if [ "$PROFILE" = debug ]; then
        access=full
        banner="DEBUG PROFILE: the host can run commands as root in this enclave and read its keys; its attestations prove nothing against the host"
    fi
    if [ "$PROFILE" = production ] && [ -n "$AUTHORIZED_KEYS" ]; then
        attested="attested: {authorized_keys: /etc/pipeline/authorized_keys}"
    fi
    for f in "$customer/etc/init.yaml" "$root/etc/init.yaml"; do
        mkdir -p "$(dirname "$f")"
        sed -e "s|@VSOCK_ACCESS@|$access|" -e "s|@BANNER@|$banner|" -e "s|@PROFILE@|$PROFILE|" \
            -e "s|@CONTROL_ATTESTED@|$attested|" \
            "$RBUILDS_DIR/image/init.yaml.in" >"$f" ||
            die "cannot write $f"
    done
    printf '%s\n' "$PROFILE" >"$root/etc/enclave-profile"
    if [ "$PROFILE" = debug ]; then
        install_file "$RBUILDS_DIR/image/profile/debug/pipeline.service" "$root/service/pipeline.service" 0644
        log "DEBUG PROFILE: the host gets a root shell in this image; its attestations prove nothing against the host"
    elif [ -n "$AUTHORIZED_KEYS" ]; then
        install_file "$AUTHORIZED_KEYS" "$root/etc/pipeline/authorized_keys" 0644
        install_file "$RBUILDS_DIR/image/profile/production/pipeline.service" "$root/service/pipeline.service" 0644
        log "production profile: pipeline for the $(grep -cvE '^[[:space:]]*(#|$)' "$AUTHORIZED_KEYS") key(s) of $AUTHORIZED_KEYS"
    else
        log "production profile without --authorized-keys: no pipeline listener in this image"
    fi
}
