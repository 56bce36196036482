#!/usr/bin/env bash
# Benchmark of ra-verify (run by `tools/devtool bench ra-verify`; not a test).
#
# Both figures run ra-verify and OpenSSL, the reference, on the same input
# in the same run:
#   verify     one offline verification of a real AWS Nitro document
#              (ra-verify/tests/data), a fresh process each time: parse,
#              ES384 COSE signature and the chain of 4 certificates to the
#              bundled root, mean of C calls; against `openssl verify` of
#              the same chain (chain only, no COSE) at the document's time
#   file_hash  `ra-verify doc --document D --file BIG` (the document
#              checks plus the SHA3-512 of a BIG file) against
#              `openssl dgst -sha3-512 BIG`, best of R runs
# Ratios are ra-verify / openssl (below 1: ra-verify is faster).
#
# Environment: BENCH_CALLS (200), BENCH_RUNS (3), BENCH_SIZE_MIB (1024).
set -euo pipefail

# shellcheck source=bench/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

CALLS=${BENCH_CALLS:-200}
RUNS=${BENCH_RUNS:-3}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}

bench_help "$@"

say "building ra-verify (release)"
cd "$ROOT_DIR"
bench_build -p ra-verify --bin ra-verify
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
RA_VERIFY=$TARGET_DIR/release/ra-verify

bench_workdir /var/tmp

base64 -d "$ROOT_DIR/ra-verify/tests/data/nitro-2024-09-17.b64" >"$WORK/doc.cbor"
cp "$ROOT_DIR/ra-verify-core/roots/aws-nitro-enclaves-root-g1.pem" "$WORK/root.pem"
# The document's certificates for openssl: each is a CBOR byte string
# (0x59, 2-byte length) holding a DER SEQUENCE (0x30 0x82, 2-byte length).
python3 - "$WORK" <<'EOF'
import struct, subprocess, sys
work = sys.argv[1]
data = open(f"{work}/doc.cbor", "rb").read()
certs = []
for i in range(len(data) - 7):
    if data[i] == 0x59 and data[i + 3:i + 5] == b"\x30\x82":
        (blen,) = struct.unpack(">H", data[i + 1:i + 3])
        (dlen,) = struct.unpack(">H", data[i + 5:i + 7])
        if blen == dlen + 4:
            certs.append(data[i + 3:i + 3 + blen])
def pem(der):
    return subprocess.run(["openssl", "x509", "-inform", "DER"], input=der,
                          capture_output=True, check=True).stdout
# certificate first, then cabundle (root, zonal, regional, instance CA)
open(f"{work}/leaf.pem", "wb").write(pem(certs[0]))
open(f"{work}/bundle.pem", "wb").write(b"".join(pem(c) for c in certs[2:]))
EOF
# The document's time (2024-09-17T00:47:59Z), when its 3-hour leaf was valid.
AT=1726534079
openssl verify -attime "$AT" -CAfile "$WORK/root.pem" -untrusted "$WORK/bundle.pem" \
    "$WORK/leaf.pem" >/dev/null || die "openssl does not verify the reference chain"
# (exit 1: its user_data is not one of our bindings; the chain must pass)
report=$("$RA_VERIFY" doc --document "$WORK/doc.cbor" || true)
grep -q '^PASS certificate_chain' <<<"$report" ||
    die "ra-verify does not verify the reference document"

now_ns() { date +%s%N; }

say "verify: $CALLS calls each"
start=$(now_ns)
for _ in $(seq "$CALLS"); do
    "$RA_VERIFY" doc --document "$WORK/doc.cbor" >/dev/null || true
done
ours=$((($(now_ns) - start) / CALLS))
start=$(now_ns)
for _ in $(seq "$CALLS"); do
    openssl verify -attime "$AT" -CAfile "$WORK/root.pem" -untrusted "$WORK/bundle.pem" \
        "$WORK/leaf.pem" >/dev/null
done
theirs=$((($(now_ns) - start) / CALLS))
printf 'verify     ra-verify %6.2f ms   openssl verify %6.2f ms   ratio %.2f\n' \
    "$(echo "$ours / 1000000" | bc -l)" "$(echo "$theirs / 1000000" | bc -l)" \
    "$(echo "$ours / $theirs" | bc -l)"

say "file_hash: $SIZE_MIB MiB file, best of $RUNS"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/big"
best_ours=0
best_theirs=0
for _ in $(seq "$RUNS"); do
    start=$(now_ns)
    "$RA_VERIFY" doc --document "$WORK/doc.cbor" --file "$WORK/big" >/dev/null || true
    t=$(($(now_ns) - start))
    if [ "$best_ours" -eq 0 ] || [ "$t" -lt "$best_ours" ]; then best_ours=$t; fi
    start=$(now_ns)
    openssl dgst -sha3-512 "$WORK/big" >/dev/null
    t=$(($(now_ns) - start))
    if [ "$best_theirs" -eq 0 ] || [ "$t" -lt "$best_theirs" ]; then best_theirs=$t; fi
done
mbps() { echo "$SIZE_MIB * 1048576 / ($1 / 1000000000) / 1000000" | bc -l; }
printf 'file_hash  ra-verify %6.0f MB/s   openssl dgst %6.0f MB/s   ratio %.2f (time)\n' \
    "$(mbps "$best_ours")" "$(mbps "$best_theirs")" "$(echo "$best_ours / $best_theirs" | bc -l)"
