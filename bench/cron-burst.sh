#!/usr/bin/env bash
# cron-burst — time until all of 10,000 cron jobs due in the same second have fired, and the API's latency meanwhile
#
# Run through bench/run, which builds the binaries and sets FLOTILLA_BIN.
# The measurement itself is bench/cron_burst.py (Debian's Python, standard
# library only); see its docstring for what each number means.
set -euo pipefail
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
    exec /usr/bin/python3 "$(dirname "$0")/cron_burst.py" --help
fi
: "${FLOTILLA_BIN:?run this through bench/run}"
exec /usr/bin/python3 "$(dirname "$0")/cron_burst.py" "$@"
