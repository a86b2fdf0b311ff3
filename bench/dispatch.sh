#!/usr/bin/env bash
# dispatch — end-to-end noop units/s with 1,000 agent slots and the leader's RSS for a 100,000-unit task
#
# Run through bench/run, which builds the binaries and sets FLOTILLA_BIN.
# Starts a fresh three-server Flotilla cluster on loopback (servers with
# --no-agent, so only the standalone agents run units) and --agents
# standalone agents of --cap slots each, waits until every agent is
# connected to the leader, then submits noop tasks of one host per unit to
# the leader: an optional warm-up task, then the measured one. A unit counts
# once it went the whole way: submitted, assigned (committed), run as a noop
# on an agent, its result committed. The rate is the task's units over its
# leader-stamped life (finished_ms - created_ms); the leader's peak RSS is
# read from /proc after the measured task, and the CPU time of every process
# over the measured task shows where the time went.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run dispatch [options]
  --units N         units (= hosts, one host per unit) of the measured task (default 100000)
  --warmup-units N  units of a warm-up task run first and reported apart; 0 for none
                    (default 20000)
  --agents N        standalone agents (default 10)
  --cap C           slots (units run at once) per agent (default 100)
  --timeout S       give up on a task after S seconds (default 600)
  --agent-dir DIR   put the agents' data directories (their result spools) in a temporary
                    directory under DIR, e.g. /dev/shm, rather than beside the servers' data
  --base-port P     Flotilla API ports P+1..P+3, Raft P+101.., agents P+201.. (default 18600)
  --keep            keep the data directories and logs (path printed at the end)
EOF
}

UNITS=100000
WARMUP_UNITS=20000
AGENTS=10
CAP=100
TIMEOUT=600
P=18600
KEEP=0
AGENT_DIR=
while [ $# -gt 0 ]; do
    case "$1" in
        --units) UNITS=${2:?--units needs a value}; shift ;;
        --warmup-units) WARMUP_UNITS=${2:?--warmup-units needs a value}; shift ;;
        --agents) AGENTS=${2:?--agents needs a value}; shift ;;
        --cap) CAP=${2:?--cap needs a value}; shift ;;
        --timeout) TIMEOUT=${2:?--timeout needs a value}; shift ;;
        --base-port) P=${2:?--base-port needs a value}; shift ;;
        --agent-dir) AGENT_DIR=${2:?--agent-dir needs a value}; shift ;;
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench/run dispatch: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ "$UNITS" =~ ^[1-9][0-9]*$ ]] && [ "$UNITS" -le 200000 ] ||
    { echo "bench/run dispatch: bad --units $UNITS (1..200000)" >&2; exit 2; }
[[ "$WARMUP_UNITS" =~ ^[0-9]+$ ]] && [ "$WARMUP_UNITS" -le 200000 ] ||
    { echo "bench/run dispatch: bad --warmup-units $WARMUP_UNITS (0..200000)" >&2; exit 2; }
[[ "$AGENTS" =~ ^[1-9][0-9]*$ ]] && [ "$AGENTS" -le 500 ] ||
    { echo "bench/run dispatch: bad --agents $AGENTS (1..500)" >&2; exit 2; }
[[ "$CAP" =~ ^[1-9][0-9]*$ ]] && [ "$CAP" -le 100000 ] ||
    { echo "bench/run dispatch: bad --cap $CAP (1..100000)" >&2; exit 2; }
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] ||
    { echo "bench/run dispatch: bad --timeout $TIMEOUT" >&2; exit 2; }
[ -z "$AGENT_DIR" ] || [ -d "$AGENT_DIR" ] ||
    { echo "bench/run dispatch: --agent-dir $AGENT_DIR is not a directory" >&2; exit 2; }
if [[ ! "$P" =~ ^[0-9]{4,5}$ ]] || [ "$P" -lt 1024 ] || [ "$P" -gt 65000 ]; then
    echo "bench/run dispatch: bad --base-port $P (1024..65000)" >&2
    exit 2
