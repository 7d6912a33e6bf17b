#!/bin/sh
# tests/run-providers.sh - the automake TESTS entry of the Check suites:
# runs pier-tests once per compiled provider (PIER_BACKEND=name), prints
# each run's summary line and fails if any run fails.
#
# Environment:
#   top_builddir       build directory (set by make check; default .)
#   PIER_TESTS_BIN     test binary (default $top_builddir/tests/pier-tests,
#                      the libtool wrapper script, which runs in place)
#   PIER_TEST_WRAPPER  optional command prefix, e.g. "wine"
: "${top_builddir:=.}"
bin=${PIER_TESTS_BIN:-$top_builddir/tests/pier-tests}
wrap=${PIER_TEST_WRAPPER:-}

if [ ! -e "$bin" ] && [ -e "$bin.exe" ]; then bin=$bin.exe; fi
if [ ! -e "$bin" ]; then
  echo "run-providers: test binary $bin not found" >&2
  exit 1
fi

log=${TMPDIR:-/tmp}/pier-run-providers.$$
trap 'rm -f "$log"' EXIT
trap 'exit 1' INT TERM

# $wrap is left unquoted on purpose: it may hold a command and arguments.
if ! $wrap "$bin" --providers >"$log" 2>&1; then
  echo "run-providers: $bin --providers failed:" >&2
  cat "$log" >&2
  exit 1
fi
providers=$(tr -d '\r' <"$log")
if [ -z "$providers" ]; then
  echo "run-providers: no providers compiled in" >&2
  exit 1
fi
echo "providers:" $providers

status=0
for p in $providers; do
  echo "== provider $p"
  PIER_BACKEND=$p $wrap "$bin" >"$log" 2>&1
  rc=$?
  # Check's failure lines first, then the summary line.
  grep -E ':[EF]:' "$log" || true
  tail -n 1 "$log"
  if [ "$rc" -ne 0 ]; then
    echo "run-providers: provider $p failed (exit $rc)" >&2
    status=1
  fi
done
exit $status
