#!/usr/bin/env bash
# deploy — fast deploy: N supervised processes switched to a new build, time from deploy to all healthy
#
# Run through bench/run, which builds the Release binary and sets
# FLOTILLA_BIN. Starts one Flotilla server on loopback (the package store and
# blob link) and one agent (--via cluster, the default), pushes two builds of an application (a tar with bin/worker, a
# shell script that execs `sleep`, and --payload MB of data, 1% of which
# differs between the builds), starts `flotilla supervise` with --workers N
# running v1, then times `flotilla deploy web@2 --to node:bench --wait` — the
# rollout through the leader and the agent, whose deploy executor runs
# deploy-target (with --via target, `flotilla deploy-target web@2` alone) —
# acquire by delta,
# verify, unpack, switch, supervise's rolling reload in batches of --batch
# workers (each counts as back after --ready), health check — from its start
# to its exit. The health check asks supervise for its status and requires
# every worker running v2. Reported: the deploy's total and each step's time,
# and the bytes over the link. Repeat with --workers 4000 for the large case.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run deploy [options]
  --workers N     supervised processes (default 1000)
  --batch B       workers restarted at a time by the reload (default N/10)
  --ready D       a restarted worker counts as back after D (default 100ms)
  --payload MB    data in the package besides the worker (default 20)
  --port P        base port (default 27400; uses P+1, P+101, P+201, P+301)
  --via V         cluster: time `flotilla deploy` through the leader and an agent (default);
                  target: time `flotilla deploy-target` on its own
EOF
}

WORKERS=1000
BATCH=
READY=100ms
PAYLOAD=20
P=27400
VIA=cluster
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) WORKERS=${2:?}; shift ;;
        --batch) BATCH=${2:?}; shift ;;
        --ready) READY=${2:?}; shift ;;
        --payload) PAYLOAD=${2:?}; shift ;;
        --port) P=${2:?}; shift ;;
        --via) VIA=${2:?}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench/run deploy: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] && [ "$WORKERS" -le 20000 ] ||
    { echo "bench/run deploy: bad --workers $WORKERS (1..20000)" >&2; exit 2; }
