# shellcheck shell=bash
# The image test's checks of an application built in with --app
# (reference_apps/inference_server, in the production image with the test's
# keys). Sourced by image-test.sh; uses its settings and helpers (fail, say,
# services_ready, NAME, BIN, TOOL, WORK, NETNS, PIPE_ADDR, INITCTL...).
#
# app_checks, with the production image booted:
# - in the image: the static binary, its service, the generated vsock-to-ip
#   service of port 10443, ra-web-srv's TLS ingress file, the app's name in
#   the .eif.pcrs file; the default
#   image (the one the reproducibility proof rebuilds) has none of it;
# - the server and the port's forward are active, the server runs as its own
#   user (uid 210, `inference`), not root;
# - from the host, through the published port (ip-to-vsock -> vsock ->
#   vsock-to-ip -> ra-web-srv's TLS ingress, which relays to the app's
#   127.0.0.1:10070): no model at start (an empty list; a chat request is a
#   404 JSON error), the model (INFERENCE_MODEL_GGUF) copied into /apps with
#   the deploy key over the attested pipeline, POST /load_model, then a
#   greedy chat completion that names Paris and the SHA3-512 of the copied
#   weights; ra-verify passes on the model's attestation and finds the
#   attested TLS key on the app's port.

# shellcheck disable=SC2034 # used by image-test.sh (--app)
APP_TEST_DIR=$(cd "$RBUILDS_DIR/.." && pwd)/reference_apps/inference_server
APP_TEST_NAME=inference-server
APP_TEST_PORT=10443
APP_TEST_UID=210

# The calls to the server (app_wait, app_load, app_chat...), shared with the
# main job; curl runs on the host side of the published port: the test's
# network namespace, where the host-side proxies run.
APP_CURL=(ip netns exec "$NETNS" curl -ksS --max-time 600)
# shellcheck source=tools/lib/app-client.sh
source "$RBUILDS_DIR/../tools/lib/app-client.sh"

app_image_checks() {
    local customer f
    customer=$("$TOOL" cpio-list "$BUILD_DIR/$NAME.customer.cpio") || fail "cpio-list $NAME.customer.cpio"
    for f in rootfs/usr/bin/inference-server rootfs/service/inference-server.service \
        "rootfs/service/$APP_TEST_NAME-ingress-$APP_TEST_PORT.service" rootfs/usr/bin/vsock-to-ip \
        rootfs/etc/ra-web-srv/tls-ingress; do
        grep -q " $f\$" <<<"$customer" || fail "no $f in $NAME's customer ramdisk"
    done
    grep -q "\"App\": \"$APP_TEST_NAME\"" "$BUILD_DIR/$NAME.eif.pcrs" ||
        fail "$NAME.eif.pcrs does not record the app"
    grep -q '"App"' "$BUILD_DIR/$BASE_NAME.eif.pcrs" && fail "$BASE_NAME.eif.pcrs records an app"
    if "$TOOL" cpio-list "$BUILD_DIR/$BASE_NAME.customer.cpio" | grep -q ' rootfs/usr/bin/inference-server$'; then
        fail "the default image $BASE_NAME has the app"
    fi
    local built=$BUILD_DIR/app-target/x86_64-unknown-linux-gnu/release/inference-server
    readelf -lW "$built" >"$WORK/readelf.out" || fail "readelf $built"
    # (static-pie: no program interpreter)
    if grep -q 'program interpreter' "$WORK/readelf.out"; then
        fail "$built is not a static executable"
    fi
    say "app in $NAME: static inference-server ($(stat -c %s "$built") bytes), its service, the forward of port $APP_TEST_PORT, \"App\" in the .eif.pcrs"
}

