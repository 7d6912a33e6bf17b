#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/examples.sh - the automake TESTS entry of the examples: runs every
# example's --selftest once per compiled provider (PIER_BACKEND=name), each
# bounded by a timeout, prints one line per example and provider and fails
# if any run fails.
#
# Environment:
#   top_builddir       build directory (set by make check; default .)
#   PIER_TESTS_BIN     the binary that lists the providers with --providers
#                      (default $top_builddir/tests/pier-tests); without it
#                      the examples run once, on the default provider
#   PIER_TEST_WRAPPER  optional command prefix, e.g. "wine" (then the
#                      examples are NAME.exe; output goes through a file,
#                      stdin is /dev/null)
#   PIER_EXAMPLES      the examples to run (default: all of them)
#   PIER_EXAMPLE_TIMEOUT  seconds per run (default 30; 90 under a wrapper)
#
# Output: "examples: NAME on PROVIDER: ok (N s)" per run; a failed run
# prints FAILED with its exit status and the end of its output.
: "${top_builddir:=.}"
wrap=${PIER_TEST_WRAPPER:-}
bin=${PIER_TESTS_BIN:-$top_builddir/tests/pier-tests}
examples=${PIER_EXAMPLES:-"simple simplec accept overlap iocpserver iocpclient iocpserverex poll eventselect handoff tls-echo connect-data"}
if [ -n "$wrap" ]; then limit=${PIER_EXAMPLE_TIMEOUT:-90}
else limit=${PIER_EXAMPLE_TIMEOUT:-30}; fi

log=${TMPDIR:-/tmp}/pier-examples.$$
trap 'rm -f "$log" "$log.raw"' EXIT

# timeout(1) where there is one; the selftests bound themselves too.
if command -v timeout >/dev/null 2>&1; then limiter="timeout $limit"
else limiter=; fi

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
for p in $providers; do
  for n in $examples; do
    exe=$top_builddir/examples/$n
    if [ ! -e "$exe" ] && [ -e "$exe.exe" ]; then exe=$exe.exe; fi
    if [ ! -e "$exe" ] && [ "$n" = tls-echo ]; then
      echo "examples: $n on $p: skipped (pier built without OpenSSL)"
      continue
    fi
    if [ ! -e "$exe" ]; then
      echo "examples: $n on $p: FAILED (not built: $exe)"
      status=1
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
exit $status
