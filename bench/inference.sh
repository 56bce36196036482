#!/usr/bin/env bash
# Benchmark of the inference server (run by `tools/devtool bench inference`;
# not a test).
#
# The same greedy chat generation (SmolLM2-135M-Instruct, re-quantised to
# Q8_0, the same prompt and T new tokens), measured two ways in the same run:
#   runtime  `inference-server --bench`: the engine alone, no HTTP, no queue
#            (a fresh process per run, a 4-token warm-up, then the timed generation)
#   http     a streaming POST /v1/chat/completions to the server on
#            loopback, timed by curl: time to first token is the time to the
#            first byte of the answer (the server answers when the first
#            token is ready), the decode rate counts the tokens after it
# Figures: time to first token (ttft, ms) and decode tokens/s, best of R
# runs each; ratios are http / runtime (ttft above 1 and tokens/s below 1
# are the server's overhead). Both must produce the same text.
#
# With BENCH_VM_URL (the enclave's published port, e.g. https://127.0.0.1:10443
# once `tools/devtool up` has loaded the model), the same streaming request
# of BENCH_VM_TOKENS tokens through the reverse proxy into the enclave: the
# VM figure, next to the runtime's in the same run.
#
# Environment: BENCH_RUNS (3), BENCH_TOKENS (128), BENCH_THREADS (1),
# BENCH_VM_URL (none), BENCH_VM_TOKENS (16),
# INFERENCE_MODEL_GGUF (default: fetched by fetch-model.sh).
set -euo pipefail

# shellcheck source=bench/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

RUNS=${BENCH_RUNS:-3}
TOKENS=${BENCH_TOKENS:-128}
THREADS=${BENCH_THREADS:-1}
VM_TOKENS=${BENCH_VM_TOKENS:-16}
PROMPT="Write a short story about a robot who learns to paint."

bench_help "$@"

command -v curl >/dev/null 2>&1 || die "curl is needed"
command -v python3 >/dev/null 2>&1 || die "python3 is needed"

MODEL=${INFERENCE_MODEL_GGUF:-}
if [ -z "$MODEL" ]; then
    MODEL=$(bash "$ROOT_DIR/reference_apps/inference_server/fetch-model.sh")
    ok_or_die "cannot fetch the model"
fi
[ -f "$MODEL" ] || die "no model file at $MODEL"

say "building inference-server (release)"
cd "$ROOT_DIR"
bench_build -p inference-server --bin inference-server
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
SERVER=$TARGET_DIR/release/inference-server

bench_workdir "${TMPDIR:-/tmp}"

# json FILE EXPR: evaluates the Python expression EXPR over the JSON in FILE (as j).
json() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

say "runtime alone: $RUNS runs of $TOKENS tokens, $THREADS thread(s)"
best_rt_ttft=""
best_rt_tps=""
for run in $(seq "$RUNS"); do
    "$SERVER" --bench --model "$MODEL" --threads "$THREADS" --bench-tokens "$TOKENS" \
        --bench-prompt "$PROMPT" >"$WORK/runtime-$run.json" 2>"$WORK/runtime.log" ||
        die "inference-server --bench failed: $(cat "$WORK/runtime.log")"
    ttft=$(json "$WORK/runtime-$run.json" 'j["ttft_seconds"] * 1000')
    tps=$(json "$WORK/runtime-$run.json" 'j["decode_tokens_per_second"]')
    if [ -z "$best_rt_ttft" ] || awk -v a="$ttft" -v b="$best_rt_ttft" 'BEGIN { exit !(a < b) }'; then best_rt_ttft=$ttft; fi
    if [ -z "$best_rt_tps" ] || awk -v a="$tps" -v b="$best_rt_tps" 'BEGIN { exit !(a > b) }'; then best_rt_tps=$tps; fi
done
rt_tokens=$(json "$WORK/runtime-1.json" 'j["completion_tokens"]')
json "$WORK/runtime-1.json" 'j["text"]' >"$WORK/runtime.txt"

say "http: starting the server"
"$SERVER" --listen 127.0.0.1:0 --model "$MODEL" --threads "$THREADS" 2>"$WORK/server.log" &
bench_track $!
address=""
for _ in $(seq 600); do
    address=$(sed -n 's/.*listening address=\([0-9.:]*\).*/\1/p' "$WORK/server.log" | head -n1)
    [ -n "$address" ] && break
    kill -0 "${BENCH_PIDS[0]}" 2>/dev/null || die "the server exited: $(cat "$WORK/server.log")"
    sleep 0.1
done
[ -n "$address" ] || die "the server did not start: $(cat "$WORK/server.log")"

request() {
    python3 - "$PROMPT" "$1" <<'PY'
import json, sys
print(json.dumps({"messages": [{"role": "user", "content": sys.argv[1]}], "temperature": 0,
                  "max_tokens": int(sys.argv[2]), "stream": True,
                  "stream_options": {"include_usage": True}}))
PY
}
request 4 >"$WORK/warmup.json"
request "$TOKENS" >"$WORK/request.json"
curl -sS -o /dev/null -H 'content-type: application/json' --data-binary @"$WORK/warmup.json" \
    "http://$address/v1/chat/completions" || die "the warm-up request failed"

