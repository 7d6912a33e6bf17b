#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/fuzz/replay.sh - the automake TESTS entry of the API-sequence
# fuzzer: replays its seed corpus (tests/fuzz/corpus/api/) and the inputs
# that once failed (tests/fuzz/regressions/api/) through
# tests/fuzz/replay-api, the target built as a plain program (no clang,
# no libFuzzer), once per compiled provider.  Every input checks the
# promises of DESIGN.md 3.4 as it runs (tests/fuzz/fuzz_api.c); a broken
# one aborts and names itself.
#
# Environment:
#   top_builddir, top_srcdir  set by make check (default .)
#   PIER_TESTS_BIN     the binary that lists the providers with --providers
#                      (default $top_builddir/tests/pier-tests); without it
#                      the inputs run once, on the default provider
#   PIER_TEST_WRAPPER  optional command prefix, e.g. "wine"
#
# Output: "fuzz-replay: PROVIDER: N inputs ok", or FAILED with the end of
# the program's output (the input that failed, and what broke).
: "${top_builddir:=.}" "${top_srcdir:=.}"
wrap=${PIER_TEST_WRAPPER:-}
prog=$top_builddir/tests/fuzz/replay-api
bin=${PIER_TESTS_BIN:-$top_builddir/tests/pier-tests}
if [ ! -e "$prog" ] && [ -e "$prog.exe" ]; then prog=$prog.exe; fi
if [ ! -e "$bin" ] && [ -e "$bin.exe" ]; then bin=$bin.exe; fi
log=${TMPDIR:-/tmp}/pier-fuzz-replay.$$
trap 'rm -f "$log"' EXIT

providers=
if [ -e "$bin" ]; then
  # $wrap is left unquoted on purpose: it may hold a command and arguments.
  providers=$($wrap "$bin" --providers 2>/dev/null </dev/null | tr -d '\r')
fi
[ -n "$providers" ] || providers=default
limiter=
if command -v timeout >/dev/null 2>&1; then limiter="timeout 300"; fi

status=0
# shellcheck disable=SC2086 # $limiter and $wrap are commands with arguments
for p in $providers; do
  if [ "$p" = default ]; then
    $limiter $wrap "$prog" "$top_srcdir/tests/fuzz/corpus/api" \
      "$top_srcdir/tests/fuzz/regressions/api" >"$log" 2>&1 </dev/null
  else
    PIER_BACKEND=$p $limiter $wrap "$prog" "$top_srcdir/tests/fuzz/corpus/api" \
      "$top_srcdir/tests/fuzz/regressions/api" >"$log" 2>&1 </dev/null
  fi
  rc=$?
  n=$(tr -d '\r' <"$log" | sed -n 's/^replay: \([0-9]*\) inputs, no failure$/\1/p')
  if [ "$rc" -eq 0 ] && [ -n "$n" ] && [ "$n" -gt 0 ]; then
    echo "fuzz-replay: $p: $n inputs ok"
  else
    echo "fuzz-replay: $p: FAILED (exit $rc)"
    tail -n 20 "$log"
    status=1
  fi
done
exit $status
