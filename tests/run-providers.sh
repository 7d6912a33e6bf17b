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
#   PIER_TESTS         the NAMEs to run, as `pier-tests --list` prints them
#                      (suites, SUITE/CASE, SUITE/CASE/TEST; default: all)
#   PIER_TEST_SPLIT    suite: each suite (or each NAME of PIER_TESTS) in a
#                      process of its own, so that a crash ends only its
#                      own suite; test: each test alone (slow under Wine);
#                      none: one process per provider.  Default: suite
#                      where Check cannot fork (a wrapper such as wine, a
#                      .exe, CK_FORK=no), none elsewhere.
#   PIER_TEST_DEADLINE seconds one pier-tests process may take before its
#                      watchdog ends it (no-fork mode only; its default
#                      is 900)
#
# Output per provider: Check's failure lines (F: failed, E: error, S:
# checked set-up failed), each once, then the summary line
#   pier-tests: provider NAME checks N failures F
# A run that ends without that line crashed or hung: the end of its
# output follows instead (the result of the test before, a backtrace).
# Split, each process adds a line
#   run-providers: provider NAME UNIT checks N failures F (S s)
# or, for one that crashed or hung (it counts as one failed check),
#   run-providers: provider NAME UNIT died|hung (exit RC)
# followed by the end of its output; the summary line is then the sum
# over the provider's processes.
# Windows binaries under Wine write CRLF; the CRs are dropped.
: "${top_builddir:=.}"
bin=${PIER_TESTS_BIN:-$top_builddir/tests/pier-tests}
wrap=${PIER_TEST_WRAPPER:-}

if [ ! -e "$bin" ] && [ -e "$bin.exe" ]; then bin=$bin.exe; fi
if [ ! -e "$bin" ]; then
  echo "run-providers: test binary $bin not found" >&2
  exit 1
fi
split=${PIER_TEST_SPLIT:-}
if [ -z "$split" ]; then
  case "$wrap,$bin,${CK_FORK:-}" in
    ?*,*,* | *.exe,* | *,no) split=suite ;;
    *) split=none ;;
  esac
fi
case $split in
  suite | test | none) ;;
  *) echo "run-providers: PIER_TEST_SPLIT=$split: suite, test or none" >&2
     exit 1 ;;
esac

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

# The units of a split run, one per process: the NAMEs asked for, else
# every suite that has a test (or every test), in the order they run.
units=
if [ "$split" != none ]; then
  if [ -n "${PIER_TESTS:-}" ]; then
    units=$PIER_TESTS
  elif $wrap "$bin" --list >"$log.raw" 2>&1 </dev/null; then
    if [ "$split" = suite ]; then
      units=$(tr -d '\r' <"$log.raw" | awk -F/ 'NF == 3 && !seen[$1]++ { print $1 }')
    else
      units=$(tr -d '\r' <"$log.raw" | awk -F/ 'NF == 3')
    fi
  else
    echo "run-providers: $bin --list failed:" >&2
    tail -n 20 "$log.raw" >&2
    exit 1
  fi
fi

# run_one PROVIDER [NAME...] - one pier-tests process; its output in $log.
# Sets rc, and n and f to its counts (empty when it gave no summary).
run_one() {
  p=$1
  shift
  : >"$log.raw"
  PIER_BACKEND=$p $wrap "$bin" "$@" >"$log.raw" 2>&1 </dev/null
  rc=$?
  tr -d '\r' <"$log.raw" >"$log"
  # Check's failure lines first (printed as they happen and again in the
  # summary where Check cannot fork: once each), and the figures tests
  # print for scripts/check's summary ("report: ...").
  grep -E ':[EFS]:|^report: ' "$log" | awk '!seen[$0]++' || true
  # The fault suite's totals and failing seeds (scripts/check sums them).
  grep -E '^(fault: |  (injected|rerun): )' "$log" || true
  counts=$(sed -n "s/^pier-tests: provider $p checks \([0-9]*\) failures \([0-9]*\)\$/\1 \2/p" "$log" | tail -n 1)
  n=${counts% *}
  f=${counts#* }
}

status=0
for p in $providers; do
  echo "== provider $p${units:+ (one process per $split)}"
  if [ -z "$units" ]; then
    # $PIER_TESTS unquoted: a list of names.
    run_one "$p" ${PIER_TESTS:-}
    if [ -n "$n" ]; then
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
    continue
  fi
  total_n=0 total_f=0
  for u in $units; do
    t0=$(date +%s)
    run_one "$p" "$u"
    secs=$(( $(date +%s) - t0 ))
    if [ -n "$n" ]; then
      echo "run-providers: provider $p $u checks $n failures $f ($secs s)"
    else
      what=died
      grep -q "^pier-tests: provider $p hung" "$log" && what=hung
      echo "run-providers: provider $p $u $what (exit $rc);" \
           "the end of its output:"
      tail -n 40 "$log"
      n=1 f=1
      [ "$rc" -ne 0 ] || rc=1
    fi
    total_n=$(( total_n + n ))
    total_f=$(( total_f + f ))
    if [ "$rc" -ne 0 ]; then status=1; fi
  done
  echo "pier-tests: provider $p checks $total_n failures $total_f"
  if [ "$total_f" -ne 0 ]; then
    echo "run-providers: provider $p failed" >&2
    status=1
  fi
done
exit $status
