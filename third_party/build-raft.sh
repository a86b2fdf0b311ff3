#!/usr/bin/env bash
# Build raft 0.22.1 as a static library into PREFIX, once per build tree.
#   build-raft.sh SRCDIR(third_party) WORKDIR PREFIX debug|release
# "debug" keeps the library's own assertions (--enable-debug); test builds use it.
set -euo pipefail
here=$1; work=$2; prefix=$3; mode=$4
# The stamp names the patches' hash, so a changed or added patch rebuilds.
patches=("$here"/raft-*.patch)
sum=$(cat "${patches[@]}" | sha256sum | cut -c1-16)
stamp="$prefix/.built-$mode-$sum"
[ -f "$stamp" ] && [ -f "$prefix/lib/libraft.a" ] && exit 0
"$here/fetch-raft.sh" "$work"
rm -rf "$work/raft-0.22.1" "$prefix"
tar -C "$work" -xzf "$work/raft_0.22.1.orig.tar.gz"
cd "$work/raft-0.22.1"
for p in "${patches[@]}"; do
    patch -p1 --forward < "$p" >/dev/null
done
autoreconf -i >autoreconf.log 2>&1 || { cat autoreconf.log >&2; exit 1; }
extra=()
[ "$mode" = debug ] && extra+=(--enable-debug)
./configure --prefix="$prefix" --disable-shared --enable-static --without-lz4 \
    --disable-benchmark --disable-example "${extra[@]}" >configure.log 2>&1 \
    || { cat configure.log >&2; exit 1; }
make -j"$(nproc)" >make.log 2>&1 || { tail -50 make.log >&2; exit 1; }
make install >install.log 2>&1 || { tail -50 install.log >&2; exit 1; }
touch "$stamp"
