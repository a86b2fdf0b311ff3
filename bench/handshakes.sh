#!/usr/bin/env bash
# handshakes — full mutual-TLS agent handshakes one server completes per second (tls/tlink.h, real sockets)
#
# Run through bench/run, which builds the binaries and sets FLOTILLA_BIN.
# Starts one fresh server (a one-voter cluster, --no-agent) and drives its
# agent port with bench/hsgen: --threads blocking clients, each looping
# connect, a full TLS 1.3 handshake with an agent certificate of the
# cluster's CA (no session resumption: every handshake checks the
# certificate), the server's HELLO that admits it, close. Prints hsgen's
# figures, then the server's CPU over the run in cores and the handshakes
# per second of server CPU; the headline is handshakes_per_sec. Client and
# server share the machine's cores.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: bench/run handshakes [options]
  --threads N       client threads (default 2)
  --seconds S       measured seconds (default 5)
  --warmup S        unrecorded seconds first (default 1)
  --base-port P     API P+1, Raft P+101, agents P+201 (default 18900)
  --keep            keep the data directory and log (path printed at the end)
USAGE
}

THREADS=2
SECONDS_M=5
WARMUP=1
P=18900
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS=${2:?--threads needs a value}; shift ;;
        --seconds) SECONDS_M=${2:?--seconds needs a value}; shift ;;
        --warmup) WARMUP=${2:?--warmup needs a value}; shift ;;
        --base-port) P=${2:?--base-port needs a value}; shift ;;
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench/run handshakes: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run handshakes: bad --threads" >&2; exit 2; }
: "${FLOTILLA_BIN:?run this through bench/run}"
HSGEN=$(dirname "$FLOTILLA_BIN")/bench/hsgen

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-bench-hs.XXXXXX")
PID=
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

"$FLOTILLA_BIN" keygen --out "$WORK/cluster.key" >/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/pki.sh"
bench_pki "$WORK"
"$FLOTILLA_BIN" server --id 1 --data "$WORK/server" --key "$WORK/cluster.key" \
    $(bench_cert server server-1) --raft-addr 127.0.0.1:$((P + 101)) \
    --api-addr 127.0.0.1:$((P + 1)) --agent-addr 127.0.0.1:$((P + 201)) --no-agent \
    --bootstrap --peers "1=127.0.0.1:$((P + 101))" >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
    ss -Hltn "sport = :$((P + 201))" | grep -q . && break
    sleep 0.1
done
ss -Hltn "sport = :$((P + 201))" | grep -q . || { tail -20 "$WORK/server.log" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
echo "# $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(openssl version), P-256 certificates, TLS 1.3, no tickets, no resumption"
t0=$(cpu_ticks "$PID")
out=$("$HSGEN" --addr 127.0.0.1:$((P + 201)) --ca "$FLOTILLA_CACERT" \
    $(bench_cert agent hs-agent) --threads "$THREADS" --seconds "$SECONDS_M" --warmup "$WARMUP")
t1=$(cpu_ticks "$PID")
rate=$(awk '$1 == "handshakes_per_sec:" {print $2}' <<<"$out")
echo "$out" | grep -v '^handshakes_per_sec:'
awk -v t="$((t1 - t0))" -v hz="$hz" -v s="$(awk -v a="$SECONDS_M" -v b="$WARMUP" 'BEGIN{print a+b}')" \
    -v r="$rate" 'BEGIN {
        cores = t / hz / s
        printf "server_cpu: %.2f cores\n", cores
        if (cores > 0) printf "handshakes_per_server_cpu_sec: %.0f /s\n", r / cores
    }'
echo "handshakes_per_sec: $rate /s"