# measure_http LABEL URL REQUEST [CURL_ARGS...]: RUNS streaming requests of
# REQUEST to URL/v1/chat/completions, timed by curl; sets BEST_TTFT (ms),
# BEST_TPS of the best runs, TOKENS_OUT (the tokens of the last), the text
# of the first in
# $WORK/LABEL.txt.
measure_http() {
    local label=$1 url=$2 request=$3 run times first total ttft tps
    shift 3
    BEST_TTFT=""
    BEST_TPS=""
    for run in $(seq "$RUNS"); do
        times=$(curl -sS -N "$@" -o "$WORK/$label-$run.sse" -w '%{time_starttransfer} %{time_total}' \
            -H 'content-type: application/json' --data-binary @"$request" \
            "$url/v1/chat/completions") || die "the request to $url failed"
        read -r first total <<<"$times"
        python3 - "$WORK/$label-$run.sse" "$WORK/$label-$run.json" <<'PY'
import json, sys
text, usage = "", None
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.startswith("data:"):
        continue
    data = line[5:].strip()
    if data == "[DONE]":
        break
    chunk = json.loads(data)
    if chunk.get("usage"):
        usage = chunk["usage"]
    for choice in chunk.get("choices", []):
        text += choice.get("delta", {}).get("content") or ""
json.dump({"text": text, "completion_tokens": usage["completion_tokens"]}, open(sys.argv[2], "w"))
PY
        TOKENS_OUT=$(json "$WORK/$label-$run.json" 'j["completion_tokens"]')
        ttft=$(awk -v f="$first" 'BEGIN { printf "%.3f", f * 1000 }')
        tps=$(awk -v n="$TOKENS_OUT" -v f="$first" -v t="$total" 'BEGIN { if (t > f) printf "%.3f", (n - 1) / (t - f); else print 0 }')
        if [ -z "$BEST_TTFT" ] || awk -v a="$ttft" -v b="$BEST_TTFT" 'BEGIN { exit !(a < b) }'; then BEST_TTFT=$ttft; fi
        if [ -z "$BEST_TPS" ] || awk -v a="$tps" -v b="$BEST_TPS" 'BEGIN { exit !(a > b) }'; then BEST_TPS=$tps; fi
    done
    json "$WORK/$label-1.json" 'j["text"]' >"$WORK/$label.txt"
}

say "http: $RUNS runs of $TOKENS tokens"
measure_http http "http://$address" "$WORK/request.json"
best_http_ttft=$BEST_TTFT
best_http_tps=$BEST_TPS
tokens=$TOKENS_OUT
same=no
cmp -s "$WORK/runtime.txt" "$WORK/http.txt" && same=yes

printf 'inference  %s tokens (runtime) / %s (http), threads %s, same text: %s\n' \
    "$rt_tokens" "$tokens" "$THREADS" "$same"
printf 'ttft       runtime %8.1f ms     http %8.1f ms     ratio %s\n' \
    "$best_rt_ttft" "$best_http_ttft" "$(ratio "$best_http_ttft" "$best_rt_ttft")"
printf 'decode     runtime %8.1f tok/s  http %8.1f tok/s  ratio %s\n' \
    "$best_rt_tps" "$best_http_tps" "$(ratio "$best_http_tps" "$best_rt_tps")"
[ "$same" = yes ] || die "the server and the runtime produced different text"

# The VM figure: the same request, shorter (a VM under TCG emulation decodes
# about a hundred times slower), through the enclave's published TLS port.
# Its text is compared with the runtime's, not required to match (below).
if [ -n "${BENCH_VM_URL:-}" ]; then
    request "$VM_TOKENS" >"$WORK/vm-request.json"
    say "vm: $RUNS runs of $VM_TOKENS tokens through $BENCH_VM_URL"
    # -k: the enclave's self-signed certificate (ra-verify --endpoint checks it).
    measure_http vm "$BENCH_VM_URL" "$WORK/vm-request.json" -k
    vm_same=no
    [ -s "$WORK/vm.txt" ] || die "the enclave's server answered no text"
    case "$(cat "$WORK/runtime.txt")" in "$(cat "$WORK/vm.txt")"*) vm_same=yes ;; esac
    printf 'vm         %s tokens through %s, the same text as the runtime'"'"'s start: %s\n' \
        "$TOKENS_OUT" "$BENCH_VM_URL" "$vm_same"
    printf 'ttft       vm %8.1f ms   ratio to runtime %s\n' "$BEST_TTFT" "$(ratio "$BEST_TTFT" "$best_rt_ttft")"
    printf 'decode     vm %8.3f tok/s ratio to runtime %s\n' "$BEST_TPS" "$(ratio "$BEST_TPS" "$best_rt_tps")"
    # Greedy decoding follows the logits' rounding, and the VM's CPU (QEMU
    # TCG, -cpu max) gives the matrix kernels other instructions than the
    # host's: the text may part from the runtime's at a close choice. On the
    # same machine it is the same every time.
    [ "$vm_same" = yes ] || say "the VM's text parts from the runtime's (another CPU, other rounding): $(head -c 80 "$WORK/vm.txt")"
fi
