#!/usr/bin/env bash
# Flotilla's one entry point for a fresh Debian/Ubuntu machine.
#
#   ./do dev      install dependencies, build a production binary (into
#                 build-dev/, no tests), run a local three-server cluster
#   ./do test     install dependencies, check the layers and the formatting,
#                 build with -Werror,
#                 run the test suite, then the suite again under ASan+UBSan
#   ./do build    install dependencies and build the test build (into build/)
#   ./do lint     check the includes against the layers (tools/check-layers)
#                 and the formatting against .clang-format (tools/check-format)
#   ./do deps     only install the Debian packages
#
# Tests run twice as many at a time as there are cores, the longest first (the
# chaos run among them; tests/CMakeLists.txt gives ctest their COST): the
# integration tests mostly wait on real processes, elections and timers.
# build/ and build-asan/ are test builds (-DFLOTILLA_TEST_HOOKS=ON: the noop
# and sleep executors and --raft-plaintext, which the suite uses; a test
# checks that flotilla-prod, the same build without them, refuses them).
# Environment: BUILD_DIR (default build), FLOTILLA_SKIP_DEPS=1 to skip apt,
# FLOTILLA_SKIP_SANITIZE=1 to skip the second run under ASan+UBSan (CI runs it),
# FLOTILLA_TEST_JOBS to run another number of tests at a time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/build}

test_jobs=${FLOTILLA_TEST_JOBS:-$(($(nproc) * 2))}

packages=(build-essential cmake pkg-config autoconf automake libtool
          libuv1-dev liblmdb-dev lmdb-utils libmsgpack-dev libsodium-dev libjansson-dev libssl-dev openssl
          libhttp-parser-dev python3 procps ansible-core
          python3-croniter python3-nacl python3-msgpack faketime
          librsync-dev libarchive-dev rdiff clang-format
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
    cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLOTILLA_WERROR=$werror \
        -DFLOTILLA_TEST_HOOKS=ON -DFLOTILLA_TESTS=ON >/dev/null
}

compile() {
    cmake --build "$build" -j"$(nproc)"
}

# The suite again, built with AddressSanitizer and UndefinedBehaviorSanitizer
# (the chaos run aside). Every process writes its reports to files; any
# report fails the run, even from a process whose exit nobody checked.
sanitize() {
    local asan=${build}-asan reports
    reports="$asan/sanitizer-reports"
    cmake -S "$here" -B "$asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLOTILLA_WERROR=ON \
        -DFLOTILLA_SANITIZE=ON -DFLOTILLA_CHAOS_SHORT=OFF -DFLOTILLA_TEST_HOOKS=ON \
        -DFLOTILLA_TESTS=ON >/dev/null
    cmake --build "$asan" -j"$(nproc)"
    rm -rf "$reports"
    mkdir -p "$reports"
    echo "== the suite under ASan+UBSan ($asan)"
    # test_cron_ref starts the binary once per case: under the sanitizers
    # each start costs ~50 ms, so this pass checks 600 random cases (the
    # plain pass checks 3,000); the dispatcher's fixture runs 200 seeded
    # runs with faults here, 1,000 in the plain pass.
    (cd "$asan" &&
        FLOTILLA_CRON_CASES=${FLOTILLA_CRON_CASES:-600} \
        FLOTILLA_FIXTURE_SEEDS=${FLOTILLA_FIXTURE_SEEDS:-200} \
        ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=0" \
        UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1" \
        ctest -j"$test_jobs" --output-on-failure --timeout 900 -LE chaos "$@")
    if [ -n "$(ls -A "$reports")" ]; then
        echo "sanitizer reports:" >&2
        head -c 20000 "$reports"/* >&2
        exit 1
    fi
    echo "== sanitizers: no reports"
}

case "${1:-}" in
deps)
    deps ;;
build)
    deps; configure; compile ;;
dev)
    # A production build: the dev cluster needs no test hook.
    shift
    deps
    dev=${build}-dev
    cmake -S "$here" -B "$dev" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLOTILLA_TEST_HOOKS=OFF \
        -DFLOTILLA_TESTS=OFF >/dev/null
    cmake --build "$dev" -j"$(nproc)" --target flotilla
    exec "$dev/flotilla" dev "$@" ;;
lint)
    deps
    rc=0
    "$here/tools/check-layers" || rc=1
    "$here/tools/check-format" || rc=1
    exit $rc ;;
test)
    shift
    deps
    "$here/tools/check-layers"
    "$here/tools/check-format"
    configure werror; compile
    (cd "$build" && ctest -j"$test_jobs" --output-on-failure --timeout 900 "$@")
    [ "${FLOTILLA_SKIP_SANITIZE:-0}" = 1 ] || sanitize "$@" ;;
*)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2 ;;
esac
