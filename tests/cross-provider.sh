#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/cross-provider.sh - a pier-to-pier transfer between two processes
# on different providers (tests/xfer.c): a pier-xfer server and a
# pier-xfer client send each other BYTES bytes at the same time and each
# verifies every byte it receives.  Run once per pair of server and
# client provider.  In TESTS (natively: every pair of the compiled
# providers), and run by scripts/check with the Windows client under Wine
# against the native server (iocp <-> libevent: two operating systems).
#
# Environment:
#   top_builddir          build directory (set by make check; default .)
#   PIER_XFER_SERVER      the server binary, run natively
#                         (default $top_builddir/tests/pier-xfer)
#   PIER_XFER_CLIENT      the client binary (default: the server's)
#   PIER_XFER_CLIENT_WRAPPER  command prefix for the client, e.g. "wine"
#                         (default $PIER_TEST_WRAPPER)
#   PIER_XFER_SERVER_PROVIDERS, PIER_XFER_CLIENT_PROVIDERS
#                         the providers of each side (default: those
#                         $top_builddir/tests/pier-tests --providers lists,
#                         else the default provider)
#   PIER_XFER_BYTES       bytes each way (default 8388608)
#
# Output per pair, after both sides' own lines ("xfer: ... verified"):
#   cross-provider: CLIENT client <-> SERVER server: N bytes each way verified
# or "... failed (client RC, server RC)" and the end of the log.  Exits
# 0 when every pair passes, 1 if one fails, 77 (skipped, with the reason)
# without a pier-xfer binary or the client's wrapper.
: "${top_builddir:=.}"
server=${PIER_XFER_SERVER:-$top_builddir/tests/pier-xfer}
client=${PIER_XFER_CLIENT:-$server}
wrap=${PIER_XFER_CLIENT_WRAPPER-${PIER_TEST_WRAPPER:-}}
bytes=${PIER_XFER_BYTES:-8388608}

skip() { echo "cross-provider: skipped: $*"; exit 77; }
for b in server client; do
  eval "f=\$$b"
  if [ ! -e "$f" ] && [ -e "$f.exe" ]; then eval "$b=\$f.exe"; f=$f.exe; fi
  [ -e "$f" ] || skip "no $b binary $f"
done
if [ -n "$wrap" ]; then
  set -- $wrap
  command -v "$1" >/dev/null 2>&1 || skip "no $1 (the client's wrapper)"
fi
if command -v timeout >/dev/null 2>&1; then limiter="timeout 180"
else limiter=; fi

# providers - the natively compiled providers (none: the default one).
providers() {
  tests=$top_builddir/tests/pier-tests
  [ -e "$tests" ] && "$tests" --providers 2>/dev/null | tr -d '\r'
}
sprov=${PIER_XFER_SERVER_PROVIDERS:-$(providers)}
cprov=${PIER_XFER_CLIENT_PROVIDERS:-$sprov}

d=$(mktemp -d "${TMPDIR:-/tmp}/pier-cross.XXXXXX") || exit 1
trap 'rm -rf "$d"' EXIT
log=$d/log portfile=$d/port

# pair SERVER-PROVIDER CLIENT-PROVIDER ("" for the default one) - one
# transfer; returns 0 when both sides verified every byte.
pair() {
  : >"$log"
  rm -f "$portfile"
  # $limiter and $wrap unquoted on purpose: commands with arguments.
  env ${1:+PIER_BACKEND=$1} $limiter "$server" server "$portfile" "$bytes" \
    >>"$log" 2>&1 </dev/null &
  spid=$!
  crc=1 src=0 i=0
  while [ ! -s "$portfile" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  if [ -s "$portfile" ]; then
    crc=0
    env ${2:+PIER_BACKEND=$2} $limiter $wrap "$client" client \
      "$(cat "$portfile")" "$bytes" >>"$log" 2>&1 </dev/null || crc=$?
  fi
  wait "$spid" || src=$?
  tr -d '\r' <"$log" | grep '^xfer:'
  what="${2:-default} client <-> ${1:-default} server"
  if [ "$crc" -eq 0 ] && [ "$src" -eq 0 ] &&
     [ "$(tr -d '\r' <"$log" | grep -c '^xfer: .*verified')" -eq 2 ]; then
    echo "cross-provider: $what: $bytes bytes each way verified"
    return 0
  fi
  echo "cross-provider: $what: failed (client $crc, server $src); the log:"
  tr -d '\r' <"$log" | tail -n 30
  return 1
}

status=0
for s in ${sprov:-""}; do
  for c in ${cprov:-""}; do
    pair "$s" "$c" || status=1
  done
done
exit $status