fi
: "${FLOTILLA_BIN:?run this through bench/run}"

# ---------------------------------------------------------------- cleanup
# Every server and agent we start is recorded in PIDS (SERVER_PIDS[i] and
# AGENT_PIDS name them for /proc); the trap ends them (TERM, then KILL after
# 5 s) and removes the data directories, on any exit or signal.
PIDS=()
declare -A SERVER_PIDS
AGENT_PIDS=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-bench.XXXXXX")
# Every link is encrypted with the cluster key (docs/SECURITY.md).
"$FLOTILLA_BIN" keygen --out "$WORK/cluster.key" >/dev/null
export FLOTILLA_KEY_FILE="$WORK/cluster.key"

# The cluster CA and the certificates of every process (bench/pki.sh).
source "$(dirname "${BASH_SOURCE[0]}")/pki.sh"
bench_pki "$WORK"
AGENT_WORK=$WORK
if [ -n "$AGENT_DIR" ]; then
    AGENT_WORK=$(mktemp -d "$AGENT_DIR/flotilla-bench-agents.XXXXXX") || {
        rm -rf "$WORK"
        exit 1
    }
fi

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
    stop_pids
    if [ "$KEEP" = 1 ]; then
        echo "# kept $WORK${AGENT_DIR:+ and $AGENT_WORK}" >&2
    else
        rm -rf "$WORK" "$AGENT_WORK"
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

