#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/run-providers.sh - the automake TESTS entry of the Check suites:
# runs pier-tests once per compiled provider (PIER_BACKEND=name), prints
# each run's summary line and fails if any run fails.
#
# Environment:
#   top_builddir       build directory (set by make check; default .)
#   PIER_TESTS_BIN     test binary (default $top_builddir/tests/pier-tests,
#                      the libtool wrapper script, which runs in place)
#   PIER_TEST_WRAPPER  optional command prefix, e.g. "wine"
#
# Output per provider: Check's failure lines (F: failed, E: error, S:
# checked set-up failed), each once, then the binary's summary line
#   pier-tests: provider NAME checks N failures F
# A run that ends without that line crashed or hung: the end of its
# output follows instead (the result of the test before, a backtrace).
# Windows binaries under Wine write CRLF; the CRs are dropped.
: "${top_builddir:=.}"
bin=${PIER_TESTS_BIN:-$top_builddir/tests/pier-tests}
wrap=${PIER_TEST_WRAPPER:-}

if [ ! -e "$bin" ] && [ -e "$bin.exe" ]; then bin=$bin.exe; fi
if [ ! -e "$bin" ]; then
  echo "run-providers: test binary $bin not found" >&2
  exit 1
fi

log=${TMPDIR:-/tmp}/pier-run-providers.$$
trap 'rm -f "$log" "$log.raw"' EXIT
# Killed from outside (a timeout): show how far the run got.
trap 'echo "run-providers: interrupted; last output:";
      tr -d "\r" <"$log.raw" 2>/dev/null | tail -n 20; exit 1' INT TERM

# $wrap is left unquoted on purpose: it may hold a command and arguments.
if ! $wrap "$bin" --providers >"$log.raw" 2>&1; then
  echo "run-providers: $bin --providers failed:" >&2
  cat "$log.raw" >&2
  exit 1
fi
providers=$(tr -d '\r' <"$log.raw")
if [ -z "$providers" ]; then
  echo "run-providers: no providers compiled in" >&2
  exit 1
fi
echo "providers:" $providers

status=0
for p in $providers; do
  echo "== provider $p"
  : >"$log.raw"
  PIER_BACKEND=$p $wrap "$bin" >"$log.raw" 2>&1
  rc=$?
  tr -d '\r' <"$log.raw" >"$log"
  # Check's failure lines first (printed as they happen and again in the
  # summary where Check cannot fork: once each), then the summary line.
  grep -E ':[EFS]:' "$log" | awk '!seen[$0]++' || true
  if grep -q "^pier-tests: provider $p checks " "$log"; then
    grep "^pier-tests: provider $p " "$log" | tail -n 1
  else
    echo "run-providers: provider $p gave no summary line (crashed or hung);" \
         "the end of its output:"
    tail -n 40 "$log"
    [ "$rc" -ne 0 ] || rc=1
  fi
  if [ "$rc" -ne 0 ]; then
    echo "run-providers: provider $p failed (exit $rc)" >&2
    status=1
  fi
done
exit $status
