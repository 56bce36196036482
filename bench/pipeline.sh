#!/usr/bin/env bash
# Pipeline benchmark, side by side with the reference tools in one run:
#   - copy 1 GiB over a unix: socket, up and down, against socat moving the
#     same bytes over the same kind of socket, in plaintext and over the
#     attested, encrypted channel (--key/--authorized-keys, development NSM);
#   - latency of `pipeline run -- true` against a local `sh -c true`, and
#     the connect-to-first-byte latency of an attested session against a
#     plaintext one.
# Prints a table with ratios; figures go to the README's performance section.
set -euo pipefail

# shellcheck source=bench/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-5}
EXEC_RUNS=${EXEC_RUNS:-300}
bench_help "$@"

ensure_apt socat hyperfine jq
cd "$ROOT_DIR"
bench_build -p pipeline
PIPELINE="$ROOT_DIR/target/release/pipeline"
# The static build is what goes into enclave images; it also starts faster.
RUSTFLAGS='-C target-feature=+crt-static' \
    bench_build --target x86_64-unknown-linux-gnu -p pipeline
STATIC="$ROOT_DIR/target/x86_64-unknown-linux-gnu/release/pipeline"

bench_workdir "${TMPDIR:-/tmp}"

say "writing a ${SIZE_MIB} MiB input file"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/in.bin"

"$PIPELINE" listen --addr "unix:$WORK/pipeline.sock" 2>"$WORK/server.log" &
bench_track "$!"
for _ in $(seq 100); do [ -S "$WORK/pipeline.sock" ] && break; sleep 0.05; done
export PIPELINE_ADDR="unix:$WORK/pipeline.sock"

# The attested server: a client key allowed everything under $WORK, the
# development NSM (its root and PCR file in $WORK/state).
"$PIPELINE" keygen --out "$WORK/client.key" --comment bench >/dev/null 2>&1
echo "exec,write=$WORK,read=$WORK $(cat "$WORK/client.key.pub")" >"$WORK/authorized_keys"
"$PIPELINE" listen --addr "unix:$WORK/attested.sock" --authorized-keys "$WORK/authorized_keys" \
    --nsm development --state-dir "$WORK/state" 2>"$WORK/attested.log" &
bench_track "$!"
for _ in $(seq 100); do [ -S "$WORK/attested.sock" ] && break; sleep 0.05; done
ATTESTED="--addr unix:$WORK/attested.sock --key $WORK/client.key --expect-pcrs $WORK/state/dev.eif.pcrs --root $WORK/state/dev-root.pem"

# socat, default buffer (8 KiB) and with the pipeline's chunk size (256 KiB).
RAW="socat -u OPEN:$WORK/in.bin UNIX-CONNECT:$WORK/raw.sock,retry=400,interval=0.005"
RAW_SINK="socat -u UNIX-LISTEN:$WORK/raw.sock,unlink-early OPEN:$WORK/raw.out,creat,trunc"
hyperfine --style basic --runs "$RUNS" --warmup 1 \
    --prepare "rm -f $WORK/raw.out $WORK/up.out $WORK/down.out" \
    --export-json "$WORK/copy.json" \
    -n "socat (8 KiB buffer)" "$RAW_SINK & $RAW; wait" \
    -n "socat (256 KiB buffer)" "${RAW_SINK/socat -u/socat -u -b 262144} & ${RAW/socat -u/socat -u -b 262144}; wait" \
    -n "pipeline cp up" "$PIPELINE cp -q $WORK/in.bin enclave:$WORK/up.out" \
    -n "pipeline cp down" "$PIPELINE cp -q enclave:$WORK/in.bin $WORK/down.out" \
    -n "pipeline cp up (attested)" "$PIPELINE cp -q $ATTESTED $WORK/in.bin enclave:$WORK/up.out" \
    -n "pipeline cp down (attested)" "$PIPELINE cp -q $ATTESTED enclave:$WORK/in.bin $WORK/down.out" >&2

# The timed runs removed their outputs: copy once more and compare the bytes.
"$PIPELINE" cp -q "$WORK/in.bin" "enclave:$WORK/up.out"
"$PIPELINE" cp -q "enclave:$WORK/in.bin" "$WORK/down.out"
cmp "$WORK/in.bin" "$WORK/up.out"
cmp "$WORK/in.bin" "$WORK/down.out"
rm -f "$WORK/up.out" "$WORK/down.out"
# shellcheck disable=SC2086 # $ATTESTED is a list of flags
"$PIPELINE" cp -q $ATTESTED "$WORK/in.bin" "enclave:$WORK/up.out"
# shellcheck disable=SC2086
"$PIPELINE" cp -q $ATTESTED "enclave:$WORK/in.bin" "$WORK/down.out"
cmp "$WORK/in.bin" "$WORK/up.out"
cmp "$WORK/in.bin" "$WORK/down.out"
rm -f "$WORK/up.out" "$WORK/down.out" "$WORK/raw.out"

