# Sourced by the benchmark scripts: bench_token ADDR DIR bootstraps the API
# token of a fresh cluster through ADDR (docs/ACL.md), exports FLOTILLA_TOKEN
# (lockgen and loadgen send it) and adds the token header to DIR/.curlrc
# (bench/pki.sh made it: every curl of the script sends it). Returns 1 after
# 30 s.
bench_token() {
    local addr=$1 dir=$2 deadline=$((SECONDS + 30))
    export FLOTILLA_TOKEN="flt_bench$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    printf 'header = "X-Flotilla-Token: %s"\n' "$FLOTILLA_TOKEN" >>"$dir/.curlrc"
    export CURL_HOME=$dir
    while [ $SECONDS -lt $deadline ]; do
        if curl -sf --max-time 3 -X POST -H 'Content-Type: application/json' \
            -d "{\"secret\": \"$FLOTILLA_TOKEN\"}" "https://$addr/v1/acl/bootstrap" >/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}
