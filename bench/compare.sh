#!/usr/bin/env bash
# compare — one benchmark on another revision and on this tree, alternating (ABBA), with means
#
# Run through bench/run, which builds this tree's Release binaries and sets
# FLOTILLA_BIN and LOADGEN. Checks REV out into a worktree outside the
# repository ($FLOTILLA_BENCH_BASE, default /var/tmp/flotilla-bench-base, one
# folder per revision, kept for the next comparison), builds it the same way,
# then runs bench/NAME.sh of each tree against its own binaries in the order
# base, this, this, base, once per round, so that a drift of the machine during the series weighs on both
# equally. Prints each run's headline (the benchmark's last "metric: value"
# line) as it goes, then the mean, lowest and highest of each side and the
# change of this tree's mean against the base's.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run compare --base REV --bench NAME [options] [-- BENCHMARK OPTIONS]
  --base REV     the revision to compare with (a commit, tag or branch of this repository)
  --bench NAME   the benchmark to run on both (writes, dispatch, locks, ...)
  --rounds N     rounds of four runs (base, this, this, base); default 2
  --metric NAME  compare this metric instead of the headline (a "NAME: value" line)
Options after -- go to the benchmark on both sides.
EOF
}

BASE=
BENCH=
ROUNDS=2
METRIC=
while [ $# -gt 0 ]; do
    case "$1" in
        --base) BASE=${2:?--base needs a revision}; shift ;;
        --bench) BENCH=${2:?--bench needs a name}; shift ;;
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift ;;
        --metric) METRIC=${2:?--metric needs a name}; shift ;;
        --) shift; break ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench/run compare: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[ -n "$BASE" ] && [ -n "$BENCH" ] || { usage >&2; exit 2; }
[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || { echo "bench/run compare: bad --rounds $ROUNDS (1..99)" >&2; exit 2; }
[[ "$BENCH" =~ ^[a-z0-9_-]+$ ]] && [ "$BENCH" != compare ] ||
    { echo "bench/run compare: bad --bench $BENCH" >&2; exit 2; }
[ -z "$METRIC" ] || [[ "$METRIC" =~ ^[a-z0-9_]+$ ]] ||
    { echo "bench/run compare: bad --metric $METRIC" >&2; exit 2; }
: "${FLOTILLA_BIN:?run this through bench/run}" "${LOADGEN:?run this through bench/run}"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -f "$REPO/bench/$BENCH.sh" ] || { echo "bench/run compare: no benchmark $BENCH here" >&2; exit 2; }
REV=$(git -C "$REPO" rev-parse --verify --quiet "$BASE^{commit}") ||
    { echo "bench/run compare: $BASE is not a revision of this repository" >&2; exit 2; }
BASES=${FLOTILLA_BENCH_BASE:-/var/tmp/flotilla-bench-base}
TREE=$BASES/${REV:0:12}

# ---------------------------------------------------------------- the base tree
if [ ! -d "$TREE" ]; then
    mkdir -p "$BASES"
    git -C "$REPO" worktree add --detach "$TREE" "$REV" >/dev/null 2>&1 ||
        { echo "bench/run compare: cannot check $REV out into $TREE" >&2; exit 1; }
fi
[ -f "$TREE/bench/$BENCH.sh" ] || { echo "bench/run compare: $BASE has no benchmark $BENCH" >&2; exit 2; }
log=$TREE/build-bench/bench-build.log
mkdir -p "$TREE/build-bench"
if ! {
    cmake -S "$TREE" -B "$TREE/build-bench" -DCMAKE_BUILD_TYPE=Release -DFLOTILLA_RAFT_ASSERT=OFF \
        -DFLOTILLA_TESTS=OFF -DFLOTILLA_TEST_HOOKS=ON &&
        cmake --build "$TREE/build-bench" -j2
} >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "bench/run compare: building $BASE in $TREE failed (full log: $log)" >&2
    exit 1
fi

# ---------------------------------------------------------------- the runs
# run SIDE — one run of the benchmark on that side; prints its value.
run() {
    local side=$1 dir bin gen out line
    shift
    if [ "$side" = base ]; then
        dir=$TREE bin=$TREE/build-bench/flotilla gen=$TREE/build-bench/bench/loadgen
    else
        dir=$REPO bin=$FLOTILLA_BIN gen=$LOADGEN
    fi
    out=$(cd "$dir" && FLOTILLA_BIN=$bin LOADGEN=$gen bash "bench/$BENCH.sh" "$@" 2>&1) ||
        { echo "$out" | tail -n 15 >&2; echo "bench/run compare: $BENCH failed on $side" >&2; return 1; }
    if [ -n "$METRIC" ]; then
        line=$(grep -E "^$METRIC: " <<<"$out" | tail -n 1)
    else
        line=$(grep -v '^#' <<<"$out" | grep -E '^[a-z0-9_]+: ' | tail -n 1)
    fi
    [ -n "$line" ] || { echo "bench/run compare: no ${METRIC:-headline} in $BENCH's output" >&2; return 1; }
    echo "$line"
}

echo "# compare: bench/$BENCH.sh $*, base $BASE (${REV:0:12}) against this tree ($(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD || echo ', with changes')), $ROUNDS round(s) of base, this, this, base"
echo "# $(nproc) cores, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -a B=() T=()
name=
for ((r = 1; r <= ROUNDS; r++)); do
    for side in base this this base; do
        line=$(run "$side" "$@")
        name=${line%%:*}
        value=$(awk '{print $2}' <<<"$line")
        [[ "$value" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bench/run compare: $line is not a number" >&2; exit 1; }
        echo "# round $r $side: $line"
        if [ "$side" = base ]; then B+=("$value"); else T+=("$value"); fi
    done
done

stats() { printf '%s\n' "$@" | awk '{s += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1}
    END {printf "%.2f %.2f %.2f", s / NR, lo, hi}'; }
read -r bm blo bhi <<<"$(stats "${B[@]}")"
read -r tm tlo thi <<<"$(stats "${T[@]}")"
echo "compare_${name}_base_mean: $bm (lowest $blo, highest $bhi, ${#B[@]} runs)"
echo "compare_${name}_this_mean: $tm (lowest $tlo, highest $thi, ${#T[@]} runs)"
awk -v b="$bm" -v t="$tm" -v n="$name" 'BEGIN {printf "compare_%s_change: %+.1f %%\n", n, (t - b) * 100 / b}'
