# shellcheck shell=bash
# The host's side of the inference server (reference_apps/inference_server)
# through its published TLS port: the calls the main job (tools/up.sh) shows
# and the image test (rbuilds/tests/app-checks.sh) checks, in one place.
#
# APP_CURL is the curl command (an array; the image test prefixes it with
# `ip netns exec`). -k: the enclave's certificate is self-signed; `ra-verify
# doc --endpoint` is what checks that it is the attested key.
# Each function returns non-zero with a message on stderr when the call fails;
# the caller decides what a failure means.

if [ -z "${APP_CURL+set}" ]; then
    APP_CURL=(curl -ksS --max-time 600)
fi

# app_json FILE EXPR: a Python expression over the JSON object `j` read from
# FILE, printed.
app_json() {
    python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$1" "$2"
}

# sha3_512_file FILE: the SHA3-512 of FILE in hex, as fs-monitor and the
# server compute it.
sha3_512_file() {
    python3 -c 'import hashlib, sys
h = hashlib.sha3_512()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())' "$1"
}

# app_wait URL OUT [SECONDS]: GET URL/v1/models until it answers (60 s by
# default); the list in OUT.
app_wait() {
    local url=$1 out=$2 i
    for i in $(seq "${3:-60}"); do
        if "${APP_CURL[@]}" -f -o "$out" "$url/v1/models" 2>"$out.err"; then
            return 0
        fi
        sleep 1
    done
    printf 'GET %s/v1/models did not answer in %s s: %s\n' "$url" "$i" "$(cat "$out.err")" >&2
    return 1
}

# app_post URL PATH JSON OUT: POST JSON to URL/PATH, the body in OUT; prints
# the HTTP status.
app_post() {
    "${APP_CURL[@]}" -o "$4" -w '%{http_code}' "$1$2" -H 'content-type: application/json' -d "$3"
}

# app_load URL MODEL_PATH NAME OUT: POST /load_model (the file in the enclave,
# loaded under NAME); fails unless 200.
app_load() {
    local status
    status=$(app_post "$1" /load_model "{\"model_path\": \"$2\", \"model_name\": \"$3\"}" "$4") || return 1
    [ "$status" = 200 ] && return 0
    printf 'POST /load_model: HTTP %s: %s\n' "$status" "$(cat "$4")" >&2
    return 1
}

# app_chat_request MODEL QUESTION MAX_TOKENS: the JSON of a greedy chat
# completion request (temperature 0: the same answer every time).
app_chat_request() {
    python3 -c 'import json, sys
print(json.dumps({"model": sys.argv[1], "temperature": 0, "max_tokens": int(sys.argv[3]),
                  "messages": [{"role": "user", "content": sys.argv[2]}]}))' "$1" "$2" "$3"
}

# app_chat URL MODEL QUESTION MAX_TOKENS OUT: POST /v1/chat/completions of
# app_chat_request; fails unless 200 with an answer. The answer's text is
# app_json OUT 'j["choices"][0]["message"]["content"]'.
app_chat() {
    local status body
    body=$(app_chat_request "$2" "$3" "$4") || return 1
    status=$(app_post "$1" /v1/chat/completions "$body" "$5") || return 1
    if [ "$status" != 200 ]; then
        printf 'POST /v1/chat/completions: HTTP %s: %s\n' "$status" "$(cat "$5")" >&2
        return 1
    fi
    app_json "$5" 'j["choices"][0]["message"]["content"]' >/dev/null ||
        { printf 'no answer in %s\n' "$(cat "$5")" >&2; return 1; }
}
