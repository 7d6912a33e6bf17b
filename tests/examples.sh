#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/examples.sh - the automake TESTS entry of the examples: checks
# every example's command line, runs every example's --selftest once per
# compiled provider (PIER_BACKEND=name), each bounded by a timeout, and
# stops iocpserver and iocpclient with signals; prints one line per check
# and fails if any fails.
#
#   command line  every example (demo too): --help exits 0 with a usage
#                 line and the PIER_BACKEND line on standard output; each
#                 bad argument in the table below (a port out of range or
#                 not a number, a negative or absurd count, a missing
#                 value, an unknown option) exits 2 with a message that
#                 names it and, for a number, its range
#   selftests     NAME --selftest, per provider
#   signals       per provider and signal (SIGINT and SIGTERM; under Wine
#                 SIGINT alone, which Wine turns into Ctrl-C - Windows has
#                 no SIGTERM to handle): iocpclient, busy against
#                 iocpserver, stops on the signal, prints its summary with
#                 every connection connected and exits 0; then iocpserver,
#                 busy with another iocpclient, stops, prints its
#                 statistics and exits 0.  And the refusals: iocpclient
#                 against an iocpserver that --deny's 127.0.0.1 reports
#                 every connection refused, not as an error, exits 1, and
#                 the server counts them as refused
#
# Environment:
#   top_builddir       build directory (set by make check; default .)
#   PIER_TESTS_BIN     the binary that lists the providers with --providers
#                      (default $top_builddir/tests/pier-tests); without it
#                      the examples run once, on the default provider
#   PIER_TEST_WRAPPER  optional command prefix, e.g. "wine" (then the
#                      examples are NAME.exe; output goes through a file,
#                      stdin is /dev/null)
#   PIER_EXAMPLES      the examples to run (default: all of them; the
#                      command line of demo is checked too by default)
#   PIER_EXAMPLE_TIMEOUT  seconds per run (default 30; 90 under a wrapper)
#
# Output: "examples: NAME command line ok (...)" per example,
# "examples: NAME on PROVIDER: ok (N s)" per selftest and "examples:
# iocpserver/iocpclient on PROVIDER: SIGNAL stop ok" per signal; a failed
# check prints FAILED with what was wrong and the end of its output.
: "${top_builddir:=.}"
wrap=${PIER_TEST_WRAPPER:-}
bin=${PIER_TESTS_BIN:-$top_builddir/tests/pier-tests}
examples=${PIER_EXAMPLES:-"simple simplec accept overlap iocpserver iocpclient iocpserverex poll eventselect handoff tls-echo connect-data"}
cli_examples=${PIER_EXAMPLES:-"demo $examples"}
if [ -n "$wrap" ]; then limit=${PIER_EXAMPLE_TIMEOUT:-90}; wait_s=60
else limit=${PIER_EXAMPLE_TIMEOUT:-30}; wait_s=15; fi

log=${TMPDIR:-/tmp}/pier-examples.$$
trap 'rm -f "$log" "$log".*' EXIT

# timeout(1) where there is one; the selftests bound themselves too.
# The programs that get signals run under timeout --foreground, which
# passes a signal on to them once: without it timeout sends it twice (to
# the program, then to its process group), and iocpserver and iocpclient
# take a second signal as "stop now", the default action that kills.
if command -v timeout >/dev/null 2>&1; then limiter="timeout $limit"
else limiter=; fi
bg_limiter=
if [ -n "$limiter" ] && timeout --foreground 5 true 2>/dev/null; then
  bg_limiter="timeout --foreground $limit"
fi

if [ ! -e "$bin" ] && [ -e "$bin.exe" ]; then bin=$bin.exe; fi
providers=
if [ -e "$bin" ]; then
  # $wrap is left unquoted on purpose: it may hold a command and arguments.
  if $wrap "$bin" --providers >"$log.raw" 2>&1 </dev/null; then
    providers=$(tr -d '\r' <"$log.raw")
  else
    echo "examples: $bin --providers failed:" >&2
    cat "$log.raw" >&2
    exit 1
  fi
fi
[ -n "$providers" ] || providers=default
echo "providers:" $providers

status=0

