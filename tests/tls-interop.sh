#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/tls-interop.sh - pier's TLS layer against another TLS stack, the
# openssl command: the tls-echo example's client talks to
# `openssl s_server -rev` (which answers each line reversed), and
# `openssl s_client` talks to its server (which echoes); 1 MiB of text
# each way, every byte compared.  In TESTS, and run by scripts/check on
# the Windows build under Wine.
#
#   tests/tls-interop.sh [TLS-ECHO]
#
# TLS-ECHO is the example binary (default $top_builddir/examples/tls-echo,
# or tls-echo.exe).
# Environment:
#   top_builddir       build directory (set by make check; default .)
#   PIER_TEST_WRAPPER  optional command prefix for TLS-ECHO, e.g. "wine"
#                      (then its file arguments are given as Z:/path)
#   PIER_TLS_INTEROP_DIR  work directory, kept (default: a temporary one)
#
# Output, per direction:
#   tls-interop: pier client <-> openssl s_server: N bytes each way verified
#   tls-interop: openssl s_client <-> pier server: N bytes each way verified
# ("output differs" instead when it does).  Exits 0 when both pass, 1 if
# either fails, 77 (skipped, with the reason) without an openssl command,
# rev, a tls-echo binary (pier built without OpenSSL) or the wrapper.
: "${top_builddir:=.}"
wrap=${PIER_TEST_WRAPPER:-}
exe=${1:-$top_builddir/examples/tls-echo}
if [ ! -e "$exe" ] && [ -e "$exe.exe" ]; then exe=$exe.exe; fi

skip() { echo "tls-interop: skipped: $*"; exit 77; }
command -v openssl >/dev/null 2>&1 || skip "no openssl command"
command -v rev >/dev/null 2>&1 || skip "no rev command"
[ -e "$exe" ] || skip "no $exe (pier built without OpenSSL?)"
if [ -n "$wrap" ]; then
  set -- $wrap
  command -v "$1" >/dev/null 2>&1 || skip "no $1 (PIER_TEST_WRAPPER)"
  zdrive=Z: settle=3 # Wine starts slowly
else
  zdrive='' settle=1
fi
if command -v timeout >/dev/null 2>&1; then limiter="timeout 120"
else limiter=; fi

if [ -n "${PIER_TLS_INTEROP_DIR:-}" ]; then
  d=$PIER_TLS_INTEROP_DIR
  rm -rf "$d"
  mkdir -p "$d"
else
  d=$(mktemp -d "${TMPDIR:-/tmp}/pier-tls-interop.XXXXXX") || exit 1
  trap 'rm -rf "$d"' EXIT
fi
log=$d/log

# free_port - a loopback TCP port nobody listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $(( 20000 + $$ % 30000 ))
}

if ! openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/key.pem" \
       -out "$d/cert.pem" -days 2 -subj /CN=localhost \
       -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >>"$log" 2>&1; then
  echo "tls-interop: openssl req failed:"
  tail -n 20 "$log"
  exit 1
fi
# 1 MiB of base64 in lines of 63 characters.
{ head -c 786432 /dev/urandom | base64 | tr -d '\n' | fold -w 63; echo; } >"$d/in.txt"
rev "$d/in.txt" >"$d/want-rev.txt"
bytes=$(wc -c <"$d/in.txt" | tr -d ' ')
status=0

# verdict WHAT OUTPUT WANT - compare and say so.
verdict() {
  if tr -d '\r' <"$2" | cmp -s - "$3"; then
    echo "tls-interop: $1: $bytes bytes each way verified"
  else
    echo "tls-interop: $1: output differs ($(wc -c <"$2" | tr -d ' ') of $bytes bytes came back)"
    status=1
  fi
}

# 1. pier client, openssl server.  $wrap and $limiter unquoted on
# purpose: commands with arguments.
port=$(free_port)
openssl s_server -accept "127.0.0.1:$port" -cert "$d/cert.pem" \
  -key "$d/key.pem" -rev -quiet </dev/null >>"$log" 2>&1 &
spid=$!
sleep 1
$limiter $wrap "$exe" client -h 127.0.0.1 -p "$port" \
  --ca "$zdrive$d/cert.pem" --servername localhost \
  <"$d/in.txt" >"$d/out-client.txt" 2>>"$log"
kill "$spid" 2>/dev/null
wait "$spid" 2>/dev/null
verdict "pier client <-> openssl s_server" "$d/out-client.txt" "$d/want-rev.txt"

# 2. pier server, openssl client; the pause before its stdin ends lets
# the echo come back first.
port=$(free_port)
$limiter $wrap "$exe" server -h 127.0.0.1 -p "$port" \
  --cert "$zdrive$d/cert.pem" --key "$zdrive$d/key.pem" \
  </dev/null >>"$log" 2>&1 &
spid=$!
sleep "$settle"
{ cat "$d/in.txt"; sleep 5; } |
  $limiter openssl s_client -connect "127.0.0.1:$port" -CAfile "$d/cert.pem" \
    -verify_return_error -quiet -nocommands -no_ign_eof \
    >"$d/out-server.txt" 2>>"$log"
kill "$spid" 2>/dev/null
wait "$spid" 2>/dev/null
verdict "openssl s_client <-> pier server" "$d/out-server.txt" "$d/in.txt"

if [ "$status" -ne 0 ]; then
  echo "tls-interop: the end of the log:"
  tail -n 30 "$log"
fi
exit $status
