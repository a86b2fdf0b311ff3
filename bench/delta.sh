#!/usr/bin/env bash
# delta — librsync signature, delta and patch throughput (MB/s) on a 100 MB package with 1% changed
#
# Run through bench/run, which builds the Release binary and sets
# FLOTILLA_BIN. Makes a --size MB random package (v1) and a v2 with --change
# percent of its bytes overwritten in --edits runs at random places (seeded),
# then times `flotilla delta signature|delta|patch` (deploy/delta.h, the code
# an agent and a server run) --runs times and reports the median of each:
#   signature  the agent's signature of v1 (BLAKE2, Flotilla's block length)
#   delta      the server's delta of v2 against that signature
#   patch      the agent's patch of v1 with the delta into v2, hashing the
#              result (BLAKE2b-256) and checking it against v2's hash
#   pipeline   size / (signature + delta + patch): the three in sequence
# Throughput is MB (10^6 bytes) of package per second of the operation alone
# (measured inside the process, without its start). The files sit in the
# page cache (--dir, default a temporary directory under $TMPDIR or /tmp), so
# this measures CPU, not the disk.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run delta [options]
  --size MB       package size in MB (default 100)
  --change PCT    percent of the bytes changed in v2 (default 1)
  --edits N       number of changed runs the change is split into (default 100)
  --runs N        timed repetitions; the median is reported (default 3)
  --block-len B   signature block length (default: Flotilla's, sqrt(size) capped at 2048)
  --dir DIR       where the files go (default: a new directory under ${TMPDIR:-/tmp})
EOF
}

SIZE=100
CHANGE=1
EDITS=100
RUNS=3
BLOCK=
DIR_BASE=${TMPDIR:-/tmp}
while [ $# -gt 0 ]; do
    case "$1" in
        --size) SIZE=${2:?--size needs a value}; shift ;;
        --change) CHANGE=${2:?--change needs a value}; shift ;;
        --edits) EDITS=${2:?--edits needs a value}; shift ;;
        --runs) RUNS=${2:?--runs needs a value}; shift ;;
        --block-len) BLOCK=${2:?--block-len needs a value}; shift ;;
        --dir) DIR_BASE=${2:?--dir needs a value}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench/run delta: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ "$SIZE" =~ ^[1-9][0-9]*$ ]] && [ "$SIZE" -le 4096 ] ||
    { echo "bench/run delta: bad --size $SIZE (1..4096)" >&2; exit 2; }
[[ "$CHANGE" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bench/run delta: bad --change $CHANGE" >&2; exit 2; }
[[ "$EDITS" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run delta: bad --edits $EDITS" >&2; exit 2; }
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run delta: bad --runs $RUNS" >&2; exit 2; }
[ -z "$BLOCK" ] || [[ "$BLOCK" =~ ^[1-9][0-9]*$ ]] ||
    { echo "bench/run delta: bad --block-len $BLOCK" >&2; exit 2; }
: "${FLOTILLA_BIN:?run this through bench/run}"
PY=/usr/bin/python3

DIR=$(mktemp -d "$DIR_BASE/flotilla-bench-delta-XXXXXX")
trap 'rm -rf "$DIR"' EXIT INT TERM

echo "# bench delta: $(git -C "$(dirname "$0")/.." describe --always --dirty 2>/dev/null || echo unknown)"
echo "# machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "# files in $DIR ($(df -PT "$DIR" | awk 'NR==2 {print $2}')), page-cached; librsync $(dpkg-query -W -f='${Version}' librsync2 2>/dev/null || echo '?'), Release build"

# v1: random bytes; v2: CHANGE% of them overwritten in EDITS runs (seed 1).
head -c $((SIZE * 1000000)) /dev/urandom >"$DIR/v1"
"$PY" - "$DIR/v1" "$DIR/v2" "$CHANGE" "$EDITS" <<'EOF'
import random, sys
src, dst, pct, edits = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
data = bytearray(open(src, "rb").read())
r = random.Random(1)
run = max(1, int(len(data) * pct / 100 / edits))
for _ in range(edits):
    at = r.randrange(0, len(data) - run)
    data[at:at + run] = r.randbytes(run)
open(dst, "wb").write(data)
print("# v2: %d runs of %d bytes overwritten (%.2f%% of %d bytes, runs may overlap)"
      % (edits, run, 100.0 * edits * run / len(data), len(data)))
EOF
HASH=$("$FLOTILLA_BIN" delta hash "$DIR/v2" | sed 's/.*"hash": "\([0-9a-f]*\)".*/\1/')
OPTS=()
[ -z "$BLOCK" ] || OPTS=(--block-len "$BLOCK")

field() { sed "s/.*\"$1\": \([0-9.]*\).*/\1/"; }

sig_s=() delta_s=() patch_s=()
for ((i = 0; i < RUNS; i++)); do
    rm -f "$DIR/sig" "$DIR/delta" "$DIR/out"
    s=$("$FLOTILLA_BIN" delta signature "${OPTS[@]}" "$DIR/v1" "$DIR/sig")
    d=$("$FLOTILLA_BIN" delta delta "$DIR/sig" "$DIR/v2" "$DIR/delta")
    p=$("$FLOTILLA_BIN" delta patch --hash "$HASH" "$DIR/v1" "$DIR/delta" "$DIR/out")
    sig_s+=("$(field seconds <<<"$s")")
    delta_s+=("$(field seconds <<<"$d")")
    patch_s+=("$(field seconds <<<"$p")")
    block=$(field block_len <<<"$s")
done
cmp -s "$DIR/out" "$DIR/v2" || { echo "bench/run delta: the patched file differs from v2" >&2; exit 1; }
sig_bytes=$(stat -c %s "$DIR/sig")
delta_bytes=$(stat -c %s "$DIR/delta")

"$PY" - "$SIZE" "$sig_bytes" "$delta_bytes" "$block" "${sig_s[*]}" "${delta_s[*]}" "${patch_s[*]}" <<'EOF'
import statistics, sys
size_mb = int(sys.argv[1])
sig_bytes, delta_bytes, block = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sig, delta, patch = ([float(x) for x in a.split()] for a in sys.argv[5:8])
pipe = [a + b + c for a, b, c in zip(sig, delta, patch)]
med = statistics.median
print("# block length %d bytes, BLAKE2 strong sums of 16 bytes; %d runs, median reported"
      % (block, len(sig)))
print("# pipeline seconds per run: %s" % " ".join("%.3f" % p for p in pipe))
print("signature_bytes: %d bytes" % sig_bytes)
print("delta_bytes: %d bytes" % delta_bytes)
print("delta_ratio: %.2f %%" % (100.0 * delta_bytes / (size_mb * 1e6)))
print("signature_mb_per_sec: %.0f MB/s" % (size_mb / med(sig)))
print("delta_mb_per_sec: %.0f MB/s" % (size_mb / med(delta)))
print("patch_mb_per_sec: %.0f MB/s" % (size_mb / med(patch)))
print("pipeline_mb_per_sec: %.0f MB/s" % (size_mb / med(pipe)))
EOF