# find_exe NAME - $exe, the example's program; false when it is not built.
find_exe() {
  exe=$top_builddir/examples/$1
  if [ ! -e "$exe" ] && [ -e "$exe.exe" ]; then exe=$exe.exe; fi
  [ -e "$exe" ]
}

# run_cmd ARGS... - run $exe with ARGS: standard output in $log.out,
# standard error in $log.err (CRs dropped), exit status in $rc.
run_cmd() {
  $limiter $wrap "$exe" "$@" >"$log.raw" 2>"$log.raw2" </dev/null
  rc=$?
  tr -d '\r' <"$log.raw" >"$log.out"
  tr -d '\r' <"$log.raw2" >"$log.err"
}

# fail WHAT FILE - report a failed check with the end of FILE.
fail() {
  echo "examples: $1: FAILED; the end of its output:"
  tr -d '\r' <"$2" | tail -n 12 | sed 's/^/  /'
  status=1
}

# ------------------------------------------------------- command lines
# NAME|ARGUMENTS|what standard error must say (exit status 2).
usage_errors='
demo|--bogus|--bogus: unknown argument
accept|-p 99999|-p 99999: expected a whole number from 0 to 65535
accept|-p abc|-p abc: expected a whole number from 0 to 65535
accept|-p|-p: needs a value
accept|--bogus|--bogus: unknown option
simple|-p 99999|-p 99999: expected a whole number from 0 to 65535
simple|-p abc|-p abc: expected a whole number from 0 to 65535
simple|-u|-p PORT: required
simplec|-h 127.0.0.1 -p 99999|-p 99999: expected a whole number from 1 to 65535
simplec|-h 127.0.0.1 -p abc|-p abc: expected a whole number from 1 to 65535
simplec|-h 127.0.0.1 -p 5 -n -1|-n -1: expected a whole number from 1 to 1000000
simplec|-h 127.0.0.1 -p 5 -l 99999999999|-l 99999999999: expected a whole number from 1 to 65507
overlap|-p 99999|-p 99999: expected a whole number from 0 to 65535
overlap|-p abc|-p abc: expected a whole number from 0 to 65535
poll|-p 99999|-p 99999: expected a whole number from 0 to 65535
poll|-p 1x|-p 1x: expected a whole number from 0 to 65535
eventselect|-p 99999|-p 99999: expected a whole number from 0 to 65535
eventselect|-p abc|-p abc: expected a whole number from 0 to 65535
handoff|-p 99999|-p 99999: expected a whole number from 0 to 65535
handoff|-p -1|-p -1: expected a whole number from 0 to 65535
iocpserver|-p 99999|-p 99999: expected a whole number from 0 to 65535
iocpserver|-p abc|-p abc: expected a whole number from 0 to 65535
iocpserver|-t 0|-t 0: expected a whole number from 1 to 256
iocpserver|-t 100000|-t 100000: expected a whole number from 1 to 256
iocpserver|--deny 127.0.0.1/33|--deny 127.0.0.1/33: expected
iocpclient|-h 127.0.0.1 -p 99999|-p 99999: expected a whole number from 1 to 65535
iocpclient|-h 127.0.0.1 -p abc|-p abc: expected a whole number from 1 to 65535
iocpclient|-h 127.0.0.1 -p 5 -n -1|-n -1: expected a whole number from 1 to 4096
iocpclient|-h 127.0.0.1 -p 5 -n 1000000|-n 1000000: expected a whole number from 1 to 4096
iocpclient|-h 127.0.0.1 -p 5 -b 0|-b 0: expected a whole number from 1 to 1048576
iocpclient|-h 127.0.0.1 -p 5 -s 9999999|-s 9999999: expected a whole number from 1 to 86400
iocpclient|-h 127.0.0.1 -p 5 -t 0|-t 0: expected a whole number from 1 to 256
iocpclient|-p 5|-h HOST: required
iocpserverex|-p 99999|-p 99999: expected a whole number from 0 to 65535
iocpserverex|-p abc|-p abc: expected a whole number from 0 to 65535
iocpserverex|-p 5 -a 0|-a 0: expected a whole number from 1 to 256
iocpserverex|-p 5 -a 1000000|-a 1000000: expected a whole number from 1 to 256
iocpserverex|-p 5 -t -2|-t -2: expected a whole number from 1 to 256
connect-data|server -p 99999|-p 99999: expected a whole number from 0 to 65535
connect-data|client -p abc|-p abc: expected a whole number from 1 to 65535
connect-data|client -p 0|-p 0: expected a whole number from 1 to 65535
connect-data|client --name|--name: needs a value
tls-echo|client -h 127.0.0.1 -p 99999|-p 99999: expected a whole number from 1 to 65535
tls-echo|server -p abc --cert c --key k|-p abc: expected a whole number from 1 to 65535
'