hyperfine --style basic -N --runs "$EXEC_RUNS" --warmup 20 \
    --export-json "$WORK/exec.json" \
    -n "sh -c true (local)" "sh -c true" \
    -n "pipeline --version (client start-up alone)" "$PIPELINE --version" \
    -n "pipeline run -- true" "$PIPELINE run --no-stdin -- true" \
    -n "pipeline run -- true (static client)" "$STATIC run --no-stdin -- true" \
    -n "pipeline run -- true (attested)" "$PIPELINE run --no-stdin $ATTESTED -- true" >&2

mean() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .mean' "$1"; }
mbps() { awk -v s="$SIZE_MIB" -v t="$1" 'BEGIN { printf "%.0f", s * 1.048576 / t }'; }

raw8=$(mean "$WORK/copy.json" "socat (8 KiB buffer)")
raw256=$(mean "$WORK/copy.json" "socat (256 KiB buffer)")
up=$(mean "$WORK/copy.json" "pipeline cp up")
down=$(mean "$WORK/copy.json" "pipeline cp down")
best_raw=$(awk -v a="$raw8" -v b="$raw256" 'BEGIN { print (a < b) ? a : b }')
local_exec=$(mean "$WORK/exec.json" "sh -c true (local)")
startup=$(mean "$WORK/exec.json" "pipeline --version (client start-up alone)")
remote_exec=$(mean "$WORK/exec.json" "pipeline run -- true")
static_exec=$(mean "$WORK/exec.json" "pipeline run -- true (static client)")
attested_exec=$(mean "$WORK/exec.json" "pipeline run -- true (attested)")
up_enc=$(mean "$WORK/copy.json" "pipeline cp up (attested)")
down_enc=$(mean "$WORK/copy.json" "pipeline cp down (attested)")

echo
echo "## pipeline benchmark ($(nproc) cores, ${SIZE_MIB} MiB over unix:, $(date -u +%F))"
echo
echo "| what | time | MB/s | ratio to fastest socat |"
echo "| --- | --- | --- | --- |"
for pair in "socat (8 KiB buffer):$raw8" "socat (256 KiB buffer):$raw256" "pipeline cp up:$up" "pipeline cp down:$down" \
    "pipeline cp up (attested):$up_enc" "pipeline cp down (attested):$down_enc"; do
    name=${pair%%:*}
    t=${pair##*:}
    awk -v n="$name" -v t="$t" -v b="$best_raw" -v m="$(mbps "$t")" \
        'BEGIN { printf "| %s | %.3f s | %s | %.2f |\n", n, t, m, b / t }'
done
echo
awk -v p="$up" -v e="$up_enc" 'BEGIN { printf "attested / plaintext throughput: up %.2f", p / e }'
awk -v p="$down" -v e="$down_enc" 'BEGIN { printf ", down %.2f (goal >= 0.75)\n", p / e }'
echo
echo "| what | mean latency |"
echo "| --- | --- |"
awk -v t="$local_exec" 'BEGIN { printf "| sh -c true (local) | %.2f ms |\n", t * 1000 }'
awk -v t="$startup" 'BEGIN { printf "| pipeline --version (client start-up alone) | %.2f ms |\n", t * 1000 }'
awk -v t="$remote_exec" 'BEGIN { printf "| pipeline run -- true | %.2f ms |\n", t * 1000 }'
awk -v t="$static_exec" 'BEGIN { printf "| pipeline run -- true (static client) | %.2f ms |\n", t * 1000 }'
awk -v a="$remote_exec" -v b="$local_exec" 'BEGIN { printf "| overhead of pipeline | %.2f ms |\n", (a - b) * 1000 }'
awk -v a="$static_exec" -v b="$local_exec" 'BEGIN { printf "| overhead of pipeline (static client) | %.2f ms |\n", (a - b) * 1000 }'
awk -v t="$attested_exec" 'BEGIN { printf "| pipeline run -- true (attested: handshake, NSM document, verification) | %.2f ms |\n", t * 1000 }'
awk -v a="$attested_exec" -v b="$remote_exec" 'BEGIN { printf "| attested session over a plaintext one (connect to first byte) | +%.2f ms |\n", (a - b) * 1000 }'