app_checks() {
    local pcrs=$BUILD_DIR/$NAME.eif.pcrs pipe=("$BIN/pipeline") model=${INFERENCE_MODEL_GGUF:-}
    local trust=(--expect-pcrs "$pcrs" --allow-unsigned)
    local deploy=("${PIPE_ADDR[@]}" --key "$WORK/deploy" "${trust[@]}")
    local admin=("${PIPE_ADDR[@]}" --key "$WORK/admin" "${trust[@]}")
    local url=https://127.0.0.1:$APP_TEST_PORT dest=/apps/SmolLM2-135M-Instruct.Q4_1.gguf
    local status pid ok=0 t
    [ -n "$model" ] || fail "INFERENCE_MODEL_GGUF is not set"
    [ -r "$model" ] ||
        fail "INFERENCE_MODEL_GGUF is not a readable file (export INFERENCE_MODEL_GGUF=\$(reference_apps/inference_server/fetch-model.sh); tools/devtool test does)"
    app_image_checks
    services_ready "$APP_TEST_NAME" "$APP_TEST_NAME-ingress-$APP_TEST_PORT"

    # Its own user, not root: the uid of the process init started.
    status=$(timeout 30 "${INITCTL[@]}" status "$APP_TEST_NAME") || fail "initctl status $APP_TEST_NAME"
    pid=$(sed -n 's/^ *PID: *\([0-9]*\)$/\1/p' <<<"$status")
    [ -n "$pid" ] || fail "no PID in initctl status $APP_TEST_NAME: $status"
    timeout 60 "${pipe[@]}" run "${admin[@]}" -- cat "/proc/$pid/status" >"$WORK/app-status" ||
        fail "reading /proc/$pid/status in the enclave"
    grep -Eq "^Uid:[[:space:]]+${APP_TEST_UID}[[:space:]]+${APP_TEST_UID}[[:space:]]" "$WORK/app-status" ||
        fail "$APP_TEST_NAME does not run as uid $APP_TEST_UID: $(grep -E '^(Name|Uid|Gid):' "$WORK/app-status" | tr '\n' ' ')"
    grep -Eq "^Gid:[[:space:]]+${APP_TEST_UID}[[:space:]]" "$WORK/app-status" ||
        fail "$APP_TEST_NAME does not run with gid $APP_TEST_UID"
    say "app: $APP_TEST_NAME (pid $pid) runs as uid/gid $APP_TEST_UID (inference)"

    # No model at start, through the published port.
    t=$SECONDS
    app_wait "$url" "$WORK/models.json" || fail "the app through the published port"
    [ "$(app_json "$WORK/models.json" 'len(j["data"])')" = 0 ] ||
        fail "the server has a model at start: $(cat "$WORK/models.json")"
    status=$(app_post "$url" /v1/chat/completions \
        '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}' "$WORK/nomodel.json") ||
        fail "POST /v1/chat/completions without a model"
    [ "$status" = 404 ] || fail "a chat request without a model: HTTP $status, not 404: $(cat "$WORK/nomodel.json")"
    say "app: reached through 127.0.0.1:$APP_TEST_PORT in $((SECONDS - t)) s; no model at start (a chat request is a 404 JSON error)"

    # The model is data: copied in with the deploy key, then loaded.
    t=$SECONDS
    timeout 600 "${pipe[@]}" cp -q "$model" "enclave:$dest" "${deploy[@]}" ||
        fail "the deploy key could not copy the model into $dest"
    say "app: model ($(stat -c %s "$model") bytes) copied into $dest in $((SECONDS - t)) s"
    t=$SECONDS
    app_load "$url" "$dest" smollm2 "$WORK/load.json" || fail "loading the model"
    say "app: model loaded in $((SECONDS - t)) s"

    # A greedy chat completion through the published port.
    t=$SECONDS
    app_chat "$url" smollm2 "Which city is the capital of France?" 12 "$WORK/chat.json" ||
        fail "the chat completion"
    local took=$((SECONDS - t))
    local content tokens hash want
    content=$(app_json "$WORK/chat.json" 'j["choices"][0]["message"]["content"]')
    tokens=$(app_json "$WORK/chat.json" 'j["usage"]["completion_tokens"]')
    hash=$(app_json "$WORK/chat.json" 'j["model_sha3_512"]')
    want=$(sha3_512_file "$model")
    [ "$hash" = "$want" ] || fail "the answer names weights $hash, the copied model is $want"
    if [ "$tokens" -lt 1 ] || [ "$tokens" -gt 12 ]; then
        fail "completion_tokens $tokens, asked at most 12"
    fi
    grep -q Paris <<<"$content" || fail "the greedy answer does not name Paris: $content"
    say "app: chat completion through 127.0.0.1:$APP_TEST_PORT in $took s ($tokens tokens): $content"

    # The model's attestation, and the app's TLS key is the attested one
    # (unsigned documents here: QEMU's NSM; the endpoint check is SKIP then,
    # never PASS, and FAIL for another key).
    ok=0
    for _ in $(seq 120); do
        if ip netns exec "$NETNS" timeout 60 "$BIN/ra-verify" doc --url https://127.0.0.1:8443 \
            --path "$dest" --file "$model" --allow-unsigned --pcrs "$pcrs" --require-profile production \
            --nonce --endpoint "$url" --timeout 20 >"$WORK/verify-app.out" 2>&1; then
            ok=1
            break
        fi
        sleep 1
    done
    cat "$WORK/verify-app.out" >&2
    [ "$ok" -eq 1 ] || fail "ra-verify did not pass on the model's attestation and the app's endpoint"
    grep -q "^PASS file_hash:" "$WORK/verify-app.out" || fail "ra-verify: no PASS file_hash for the model"
    grep -Eq "^(PASS|SKIP) endpoint:" "$WORK/verify-app.out" || fail "ra-verify: no endpoint check of $url"
    say "app: ra-verify passes on $dest and checks the app's TLS endpoint $url"
    app_signed_checks "$url" "$pcrs" "$model"
    status=$(timeout 30 "${INITCTL[@]}" status "$APP_TEST_NAME") || fail "initctl status $APP_TEST_NAME"
    say "app: $APP_TEST_NAME with the model loaded:$(grep -E '^ *(Status|Memory):' <<<"$status" | tr -s ' \n' ' ')"
}