for n in $cli_examples; do
  if ! find_exe "$n"; then
    [ "$n" = tls-echo ] || { echo "examples: $n: FAILED (not built: $exe)"; status=1; }
    continue
  fi
  checks=0 bad=
  run_cmd --help
  if [ "$rc" -ne 0 ] || ! grep -q '^usage: ' "$log.out" ||
     ! grep -q 'PIER_BACKEND' "$log.out"; then
    bad="--help: exit $rc, want 0 with usage: and PIER_BACKEND on stdout"
    cp "$log.out" "$log.fail"
  fi
  checks=$((checks + 1))
  while IFS='|' read -r name args want; do
    if [ "$name" != "$n" ] || [ -n "$bad" ]; then continue; fi
    # $args is split into words on purpose.
    # shellcheck disable=SC2086
    run_cmd $args
    checks=$((checks + 1))
    if [ "$rc" -ne 2 ] || ! grep -q -F -e "$want" "$log.err"; then
      bad="$n $args: exit $rc, want 2 and \"$want\""
      cp "$log.err" "$log.fail"
    fi
  done <<EOF
$usage_errors
EOF
  if [ -n "$bad" ]; then
    fail "$n command line ($bad)" "$log.fail"
  else
    # Not ": ok (", which scripts/check counts as a selftest passed.
    echo "examples: $n command line ok (--help; bad arguments refused: $((checks - 1)))"
  fi
done

# ------------------------------------------------------------ selftests
for p in $providers; do
  for n in $examples; do
    if ! find_exe "$n"; then
      if [ "$n" = tls-echo ]; then
        echo "examples: $n on $p: skipped (pier built without OpenSSL)"
      else
        echo "examples: $n on $p: FAILED (not built: $exe)"
        status=1
      fi
      continue
    fi
    start=$(date +%s)
    if [ "$p" = default ]; then
      $limiter $wrap "$exe" --selftest >"$log.raw" 2>&1 </dev/null
    else
      PIER_BACKEND=$p $limiter $wrap "$exe" --selftest >"$log.raw" 2>&1 </dev/null
    fi
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ "$rc" -eq 0 ]; then
      echo "examples: $n on $p: ok (${secs} s)"
    else
      [ "$rc" -eq 124 ] && why="timed out after ${limit} s" || why="exit $rc"
      echo "examples: $n on $p: FAILED ($why); the end of its output:"
      tr -d '\r' <"$log.raw" | tail -n 20 | sed 's/^/  /'
      status=1
    fi
  done
done

# -------------------------------------------------------------- signals
# start PROVIDER FILE ARGS... - start $exe with ARGS in the background,
# its output in FILE; $pid is the process to signal (timeout passes the
# signal on, once, and ends a program that hangs).
start() {
  prov=$1 file=$2
  shift 2
  : >"$file"
  if [ "$prov" = default ]; then
    $bg_limiter $wrap "$exe" "$@" >"$file" 2>&1 </dev/null &
  else
    PIER_BACKEND=$prov $bg_limiter $wrap "$exe" "$@" >"$file" 2>&1 </dev/null &
  fi
  pid=$!
}

# wait_for FILE TEXT - until FILE holds TEXT (at most $wait_s seconds).
wait_for() {
  i=$((wait_s * 5))
  while [ "$i" -gt 0 ]; do
    tr -d '\r' <"$1" | grep -q -F -e "$2" && return 0
    sleep 0.2
    i=$((i - 1))
  done
  return 1
}

# has FILE TEXT... - FILE (CRs dropped) holds every TEXT.
has() {
  f=$1
  shift
  tr -d '\r' <"$f" >"$f.txt"
  for t in "$@"; do grep -q -F -e "$t" "$f.txt" || return 1; done
}

