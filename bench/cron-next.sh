#!/usr/bin/env bash
# cron-next — the cost of one next-fire-time computation (cron_next) per expression and zone
#
# Run through bench/run, which builds bench/cronnext in the Release tree.
# Each of six expressions (every minute, every 5 minutes, workdays 9-17,
# 02:30 nightly, every 10 s with six fields, 29 February) is chained through
# --calls fire times (a hundredth of that for 29 February) in UTC,
# Europe/Berlin and America/New_York, from 2026-11-22; the leader calls
# cron_next once per fire of every job, so this bounds its cron clock.
set -euo pipefail
CALLS=200000
while [ $# -gt 0 ]; do
    case "$1" in
        --calls) CALLS=${2:?--calls needs a value}; shift ;;
        -h | --help) echo "usage: bench/run cron-next [--calls N]"; exit 0 ;;
        *) echo "bench/run cron-next: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[[ "$CALLS" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run cron-next: bad --calls $CALLS" >&2; exit 2; }
: "${LOADGEN:?run this through bench/run}"
echo "# bench cron-next: $(git -C "$(dirname "$0")/.." describe --always --dirty 2>/dev/null || echo unknown)"
echo "# machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "# $CALLS chained calls per expression and zone, one thread, Release build"
exec "$(dirname "$LOADGEN")/cronnext" "$CALLS"
