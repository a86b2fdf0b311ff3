#!/usr/bin/env bash
# Flotilla's one entry point for a fresh Debian/Ubuntu machine.
#
#   ./do dev      install dependencies, build, run a local three-server cluster
#   ./do test     install dependencies, build with -Werror, run the test suite
#   ./do build    install dependencies and build (into build/)
#   ./do deps     only install the Debian packages
#
# Environment: BUILD_DIR (default build), FLOTILLA_SKIP_DEPS=1 to skip apt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/build}

packages=(build-essential cmake pkg-config autoconf automake libtool
          libuv1-dev liblmdb-dev lmdb-utils libmsgpack-dev libsodium-dev libjansson-dev
          libhttp-parser-dev python3 procps ansible-core
          python3-croniter python3-nacl python3-msgpack faketime
          librsync-dev libarchive-dev rdiff
          iproute2 nftables e2fsprogs util-linux)

deps() {
    [ "${FLOTILLA_SKIP_DEPS:-0}" = 1 ] && return 0
    local missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

configure() {
    local werror=OFF
    [ "${CI:-}" = true ] || [ "${1:-}" = werror ] && werror=ON
    cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLOTILLA_WERROR=$werror >/dev/null
}

compile() {
    cmake --build "$build" -j"$(nproc)"
}

case "${1:-}" in
deps)
    deps ;;
build)
    deps; configure; compile ;;
dev)
    shift
    deps; configure; compile
    exec "$build/flotilla" dev "$@" ;;
test)
    shift
    deps; configure werror; compile
    cd "$build"
    exec ctest --output-on-failure --timeout 900 "$@" ;;
*)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2 ;;
esac