# app_signed_checks URL PCRS MODEL: a signed answer. `ra-verify response`
# sends a chat request through the published port once the key file's
# attestation and the endpoint's key passed, and checks the answer's
# signature by the attested key over the request, the answer and the model's
# hash (the copied model's); the evidence it saves passes offline, and fails
# once the answer or the model hash in it is altered.
app_signed_checks() {
    local url=$1 pcrs=$2 model=$3 t=$SECONDS ev=$WORK/evidence
    local trust=(--allow-unsigned --pcrs "$pcrs" --require-profile production)
    app_chat_request smollm2 "Which city is the capital of France?" 8 >"$WORK/signed-request.json" ||
        fail "writing the signed request"
    ip netns exec "$NETNS" timeout 900 "$BIN/ra-verify" response --url https://127.0.0.1:8443 \
        --app-url "$url/v1/chat/completions" --data "$WORK/signed-request.json" --nonce \
        --model-file "$model" --out "$ev" "${trust[@]}" --timeout 20 >"$WORK/verify-response.out" 2>&1 ||
        { cat "$WORK/verify-response.out" >&2; fail "ra-verify response did not pass on a signed answer"; }
    cat "$WORK/verify-response.out" >&2
    local check
    for check in signing_key file_hash response_signature model_file nonce; do
        grep -q "^PASS $check:" "$WORK/verify-response.out" || fail "ra-verify response: no PASS $check"
    done
    "$BIN/ra-verify" response --evidence "$ev" --model-file "$model" "${trust[@]}" >"$WORK/evidence.out" 2>&1 ||
        { cat "$WORK/evidence.out" >&2; fail "the saved evidence does not pass offline"; }
    # The host alters the saved answer, then the model hash in it.
    python3 - "$ev/response.json" <<'PY' || fail "altering the saved answer"
import json, sys
path = sys.argv[1]
j = json.load(open(path))
j["choices"][0]["message"]["content"] = "The capital of France is Lyon."
json.dump(j, open(path, "w"))
PY
    if "$BIN/ra-verify" response --evidence "$ev" "${trust[@]}" >"$WORK/evidence-forged.out" 2>&1; then
        fail "an altered answer passed ra-verify response"
    fi
    grep -q "^FAIL response_signature:" "$WORK/evidence-forged.out" ||
        { cat "$WORK/evidence-forged.out" >&2; fail "the altered answer did not fail response_signature"; }
    say "app: a signed answer verified (key file attested, signature over request, answer and model) in $((SECONDS - t)) s; its evidence passes offline, and an altered answer fails"
}
