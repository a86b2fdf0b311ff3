#!/usr/bin/env bash
# locks — contended lock handoffs/s (16 clients, one mutex) and uncontended acquire p50/p99 on 3 loopback servers
#
# Run through bench/run, which builds the binaries and sets FLOTILLA_BIN and
# LOADGEN (lockgen is built beside loadgen). Starts a fresh three-server
# Flotilla cluster on loopback and drives its leader with bench/lockgen:
#
#   contended    --clients (16) clients, each with its own session and
#                connection, loop acquire (wait 10s) -> release on one mutex
#                as fast as they can; every grant is a handoff (the release of
#                one client grants the next waiter in the same Raft entry).
#                handoffs_per_sec: grants answered in the measured window / its
#                length; gap_*: time between consecutive grants (one handoff);
#                acquire_*: the wait of one acquire, queueing included.
#   uncontended  one client loops acquire (no wait) -> release on a lock no one
#                else wants: the same lock each time, then a new lock each time
#                (--distinct). acquire_p50/p99: one acquire, request written
#                to response read, which is one Raft commit.
#
# --profile records the leader with `perf record -g` during the contended run
# and prints its top symbols as "#" lines.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run locks [options]
  --clients N       contended clients (default 16)
  --duration S      measured seconds per run (default 10)
  --warmup S        unrecorded seconds before each run (default 1)
  --base-port P     Flotilla API ports P+1..P+3, Raft P+101.. (default 18700)
  --profile         perf record the leader during the contended run (needs perf)
  --keep            keep the data directories and logs (path printed at the end)
EOF
}

CLIENTS=16
DURATION=10
WARMUP=1
P=18700
PROFILE=0
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS=${2:?--clients needs a value}; shift ;;
        --duration) DURATION=${2:?--duration needs a value}; shift ;;
        --warmup) WARMUP=${2:?--warmup needs a value}; shift ;;
        --base-port) P=${2:?--base-port needs a value}; shift ;;
        --profile) PROFILE=1 ;;
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench/run locks: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ "$CLIENTS" =~ ^[1-9][0-9]*$ ]] && [ "$CLIENTS" -le 256 ] ||
    { echo "bench/run locks: bad --clients $CLIENTS (1..256)" >&2; exit 2; }
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run locks: bad --duration $DURATION" >&2; exit 2; }
[[ "$WARMUP" =~ ^[0-9]+$ ]] || { echo "bench/run locks: bad --warmup $WARMUP" >&2; exit 2; }
if [[ ! "$P" =~ ^[0-9]{4,5}$ ]] || [ "$P" -lt 1024 ] || [ "$P" -gt 65000 ]; then
    echo "bench/run locks: bad --base-port $P (1024..65000)" >&2
    exit 2
fi
: "${FLOTILLA_BIN:?run this through bench/run}" "${LOADGEN:?run this through bench/run}"
LOCKGEN=${LOCKGEN:-$(dirname "$LOADGEN")/lockgen}
[ -x "$LOCKGEN" ] || { echo "bench/run locks: no lockgen at $LOCKGEN" >&2; exit 1; }
if [ "$PROFILE" = 1 ] && ! command -v perf >/dev/null; then
    echo "bench/run locks: --profile needs perf" >&2
    exit 2
fi

# ---------------------------------------------------------------- cleanup
# Servers are recorded in PIDS, the running lockgen or perf in CHILD; the
# trap ends them (servers: TERM, then KILL after 5 s) and removes the data
# directory, on any exit or signal.
PIDS=()
CHILD=
WORK=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-bench.XXXXXX")
# Every link is encrypted with the cluster key (docs/SECURITY.md).
"$FLOTILLA_BIN" keygen --out "$WORK/cluster.key" >/dev/null
export FLOTILLA_KEY_FILE="$WORK/cluster.key"

# The cluster CA and the certificates of every process (bench/pki.sh).
source "$(dirname "${BASH_SOURCE[0]}")/pki.sh"
bench_pki "$WORK"