[ -n "$BATCH" ] || BATCH=$(((WORKERS + 9) / 10))
[[ "$BATCH" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run deploy: bad --batch $BATCH" >&2; exit 2; }
[ "$VIA" = cluster ] || [ "$VIA" = target ] ||
    { echo "bench/run deploy: --via takes cluster or target" >&2; exit 2; }
[[ "$PAYLOAD" =~ ^[0-9]+$ ]] || { echo "bench/run deploy: bad --payload $PAYLOAD" >&2; exit 2; }
: "${FLOTILLA_BIN:?run this through bench/run}"
PY=/usr/bin/python3
source "$(dirname "${BASH_SOURCE[0]}")/token.sh"

# Each worker holds two pipes in supervise (stdout, stderr).
need=$((WORKERS * 3 + 256))
if [ "$(ulimit -n)" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-bench-deploy.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
die() { echo "bench/run deploy: $*" >&2; exit 1; }

"$FLOTILLA_BIN" keygen --out "$WORK/cluster.key" >/dev/null
export FLOTILLA_KEY_FILE=$WORK/cluster.key FLOTILLA_ADDR=127.0.0.1:$((P + 1))

# The cluster CA and the certificates of every process (bench/pki.sh).
source "$(dirname "${BASH_SOURCE[0]}")/pki.sh"
bench_pki "$WORK"
# deploy-target and package fetch link as a client.
export FLOTILLA_CERT=$BENCH_PKI/client.pem FLOTILLA_CERT_KEY=$BENCH_PKI/client.key
bench_cert client client >/dev/null
"$FLOTILLA_BIN" server --id 1 --data "$WORK/server" --raft-addr 127.0.0.1:$((P + 101)) \
    --api-addr 127.0.0.1:$((P + 1)) --agent-addr 127.0.0.1:$((P + 201)) \
    --blob-addr 127.0.0.1:$((P + 301)) --no-agent --key "$WORK/cluster.key" $(bench_cert server server-1) \
    --bootstrap --peers "1=127.0.0.1:$((P + 101))" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
bench_token "127.0.0.1:$((P + 1))" "$WORK" || { tail -20 "$WORK/server.log" >&2; die "no server"; }

# Two builds: the same worker, 1% of the payload changed.
"$PY" - "$WORK" "$PAYLOAD" <<'EOF'
import io, os, random, sys, tarfile
work, mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(4000)
data = bytearray(rnd.randbytes(mb * 1000 * 1000))
worker = b"#!/bin/sh\nexec sleep 1000000\n"
for ver in ("1", "2"):
    if ver == "2" and data:
        n = max(1, len(data) // 100 // 20)
        for _ in range(20):
            at = rnd.randrange(0, len(data) - n)
            data[at:at + n] = rnd.randbytes(n)
    with tarfile.open(os.path.join(work, "web-%s.tar" % ver), "w") as t:
        for name, body, mode in (("bin/worker", worker, 0o755), ("VERSION", ver.encode(), 0o644),
                                 ("data.bin", bytes(data), 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(body), mode, 1700000000
            t.addfile(info, io.BytesIO(body))
EOF
for v in 1 2; do
    "$FLOTILLA_BIN" package push "$WORK/web-$v.tar" --name web --version $v >/dev/null 2>&1 ||
        die "push v$v failed"
done

ROOT=$WORK/apps/web
mkdir -p "$ROOT"
BLOB=127.0.0.1:$((P + 301))
if [ "$VIA" = cluster ]; then
    "$FLOTILLA_BIN" agent --join 127.0.0.1:$((P + 201)) --name bench --cap 1 --data "$WORK/agent" \
        $(bench_cert agent bench) --apps "$WORK/apps" >"$WORK/agent.log" 2>&1 &
    PIDS+=($!)
    for i in $(seq 100); do # until the agent has registered
        "$FLOTILLA_BIN" node list --json 2>/dev/null | grep -q '"bench"' && break
        sleep 0.1
    done
    "$FLOTILLA_BIN" deploy web@1 --to node:bench --wait >"$WORK/deploy1.out" 2>&1 || {
        cat "$WORK/deploy1.out" "$WORK/agent.log" >&2
        die "deploying v1 failed"
    }
else
    "$FLOTILLA_BIN" deploy-target web@1 --app web --root "$ROOT" --from "$BLOB" >/dev/null ||
        die "deploying v1 failed"
fi
"$FLOTILLA_BIN" supervise --app web --root "$ROOT" --workers "$WORKERS" --reload-batch "$BATCH" \
    --ready "$READY" --stop-grace 5s -- ./bin/worker >"$WORK/supervise.out" 2>&1 &
PIDS+=($!)
SUP=$!

# All N running v1 before the clock starts.
status() {
    "$PY" - "$ROOT/supervise.sock" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(60)
s.connect(sys.argv[1])
s.sendall(b"status\n")
buf = b""
while not buf.endswith(b"\n"):
    b = s.recv(1 << 20)
    if not b:
        break
    buf += b
st = json.loads(buf)
counts = {}
for w in st["workers"]:
    k = "%s/%s" % (w["release"], w["state"])
    counts[k] = counts.get(k, 0) + 1
print(" ".join("%s=%d" % kv for kv in sorted(counts.items())))
EOF
}
deadline=$((SECONDS + 300))
until [ -S "$ROOT/supervise.sock" ] && [ "$(status 2>/dev/null)" = "1/running=$WORKERS" ]; do
    [ $SECONDS -lt $deadline ] || die "the $WORKERS workers did not all start on v1: $(status 2>&1)"
    kill -0 $SUP 2>/dev/null || { tail -5 "$WORK/supervise.out" >&2; die "supervise exited"; }
    sleep 0.5
done
procs=$(pgrep -c -P "$SUP" || true)

HEALTH="$PY -c \"
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect('$ROOT/supervise.sock')
s.sendall(b'status\\\\n'); buf = b''
while not buf.endswith(b'\\\\n'): buf += s.recv(1 << 20)
ws = json.loads(buf)['workers']
sys.exit(0 if all(w['release'] == '2' and w['state'] == 'running' for w in ws) else 1)
\""
t0=$(date +%s%N)
if [ "$VIA" = cluster ]; then
    "$FLOTILLA_BIN" deploy web@2 --to node:bench --health "$HEALTH" --health-timeout 120s \
        --wait --json >"$WORK/rollout.json" 2>"$WORK/rollout.err" || {
        cat "$WORK/rollout.json" "$WORK/rollout.err" "$WORK/agent.log" >&2
        die "deploying v2 failed"
    }
    t1=$(date +%s%N)
    "$PY" -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["target_list"][0]))' \
        "$WORK/rollout.json" >"$WORK/deploy.json"
else
    "$FLOTILLA_BIN" deploy-target web@2 --app web --root "$ROOT" --from "$BLOB" --json \
        --health "$HEALTH" --health-timeout 120s >"$WORK/deploy.json" || {
        cat "$WORK/deploy.json" >&2
        die "deploying v2 failed"
    }
    t1=$(date +%s%N)
fi
after=$(status)
[ "$after" = "2/running=$WORKERS" ] || die "after the deploy: $after"

echo "# $(nproc) cores; one server (package store, blob link), $([ "$VIA" = cluster ] && echo "one agent (flotilla deploy --to node:bench)" || echo "flotilla deploy-target") and supervise on this machine;"
echo "# $WORKERS workers (bin/worker: sh exec sleep), reload batch $BATCH, ready after $READY;"
echo "# package $(stat -c %s "$WORK/web-2.tar") bytes, 1% of its payload changed from v1"
echo "# worker processes under supervise before the deploy: $procs; after: $after"
"$PY" - "$WORK/deploy.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
for s in r["steps"]:
    print("step_%s_ms: %d" % (s["step"].replace("-", "_"), s["ms"]))
a = r["acquire"]
print("acquire_method: %s" % a["method"])
moved = a["signature_bytes"] + a["bytes_received"]
print("bytes_over_link: %d bytes (%.2f%% of the package)" % (moved, 100.0 * moved / a["size"]))
EOF
echo "deploy_to_all_healthy: $(((t1 - t0) / 1000000)) ms ($WORKERS processes, via $VIA)"
