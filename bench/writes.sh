#!/usr/bin/env bash
# writes — replicated writes/s, p50/p99 at 1, 16, 256 in flight on 3 loopback servers (--vs-etcd: vs etcd 3.4; --compare-plaintext: encrypted vs plaintext Raft)
#
# Run through bench/run, which builds the binaries and sets FLOTILLA_BIN and
# LOADGEN. Starts a fresh three-server Flotilla cluster on loopback, drives its
# leader with bench/loadgen at each in-flight count, stops it; with --vs-etcd
# then does the same with a fresh three-member etcd and the same load shape
# (value size, in-flight counts, durations, leader only). One system runs at a
# time so they never share the machine's cores with each other. With
# --compare-plaintext the same Flotilla runs once more with
# --raft-plaintext (Raft without TLS, for measurement only,
# docs/SECURITY.md) and the script ends with the encrypted rate over the
# plaintext one.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run writes [options]
  --vs-etcd         also measure a three-member etcd (/usr/bin/etcd) the same way,
                    and end with Flotilla's rate over etcd's
  --compare-plaintext
                    also measure Flotilla with --raft-plaintext (unencrypted Raft, for
                    measurement only) and end with encrypted over plaintext
  --duration S      measured seconds per in-flight count (default 5)
  --warmup S        unrecorded seconds before each measurement (default 1)
  --value-size N    bytes per value (default 64)
  --inflight "LIST" in-flight counts (default "1 16 256"); the headline is the last
  --base-port P     Flotilla API ports P+1..P+3, Raft P+101.., agents P+201..; etcd clients P+201..,
                    etcd peers P+301.. (default 18400)
  --keep            keep the data directories and logs (path printed at the end)
EOF
}

DURATION=5
WARMUP=1
VALUE_SIZE=64
INFLIGHT="1 16 256"
P=18400
VS_ETCD=0
PLAINTEXT=0
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --vs-etcd) VS_ETCD=1 ;;
        --compare-plaintext) PLAINTEXT=1 ;;
        --duration) DURATION=${2:?--duration needs a value}; shift ;;
        --warmup) WARMUP=${2:?--warmup needs a value}; shift ;;
        --value-size) VALUE_SIZE=${2:?--value-size needs a value}; shift ;;
        --inflight) INFLIGHT=${2:?--inflight needs a value}; shift ;;
        --base-port) P=${2:?--base-port needs a value}; shift ;;
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench/run writes: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
for n in $INFLIGHT; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run writes: bad --inflight \"$INFLIGHT\"" >&2; exit 2; }
    LAST=$n
done
[ -n "${LAST:-}" ] || { echo "bench/run writes: --inflight is empty" >&2; exit 2; }
if [[ ! "$P" =~ ^[0-9]{4,5}$ ]] || [ "$P" -lt 1024 ] || [ "$P" -gt 65000 ]; then
    echo "bench/run writes: bad --base-port $P (1024..65000)" >&2
    exit 2
fi
: "${FLOTILLA_BIN:?run this through bench/run}" "${LOADGEN:?run this through bench/run}"

# ---------------------------------------------------------------- cleanup
# Every server we start is recorded in PIDS, the running loadgen in
# LOADGEN_PID; the trap ends them (servers: TERM, then KILL after 5 s) and
# removes the data directory, on any exit or signal.
PIDS=()
LOADGEN_PID=
WORK=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-bench.XXXXXX")
# The servers' key (docs/SECURITY.md).
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
    if [ -n "$LOADGEN_PID" ]; then
        kill -KILL "$LOADGEN_PID" 2>/dev/null || true
        wait "$LOADGEN_PID" 2>/dev/null || true
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
    echo "bench/run writes: $*" >&2
    exit 1
}