die() {
    echo "bench/run dispatch: $*" >&2
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

# jnum KEY <<<JSON — the first integer value of "KEY" in compact or spaced JSON
# (0 if absent); jstr KEY <<<JSON — the first string value.
jnum() {
    local v
    v=$(grep -Eo "\"$1\": *-?[0-9]+" | head -n 1 | grep -Eo -- '-?[0-9]+$' || true)
    echo "${v:-0}"
}
jstr() {
    grep -Eo "\"$1\": *\"[^\"]*\"" | head -n 1 | sed -E 's/.*: *"([^"]*)"$/\1/' || true
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# ---------------------------------------------------------------- Flotilla
flotilla_start() {
    local i peers="1=127.0.0.1:$((P + 101)),2=127.0.0.1:$((P + 102)),3=127.0.0.1:$((P + 103))"
    for i in 1 2 3; do
        check_ports $((P + i)) $((P + 100 + i)) $((P + 200 + i))
    done
    for i in 1 2 3; do
        "$FLOTILLA_BIN" server --id $i --data "$WORK/server-$i" $(bench_cert server server-$i) \
            --raft-addr 127.0.0.1:$((P + 100 + i)) --api-addr 127.0.0.1:$((P + i)) \
            --agent-addr 127.0.0.1:$((P + 200 + i)) --no-agent \
            --bootstrap --peers "$peers" --max-body 32M >"$WORK/server-$i.log" 2>&1 &
        PIDS+=($!)
        SERVER_PIDS[$i]=$!
    done
}

# Sets LEADER (API address) and LEADER_ID to the ready leader; fails after 30 s.
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

agents_start() {
    local i join="127.0.0.1:$((P + 201)),127.0.0.1:$((P + 202)),127.0.0.1:$((P + 203))"
    for ((i = 1; i <= AGENTS; i++)); do
        "$FLOTILLA_BIN" agent --join "$join" --name "a$i" --cap "$CAP" $(bench_cert agent "a$i") \
            --data "$AGENT_WORK/agent-$i" >"$WORK/agent-$i.log" 2>&1 &
        PIDS+=($!)
        AGENT_PIDS+=($!)
    done
}

# Waits until the leader lists every agent as connected; fails after 30 s.
agents_connected() {
    local nodes n=0 deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
        nodes=$(curl -sf --max-time 2 "https://$LEADER/v1/nodes" 2>/dev/null) || nodes=
        n=$(grep -Eo '"connected": *true' <<<"$nodes" | wc -l || true)
        [ "$n" -ge "$AGENTS" ] && return 0
        sleep 0.2
    done
    show_logs "$WORK"/server-$LEADER_ID.log "$WORK"/agent-1.log
    die "only $n of $AGENTS agents connected after 30 s"
}

# ---------------------------------------------------------------- measuring
# cpu_ticks PID... — their user+system CPU time in clock ticks, summed.
cpu_ticks() {
    local pid t=0 f
    for pid in "$@"; do
        f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        f=${f##*) }
        set -- $f
        t=$((t + ${12} + ${13}))
    done
    echo "$t"
}

# busy_ticks — the whole machine's non-idle CPU time in clock ticks (/proc/stat).
busy_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# fs_of DIR — its filesystem type, and for ext4 whether it has a journal (an
# ext4 without one reads past every inode deleted in the last minutes when it
# allocates one, which the agents' spool files do once per unit).
fs_of() {
    local type dev
    type=$(df -PT "$1" | awk 'NR == 2 {print $2}')
    dev=$(findmnt -no SOURCE -T "$1" 2>/dev/null || true)
    dev=${dev##*/}
    if [ "$type" = ext4 ] && [ -n "$dev" ] && [ -r "/sys/fs/ext4/$dev/journal_task" ]; then
        if [ "$(cat "/sys/fs/ext4/$dev/journal_task")" = "<none>" ]; then
            type="ext4 without a journal"
        else
            type="ext4 with a journal"
        fi
    fi
    echo "$type"
}

# status_kb PID FIELD — VmHWM, VmRSS... of a process, in kB.
status_kb() {
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

mb() {
    awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'
}

# run_task LABEL UNITS — submits a noop task of UNITS hosts, one per unit, to
# the leader, polls it every 50 ms until it finishes and prints its figures
# as LABEL_* metrics; sets RATE (units/s) and ERRORS (hosts not ok).
run_task() {
    local label=$1 n=$2 body=$WORK/task-$1.json t0 t1 code submit_s id task st
    local created finished ok hosts errors wall polls=0 trace=$WORK/progress-$1
    local leader_cpu0 fol_cpu0 agents_cpu0 busy0 leader_cpu1 fol_cpu1 agents_cpu1 busy1 hz
    local followers=() i
    for i in 1 2 3; do
        [ "$i" = "$LEADER_ID" ] || followers+=("${SERVER_PIDS[$i]}")
    done
    awk -v n="$n" -v p="$label" 'BEGIN {
        printf "{\"name\": \"bench-%s\", \"unit_size\": 1, \"noop\": true, \"hosts\": [", p
        for (i = 1; i <= n; i++) printf "%s\"%s-h%06d\"", (i > 1 ? "," : ""), p, i
        printf "]}\n"
    }' >"$body"

    leader_cpu0=$(cpu_ticks "${SERVER_PIDS[$LEADER_ID]}")
    fol_cpu0=$(cpu_ticks "${followers[@]}")
    agents_cpu0=$(cpu_ticks "${AGENT_PIDS[@]}")
    busy0=$(busy_ticks)
    t0=$(now_ms)
    code=$(curl -s --max-time 120 -o "$WORK/submit-$label.out" -w '%{http_code} %{time_total}' \
        -H 'Content-Type: application/json' --data-binary @"$body" \
        "https://$LEADER/v1/tasks") || code="000 0"
    submit_s=${code#* }
    code=${code%% *}
    id=$(jstr id <"$WORK/submit-$label.out")
    if [ "$code" != 200 ] || [ -z "$id" ]; then
        cat "$WORK/submit-$label.out" >&2 2>/dev/null || true
        show_logs "$WORK"/server-$LEADER_ID.log
        die "submitting the $label task ($n units) failed: HTTP $code"
    fi
    while :; do
        task=$(curl -sf --max-time 5 "https://$LEADER/v1/tasks/$id" 2>/dev/null) || task=
        st=$(jstr state <<<"$task")
        polls=$((polls + 1))
        [ -z "$task" ] || echo "$(($(now_ms) - t0)) $(jnum done <<<"$task")" >>"$trace"
        case "$st" in done | failed | cancelled) break ;; esac
        if [ $(($(now_ms) - t0)) -gt $((TIMEOUT * 1000)) ]; then
            echo "# $label task $id after ${TIMEOUT} s: $task" >&2
            curl -sf --max-time 5 "https://$LEADER/v1/dispatch" >&2 2>/dev/null || true
            show_logs "$WORK"/server-$LEADER_ID.log "$WORK"/agent-1.log
            die "the $label task did not finish within ${TIMEOUT} s (state \"${st:-unknown}\")"
        fi
        sleep 0.05
    done
    t1=$(now_ms)
    leader_cpu1=$(cpu_ticks "${SERVER_PIDS[$LEADER_ID]}")
    fol_cpu1=$(cpu_ticks "${followers[@]}")
    agents_cpu1=$(cpu_ticks "${AGENT_PIDS[@]}")
    busy1=$(busy_ticks)
    wall=$((t1 - t0))
    hz=$(getconf CLK_TCK)

    created=$(jnum created_ms <<<"$task")
    finished=$(jnum finished_ms <<<"$task")
    hosts=$(jnum hosts <<<"$task")
    ok=$(jnum ok <<<"$task")
    errors=$((hosts - ok))
    RATE=$(awk -v n="$n" -v ms=$((finished - created)) \
        'BEGIN { if (ms > 0) printf "%.0f", n * 1000 / ms; else print "nan" }')
    ERRORS=$errors
    echo "# $label task $id: state $st, hosts by status" \
        "$(grep -Eo '"hosts":\{[^}]*\}' <<<"$task" | sed 's/^"hosts"://'), units" \
        "$(grep -Eo '"units":\{[^}]*\}' <<<"$task" | sed 's/^"units"://'), stale results" \
        "$(jnum stale_results <<<"$task"), $polls polls"
    # The rate over each fifth of the units, from the polls' "done" counts:
    # a rate that falls as the task goes on shows a cost that grows with it.
    echo "# $label units/s by fifth of the units (from the polls): $(awk -v n="$n" '
        { t[NR] = $1; d[NR] = $2 }
        END {
            j = 1; pt = 0; pd = 0
            for (k = 1; k <= 5; k++) {
                while (j < NR && d[j] < n * k / 5) j++
                printf "%s%s", (k > 1 ? " " : ""),
                    (t[j] > pt ? sprintf("%.0f", (d[j] - pd) * 1000 / (t[j] - pt)) : "-")
                pt = t[j]; pd = d[j]
            }
        }' "$trace")"
    echo "${label}_submit_request: $(awk -v s="$submit_s" 'BEGIN { printf "%.3f", s }') s"
    echo "${label}_task_ms: $((finished - created)) ms"
    echo "${label}_wall_ms: $wall ms"
    echo "${label}_cpu_leader: $(awk -v t=$((leader_cpu1 - leader_cpu0)) -v hz="$hz" -v ms="$wall" \
        'BEGIN { printf "%.2f", t / hz * 1000 / ms }') cores"
    echo "${label}_cpu_followers: $(awk -v t=$((fol_cpu1 - fol_cpu0)) -v hz="$hz" -v ms="$wall" \
        'BEGIN { printf "%.2f", t / hz * 1000 / ms }') cores"
    echo "${label}_cpu_agents: $(awk -v t=$((agents_cpu1 - agents_cpu0)) -v hz="$hz" -v ms="$wall" \
        'BEGIN { printf "%.2f", t / hz * 1000 / ms }') cores"
    echo "${label}_cpu_machine: $(awk -v t=$((busy1 - busy0)) -v hz="$hz" -v ms="$wall" \
        'BEGIN { printf "%.2f", t / hz * 1000 / ms }') cores"
    echo "${label}_errors: $errors hosts"
    echo "${label}_units_per_sec: $RATE units/s"
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "# bench dispatch: $(git -C "$(dirname "$FLOTILLA_BIN")/.." describe --always --dirty 2>/dev/null ||
    echo unknown)"
echo "# conditions: noop tasks of one host per unit, warm-up $WARMUP_UNITS units then $UNITS" \
    "measured, $AGENTS agents x cap $CAP = $((AGENTS * CAP)) slots, task submitted to the leader" \
    "in one POST and polled every 50 ms with curl"
echo "# machine: $(nproc) cores (${cpu:-unknown cpu}), $(free -g | awk '/^Mem:/ {print $2}') GiB," \
    "servers' data on $(fs_of "$WORK") ($WORK), agents' data (result spools) on" \
    "$(fs_of "$AGENT_WORK") ($AGENT_WORK), servers, agents and client share the cores," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "# flotilla: three servers with --no-agent --max-body 32M, otherwise default settings," \
    "Release build, raft assertions off; units/s = units / (finished_ms - created_ms), both" \
    "stamped by the leader; cpu_* = CPU time of those processes (cpu_machine: of the whole" \
    "machine, other work included) over the task's wall time, in cores"

flotilla_start
flotilla_leader
# shellcheck source=bench/token.sh
. "$(dirname "${BASH_SOURCE[0]}")/token.sh"
bench_token "$LEADER" "$WORK" || die "could not bootstrap the API token"
agents_start
agents_connected
echo "# leader: server $LEADER_ID ($LEADER), $AGENTS agents connected"

ALL_ERRORS=0
if [ "$WARMUP_UNITS" -gt 0 ]; then
    run_task warmup "$WARMUP_UNITS"
    ALL_ERRORS=$ERRORS
fi
run_task dispatch "$UNITS"
MAIN_RATE=$RATE
ALL_ERRORS=$((ALL_ERRORS + ERRORS))

st=$(curl -sf --max-time 5 "https://$LEADER/v1/status" 2>/dev/null) || st=
grep -Eq '"state": *"leader"' <<<"$st" ||
    echo "# server $LEADER_ID is no longer the leader: the counters below are its own"
st=$(curl -sf --max-time 5 "https://$LEADER/v1/dispatch" 2>/dev/null) || st=
echo "# GET /v1/dispatch: $st"
for k in units_assigned assignments_refused runs_sent results_committed stale_results \
    units_taken_back rounds; do
    echo "dispatch_$k: $(jnum $k <<<"$st")"
done
echo "leader_vmhwm: $(mb "$(status_kb "${SERVER_PIDS[$LEADER_ID]}" VmHWM)") MB"
echo "leader_vmrss: $(mb "$(status_kb "${SERVER_PIDS[$LEADER_ID]}" VmRSS)") MB"
for i in 1 2 3; do
    [ "$i" = "$LEADER_ID" ] && continue
    echo "follower_${i}_vmhwm: $(mb "$(status_kb "${SERVER_PIDS[$i]}" VmHWM)") MB"
done
echo "agent_1_vmhwm: $(mb "$(status_kb "${AGENT_PIDS[0]}" VmHWM)") MB"
for i in 1 2 3; do
    kill -0 "${SERVER_PIDS[$i]}" 2>/dev/null || echo "# server $i is not running any more"
done
for i in "${!AGENT_PIDS[@]}"; do
    kill -0 "${AGENT_PIDS[$i]}" 2>/dev/null || echo "# agent a$((i + 1)) is not running any more"
done
echo "errors: $ALL_ERRORS hosts"
stop_pids
echo "units_per_sec: $MAIN_RATE units/s"