stop_pids() {
    local pid deadline=$((SECONDS + 5))
    [ ${#PIDS[@]} -gt 0 ] || return 0
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}

cleanup() {
    trap - EXIT INT TERM
    if [ -n "$CHILD" ]; then
        kill -KILL "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    stop_pids
    if [ "$KEEP" = 1 ]; then
        echo "# kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

die() {
    echo "bench/run locks: $*" >&2
    exit 1
}

port_free() {
    ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

show_logs() {
    local f
    for f in "$@"; do
        echo "--- $f" >&2
        tail -n 15 "$f" >&2 || true
    done
}

# ---------------------------------------------------------------- cluster
declare -A SERVER_PID

flotilla_start() {
    local i port peers="1=127.0.0.1:$((P + 101)),2=127.0.0.1:$((P + 102)),3=127.0.0.1:$((P + 103))"
    for port in $((P + 1)) $((P + 2)) $((P + 3)) $((P + 101)) $((P + 102)) $((P + 103)); do
        port_free "$port" || die "port $port is in use (pick another --base-port)"
    done
    for i in 1 2 3; do
        "$FLOTILLA_BIN" server --id $i --data "$WORK/server-$i" $(bench_cert server server-$i) \
            --raft-addr 127.0.0.1:$((P + 100 + i)) --api-addr 127.0.0.1:$((P + i)) \
            --agent-addr 127.0.0.1:$((P + 200 + i)) \
            --bootstrap --peers "$peers" >"$WORK/server-$i.log" 2>&1 &
        PIDS+=($!)
        SERVER_PID[$i]=$!
    done
}

# Sets LEADER (API address) and LEADER_ID of the ready leader; fails after 30 s.
flotilla_leader() {
    local i st deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
        for i in 1 2 3; do
            st=$(curl -sf --max-time 1 "https://127.0.0.1:$((P + i))/v1/status" 2>/dev/null) || continue
            if grep -Eq '"state": *"leader"' <<<"$st" && grep -Eq '"ready": *true' <<<"$st"; then
                LEADER="127.0.0.1:$((P + i))"
                LEADER_ID=$i
                return 0
            fi
        done
        sleep 0.2
    done
    show_logs "$WORK"/server-*.log
    die "no ready Flotilla leader after 30 s"
}

# run_lockgen ARGS... — lockgen in the background (so a signal reaches the
# trap at once), its output echoed; fails if it fails.
run_lockgen() {
    local rc=0
    "$LOCKGEN" --addr "$LEADER" --ca "$FLOTILLA_CACERT" --duration "$DURATION" --warmup "$WARMUP" \
        "$@" >"$WORK/lockgen.out" &
    CHILD=$!
    wait $CHILD || rc=$?
    CHILD=
    cat "$WORK/lockgen.out"
    [ $rc -eq 0 ] || die "lockgen failed (exit $rc)"
}

leader_cpu_ticks() {
    awk '{print $14 + $15}' "/proc/${SERVER_PID[$LEADER_ID]}/stat"
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "# bench locks: $(git -C "$(dirname "$FLOTILLA_BIN")/.." describe --always --dirty 2>/dev/null ||
    echo unknown)"
echo "# conditions: contended: $CLIENTS clients, one mutex, acquire with wait 10s then release," \
    "sessions TTL 30s, lock-delay 0; uncontended: 1 client, acquire without wait then release;" \
    "${WARMUP} s warm-up + ${DURATION} s measured per run; keep-alive HTTP/1.1 to the leader only"
echo "# machine: $(nproc) cores (${cpu:-unknown cpu}), $(free -g | awk '/^Mem:/ {print $2}') GiB," \
    "data on $(df -PT "$WORK" | awk 'NR == 2 {print $2}') ($WORK), clients and servers share the cores," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "# flotilla: three servers, Release build, raft assertions off, default settings (Raft log fsynced; the store log-durable, docs/STORE.md)"

flotilla_start
flotilla_leader
# shellcheck source=bench/token.sh
. "$(dirname "${BASH_SOURCE[0]}")/token.sh"
bench_token "$LEADER" "$WORK" || die "could not bootstrap the API token"

# Uncontended first (the lock table is empty), then contended.
run_lockgen --mode uncontended --label uncontended_same
run_lockgen --mode uncontended --distinct --label uncontended_distinct

flotilla_leader
ticks0=$(leader_cpu_ticks)
t0=$(date +%s.%N)
if [ "$PROFILE" = 1 ]; then
    perf record -g -o "$WORK/perf.data" -p "${SERVER_PID[$LEADER_ID]}" >/dev/null 2>&1 &
    PERF=$!
fi
run_lockgen --mode contended --clients "$CLIENTS" --label contended | tee "$WORK/contended.out"
ticks1=$(leader_cpu_ticks)
t1=$(date +%s.%N)
echo "contended_leader_cpu: $(awk -v a="$ticks0" -v b="$ticks1" -v s="$t0" -v e="$t1" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.2f", (b - a) / hz / (e - s) }') cores"
if [ "$PROFILE" = 1 ]; then
    kill -INT "$PERF" 2>/dev/null || true
    wait "$PERF" 2>/dev/null || true
    echo "# perf: leader's top symbols (self time) during the contended run:"
    perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
        grep -E '^ +[0-9]' | head -n 25 | sed 's/^/#   /'
fi

stop_pids
h=$(sed -n 's/^contended_handoffs_per_sec: \([0-9.]*\) .*/\1/p' "$WORK/contended.out")
echo "handoffs_per_sec: ${h:-0} handoffs/s"