port_free() {
    ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

check_ports() {
    local port
    for port in "$@"; do
        port_free "$port" || die "port $port is in use (pick another --base-port)"
    done
}

# show_logs FILE... — the end of each log, after a failure.
show_logs() {
    local f
    for f in "$@"; do
        echo "--- $f" >&2
        tail -n 15 "$f" >&2 || true
    done
}

# ---------------------------------------------------------------- Flotilla
# flotilla_start [SUFFIX [SERVER FLAGS...]] — fresh data directories WORK/server-N[SUFFIX].
flotilla_start() {
    local i peers="1=127.0.0.1:$((P + 101)),2=127.0.0.1:$((P + 102)),3=127.0.0.1:$((P + 103))"
    local suffix=${1:-}
    shift || true
    check_ports $((P + 1)) $((P + 2)) $((P + 3)) $((P + 101)) $((P + 102)) $((P + 103))
    for i in 1 2 3; do
        "$FLOTILLA_BIN" server --id $i --data "$WORK/server-$i$suffix" $(bench_cert server server-$i) \
            --raft-addr 127.0.0.1:$((P + 100 + i)) --api-addr 127.0.0.1:$((P + i)) \
            --agent-addr 127.0.0.1:$((P + 200 + i)) \
            --bootstrap --peers "$peers" "$@" >"$WORK/server-$i$suffix.log" 2>&1 &
        PIDS+=($!)
    done
}

# Prints the API address of the ready leader; fails after 30 s.
flotilla_leader() {
    local i st deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
        for i in 1 2 3; do
            st=$(curl -sf --max-time 1 "https://127.0.0.1:$((P + i))/v1/status" 2>/dev/null) || continue
            if grep -Eq '"state": *"leader"' <<<"$st" && grep -Eq '"ready": *true' <<<"$st"; then
                echo "127.0.0.1:$((P + i))"
                return 0
            fi
        done
        sleep 0.2
    done
    show_logs "$WORK"/server-*.log
    die "no ready Flotilla leader after 30 s"
}

# ---------------------------------------------------------------- etcd
etcd_install() {
    command -v etcd >/dev/null && return 0
    [ "$(id -u)" = 0 ] || die "--vs-etcd needs etcd: apt-get install etcd-server"
    echo "# installing etcd-server with apt-get" >&2
    { DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server ||
        { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server; }; } \
        >"$WORK/apt.log" 2>&1 || { show_logs "$WORK/apt.log"; die "installing etcd-server failed"; }
    command -v etcd >/dev/null || die "etcd-server installed no etcd binary"
}

etcd_start() {
    local i cluster=""
    for i in 1 2 3; do
        cluster+="${cluster:+,}e$i=http://127.0.0.1:$((P + 300 + i))"
        check_ports $((P + 200 + i)) $((P + 300 + i))
    done
    for i in 1 2 3; do
        etcd --name e$i --data-dir "$WORK/etcd-$i" \
            --listen-client-urls http://127.0.0.1:$((P + 200 + i)) \
            --advertise-client-urls http://127.0.0.1:$((P + 200 + i)) \
            --listen-peer-urls http://127.0.0.1:$((P + 300 + i)) \
            --initial-advertise-peer-urls http://127.0.0.1:$((P + 300 + i)) \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token flotilla-bench >"$WORK/etcd-$i.log" 2>&1 &
        PIDS+=($!)
    done
}

# Prints the client address of the leader: the member whose
# /v3/maintenance/status names itself as leader. Fails after 30 s.
etcd_leader() {
    local i st me lead deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
        for i in 1 2 3; do
            st=$(curl -sf --max-time 1 -X POST -d '{}' \
                "http://127.0.0.1:$((P + 200 + i))/v3/maintenance/status" 2>/dev/null) || continue
            me=$(grep -Eo '"member_id": *"[0-9]+"' <<<"$st" | grep -Eo '[0-9]+' || true)
            lead=$(grep -Eo '"leader": *"[0-9]+"' <<<"$st" | grep -Eo '[0-9]+' || true)
            if [ -n "$me" ] && [ "$me" = "$lead" ]; then
                echo "127.0.0.1:$((P + 200 + i))"
                return 0
            fi
        done
        sleep 0.2
    done
    show_logs "$WORK"/etcd-*.log
    die "no etcd leader after 30 s"
}

# ---------------------------------------------------------------- measuring
declare -A RATE

# measure SYSTEM TARGET LEADER_FN — one loadgen run per in-flight count,
# re-finding the leader before each so a change of leader shows as such.
measure() {
    local sys=$1 target=$2 leader_fn=$3 n addr out rc
    for n in $INFLIGHT; do
        addr=$($leader_fn)
        # In the background, so that a signal reaches the trap at once
        # rather than when this run ends.
        rc=0
        "$LOADGEN" --target "$target" --addr "$addr" --conns "$n" --duration "$DURATION" \
            --warmup "$WARMUP" --value-size "$VALUE_SIZE" --label "${sys}_w$n" \
            $([ "$target" = flotilla ] && echo --ca "$FLOTILLA_CACERT") \
            >"$WORK/loadgen.out" &
        LOADGEN_PID=$!
        wait $LOADGEN_PID || rc=$?
        LOADGEN_PID=
        out=$(cat "$WORK/loadgen.out")
        echo "$out"
        [ $rc -le 1 ] || die "loadgen failed (exit $rc)"
        RATE[${sys}_$n]=$(sed -n "s/^${sys}_w${n}_writes_per_sec: \([0-9.]*\) .*/\1/p" <<<"$out")
    done
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "# bench writes: $(git -C "$(dirname "$FLOTILLA_BIN")/.." describe --always --dirty 2>/dev/null ||
    echo unknown)"
echo "# conditions: value size $VALUE_SIZE bytes, in flight: $INFLIGHT, ${WARMUP} s warm-up" \
    "+ ${DURATION} s measured per count, keys bench-<conn>-<seq>, closed loop to the leader only"
echo "# machine: $(nproc) cores (${cpu:-unknown cpu}), $(free -g | awk '/^Mem:/ {print $2}') GiB," \
    "data on $(df -PT "$WORK" | awk 'NR == 2 {print $2}') ($WORK), clients and servers share the cores," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "# flotilla: three servers, Release build, raft assertions off, default settings"

# The management token of a fresh cluster (writes need one): loadgen sends
# $FLOTILLA_TOKEN.
flotilla_token() {
    local addr deadline=$((SECONDS + 30))
    export FLOTILLA_TOKEN="flt_bench$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    while [ $SECONDS -lt $deadline ]; do
        addr=$(flotilla_leader)
        if curl -sf --max-time 3 -X POST -H 'Content-Type: application/json' \
            -d "{\"secret\": \"$FLOTILLA_TOKEN\"}" "https://$addr/v1/acl/bootstrap" >/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    die "could not bootstrap the API token"
}

flotilla_start
flotilla_token
measure flotilla flotilla flotilla_leader
stop_pids

if [ "$PLAINTEXT" = 1 ]; then
    echo "# plaintext: the same three servers with --raft-plaintext (stock raft TCP transport" \
        "with TCP_NODELAY, no TLS; agents and API unchanged)"
    # The ports of the first cluster must be free again.
    for _ in $(seq 50); do
        port_free $((P + 101)) && port_free $((P + 102)) && port_free $((P + 103)) && break
        sleep 0.1
    done
    flotilla_start -plain --raft-plaintext
    flotilla_token
    measure plaintext flotilla flotilla_leader
    stop_pids
    for n in $INFLIGHT; do
        enc=${RATE[flotilla_$n]:-0}
        pla=${RATE[plaintext_$n]:-0}
        if awk -v p="$pla" 'BEGIN { exit !(p > 0) }'; then
            ratio=$(awk -v e="$enc" -v p="$pla" 'BEGIN { printf "%.2f", e / p }')
        else
            ratio=nan
        fi
        echo "encrypted_over_plaintext_w$n: $ratio x ($enc vs $pla writes/s)"
    done
    echo "# load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
fi

if [ "$VS_ETCD" = 1 ]; then
    etcd_install
    echo "# etcd: $(etcd --version 2>/dev/null | head -n 1 | sed 's/^etcd Version: //'), three members," \
        "default settings, JSON gateway POST /v3/kv/put, value base64-encoded on the wire"
    etcd_start
    measure etcd etcd etcd_leader
    stop_pids
    f=${RATE[flotilla_$LAST]:-0}
    e=${RATE[etcd_$LAST]:-0}
    echo "writes_per_sec_$LAST: $f writes/s"
    if awk -v e="$e" 'BEGIN { exit !(e > 0) }'; then
        echo "flotilla_over_etcd_$LAST: $(awk -v f="$f" -v e="$e" 'BEGIN { printf "%.2f", f / e }') x"
    else
        echo "flotilla_over_etcd_$LAST: nan x"
    fi
else
    echo "writes_per_sec_$LAST: ${RATE[flotilla_$LAST]:-0} writes/s"
fi
