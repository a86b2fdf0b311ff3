# Sourced by the benchmark scripts: the cluster CA and certificates every
# Flotilla process of a run links with (docs/SECURITY.md, "Identities").
#
#   bench_pki DIR            make DIR/pki (a CA of cluster "bench"), export
#                            FLOTILLA_CACERT and point curl at it (DIR/.curlrc)
#   bench_cert ROLE NAME     print "--cert F --cert-key K" of NAME's certificate,
#                            issued on first use (a server's or agent's name is
#                            the one in its certificate)

bench_pki() {
    BENCH_PKI=$1/pki
    "$FLOTILLA_BIN" ca init --dir "$BENCH_PKI" --cluster bench >/dev/null
    export FLOTILLA_CACERT=$BENCH_PKI/ca.pem
    # The API is HTTPS: every curl of the script trusts the run's CA.
    printf 'cacert = "%s"\n' "$FLOTILLA_CACERT" >"$1/.curlrc"
    export CURL_HOME=$1
}

bench_cert() {
    [ -f "$BENCH_PKI/$2.pem" ] ||
        "$FLOTILLA_BIN" cert issue --ca-dir "$BENCH_PKI" --role "$1" --name "$2" \
            --san DNS:localhost,IP:127.0.0.1 --out "$BENCH_PKI/$2" >/dev/null
    echo --cert "$BENCH_PKI/$2.pem" --cert-key "$BENCH_PKI/$2.key"
}
