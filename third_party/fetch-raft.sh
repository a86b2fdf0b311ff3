#!/usr/bin/env bash
# Fetch raft 0.22.1's original tarball from Debian's source package `raft`
# (the release after Debian 12), using the archive named in this system's own
# apt sources, so no host is written down here. Verifies the SHA-256.
#
#   fetch-raft.sh OUTDIR      -> OUTDIR/raft_0.22.1.orig.tar.gz
#
# FLOTILLA_RAFT_TARBALL=/path/to/raft_0.22.1.orig.tar.gz skips the download
# (for machines without apt access).
set -euo pipefail
out=${1:?usage: fetch-raft.sh OUTDIR}
want=7e45b6f24f3671c9bfd5b146814493f87cb2e560712bd469c1f5969a4b94291a
name=raft_0.22.1.orig.tar.gz
mkdir -p "$out"
dst="$out/$name"

check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$want" ]; }

if check "$dst"; then exit 0; fi
if [ -n "${FLOTILLA_RAFT_TARBALL:-}" ]; then
    check "$FLOTILLA_RAFT_TARBALL" || { echo "fetch-raft: $FLOTILLA_RAFT_TARBALL: SHA-256 mismatch" >&2; exit 1; }
    cp "$FLOTILLA_RAFT_TARBALL" "$dst"; exit 0
fi

# Derive URIs and Signed-By from the system's own Debian entry.
uri=""; key=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    key=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
fi
[ -n "$uri" ] || { echo "fetch-raft: cannot find a Debian archive in the apt sources" >&2; exit 1; }
[ -n "$key" ] || key=/usr/share/keyrings/debian-archive-keyring.gpg

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/dl" "$work/parts"
cat > "$work/parts/raft.sources" <<SRC
Types: deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: $key
SRC
opts=(-o "Dir::Etc::sourcelist=/dev/null" -o "Dir::Etc::sourceparts=$work/parts"
      -o "Dir::State::Lists=$work/lists" -o "APT::Sandbox::User=root")
apt-get "${opts[@]}" update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; exit 1; }
(cd "$work/dl" && apt-get "${opts[@]}" source --download-only raft=0.22.1-1 >"$work/source.log" 2>&1) \
    || { cat "$work/source.log" >&2; exit 1; }
check "$work/dl/$name" || { echo "fetch-raft: $name: SHA-256 mismatch" >&2; exit 1; }
cp "$work/dl/$name" "$dst"
