# shellcheck shell=bash
# --dockerfile FILE: on a host with a Docker engine, the application image
# built from FILE becomes the bottom layer of the enclave's root file system
# (its exported files; our binaries and configuration go on top), and its
# ENTRYPOINT/CMD/ENV/WORKDIR become /service/app.service (rbuilds-tool
# app-service; an image with nothing to run is refused). The build context is
# --docker-context, or the Dockerfile's directory. Without a Docker
# engine the build stops with the reason. Sourced by rbuilds.sh.
#
# Reproducibility: the layer's bytes are those of the image; the ramdisk
# writer fixes order, owners and times. Pin the base image by digest
# (FROM debian@sha256:...) and avoid build steps that fetch moving targets.

# docker_app_layer ROOT: unpacks the app image into ROOT and writes its
# service. No-op without --dockerfile.
docker_app_layer() {
    local root=$1 tag container tty=()
    [ -n "$DOCKERFILE" ] || return 0
    [ -f "$DOCKERFILE" ] || die "--dockerfile $DOCKERFILE: no such file"
    local context=${DOCKER_CONTEXT:-$(dirname "$DOCKERFILE")}
    [ -d "$context" ] || die "--docker-context $context: no such directory"
    command -v docker >/dev/null 2>&1 || die "--dockerfile needs the docker client"
    docker info >/dev/null 2>&1 ||
        die "--dockerfile needs a running Docker engine (\`docker info\` fails here)"
    [ "$TTY" -eq 1 ] && tty=(--progress tty)
    tag=rbuilds-app:$(sha256sum "$DOCKERFILE" | cut -c1-16)
    step "docker build $DOCKERFILE"
    docker build "${tty[@]}" --platform linux/amd64 -f "$DOCKERFILE" -t "$tag" \
        "$context" >&2 || die "docker build of $DOCKERFILE (context $context) failed"
    container=$(docker create --platform linux/amd64 "$tag") || die "docker create $tag failed"
    # Containers get /dev, /proc, /sys and /etc/hosts from the engine; the
    # enclave's init mounts its own.
    docker export "$container" |
        tar -x -C "$root" --no-same-owner --no-same-permissions \
            --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='dev/*' \
            --exclude='proc/*' --exclude='sys/*' ||
        {
            docker rm -f "$container" >/dev/null 2>&1
            die "cannot unpack the file system of $tag"
        }
    docker rm -f "$container" >/dev/null 2>&1 || true
    docker image inspect --format '{{json .Config}}' "$tag" >"$BUILD_DIR/app-config.json" ||
        die "docker image inspect $tag failed"
    mkdir -p "$root/service"
    "$TOOL" app-service --config "$BUILD_DIR/app-config.json" --output "$root/service/app.service" ||
        die "cannot make the app service from $tag's configuration"
    log "app layer: $tag ($(du -sh "$root" | cut -f1)), service: $(grep ExecStart "$root/service/app.service")"
}
