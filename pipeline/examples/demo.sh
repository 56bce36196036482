#!/usr/bin/env bash
# Pipeline demo: a server on a Unix socket standing in for the enclave, and
# the client commands a host uses: run commands (output, stdin, exit status),
# copy a directory tree both ways and check it came back identical.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/functions
source "$ROOT_DIR/tools/functions"

cd "$ROOT_DIR"
say "building pipeline (release)"
cargo build --release --locked -p pipeline >&2
PIPELINE="$ROOT_DIR/target/release/pipeline"

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

ENCLAVE="$WORK/enclave"
mkdir -p "$ENCLAVE"
say "starting: pipeline listen --addr unix:$WORK/pipeline.sock --root $ENCLAVE"
"$PIPELINE" listen --addr "unix:$WORK/pipeline.sock" --root "$ENCLAVE" 2>"$WORK/server.log" &
SERVER_PID=$!
export PIPELINE_ADDR="unix:$WORK/pipeline.sock"

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
step() { printf '\n%s$ %s%s\n' "$BOLD" "$*" "$PLAIN"; }

step pipeline run -- uname -sr
"$PIPELINE" run -- uname -sr

step "echo 'hello from the host' | pipeline run -- tr a-z A-Z"
echo 'hello from the host' | "$PIPELINE" run -- tr a-z A-Z

step "pipeline run -- sh -c 'echo working; exit 7'; echo \"exit status \$?\""
status=0
"$PIPELINE" run -- sh -c 'echo working; exit 7' || status=$?
echo "exit status $status"
[ "$status" -eq 7 ] || die "expected exit status 7, got $status"

say "making a sample tree: files with modes, an empty directory, a symlink"
SRC="$WORK/host/app"
mkdir -p "$SRC/bin" "$SRC/data/empty"
printf '#!/bin/sh\necho "app says hi"\n' >"$SRC/bin/app.sh"
chmod 755 "$SRC/bin/app.sh"
head -c 5000000 /dev/urandom >"$SRC/data/model.bin"
ln -s bin/app.sh "$SRC/start"

step pipeline cp "$SRC" "enclave:$ENCLAVE/"
"$PIPELINE" cp "$SRC" "enclave:$ENCLAVE/"

step pipeline run -- "$ENCLAVE/app/start"
"$PIPELINE" run -- "$ENCLAVE/app/start"

step pipeline cp "enclave:$ENCLAVE/app" "$WORK/host/app-back"
"$PIPELINE" cp "enclave:$ENCLAVE/app" "$WORK/host/app-back"
diff -r --no-dereference "$SRC" "$WORK/host/app-back"
echo "the tree came back identical"

step pipeline send-file --localpath "$SRC/data/model.bin" --remotepath "$ENCLAVE/models/v1/model.bin"
"$PIPELINE" send-file --localpath "$SRC/data/model.bin" --remotepath "$ENCLAVE/models/v1/model.bin"
"$PIPELINE" run -- sha256sum "$ENCLAVE/models/v1/model.bin"
sha256sum "$SRC/data/model.bin"

step "pipeline cp $SRC/bin/app.sh enclave:/etc/   # outside --root: refused"
if "$PIPELINE" cp "$SRC/bin/app.sh" enclave:/etc/; then
    die "a copy outside the server's root was accepted"
fi

echo
say "demo complete; server log:"
cat "$WORK/server.log" >&2