# signal_stop PROVIDER SIG - iocpclient, then iocpserver, each busy,
# stopped by signal SIG (INT, TERM); both print their summary, exit 0.
signal_stop() {
  p=$1 sig=$2 what="iocpserver/iocpclient on $1: SIG$2 stop"
  said=SIG$sig
  [ -n "$wrap" ] && said=Ctrl-C # Wine turns SIGINT into Ctrl-C
  exe=$srv; start "$p" "$log.srv" -p 0 -t 2
  spid=$pid
  if ! wait_for "$log.srv" "listening on 127.0.0.1:"; then
    kill "$spid" 2>/dev/null; wait "$spid"
    fail "$what (the server never listened)" "$log.srv"; return
  fi
  port=$(tr -d '\r' <"$log.srv" | sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p')
  ok=1
  for victim in client server; do
    exe=$cli; start "$p" "$log.cli" -h 127.0.0.1 -p "$port" -n 4 -s 600
    cpid=$pid
    # Busy: the first progress line says the connections are echoing.
    if ! wait_for "$log.cli" "1 s: 4 connections"; then
      kill "$cpid" "$spid" 2>/dev/null; wait "$cpid"; wait "$spid"
      fail "$what (the client never got going)" "$log.cli"; return
    fi
    if [ $victim = client ]; then
      kill -s "$sig" "$cpid"; wait "$cpid"; rc=$?
      if [ "$rc" -ne 0 ] || ! has "$log.cli" "$said: stopping" \
           "4 connections (4 connected, 0 refused)" " 0 errors"; then
        fail "$what (iocpclient: exit $rc, want 0 and its summary)" "$log.cli"
        ok=0
      fi
    else
      kill -s "$sig" "$spid"; wait "$spid"; rc=$?
      if [ "$rc" -ne 0 ] || ! has "$log.srv" "$said: stopping" \
           "8 connections accepted, 0 refused, 8 closed;" " 0 errors"; then
        fail "$what (iocpserver: exit $rc, want 0 and its statistics)" "$log.srv"
        ok=0
      fi
      wait "$cpid" # the server closed its connections: it ends (exit 1)
    fi
  done
  [ "$ok" -eq 1 ] && echo "examples: $what ok (summaries printed, exit 0)"
}

# refusals PROVIDER - iocpclient against a server that refuses 127.0.0.1:
# every connection refused (not an error), exit 1; the server counts them.
refusals() {
  p=$1 what="iocpserver/iocpclient on $1: refusals"
  sig=TERM
  [ -n "$wrap" ] && sig=INT
  exe=$srv; start "$p" "$log.srv" -p 0 -t 2 --deny 127.0.0.1/32
  spid=$pid
  if ! wait_for "$log.srv" "listening on 127.0.0.1:"; then
    kill "$spid" 2>/dev/null; wait "$spid"
    fail "$what (the server never listened)" "$log.srv"; return
  fi
  port=$(tr -d '\r' <"$log.srv" | sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p')
  exe=$cli; run_cmd -h 127.0.0.1 -p "$port" -n 3 -s 1
  cat "$log.out" "$log.err" >"$log.cli"
  kill -s "$sig" "$spid"; wait "$spid"; src=$?
  if [ "$rc" -ne 1 ] ||
     ! has "$log.cli" "3 connections (0 connected, 3 refused)" " 0 errors"; then
    fail "$what (iocpclient: exit $rc, want 1 and 3 refused)" "$log.cli"
  elif [ "$src" -ne 0 ] ||
       ! has "$log.srv" "0 connections accepted, 3 refused"; then
    fail "$what (iocpserver: exit $src, want 0 and 3 refused)" "$log.srv"
  else
    echo "examples: $what ok (3 refused, counted by both)"
  fi
}

case " $examples " in
*" iocpserver "*) case " $examples " in *" iocpclient "*)
  signals="INT TERM"
  [ -n "$wrap" ] && signals=INT
  if find_exe iocpserver && srv=$exe && find_exe iocpclient && cli=$exe; then
    for p in $providers; do
      for s in $signals; do signal_stop "$p" "$s"; done
      refusals "$p"
    done
  else
    echo "examples: iocpserver/iocpclient signals: FAILED (not built)"
    status=1
  fi ;;
esac ;;
esac
exit $status
