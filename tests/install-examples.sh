#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/install-examples.sh - every example built the way a user of the
# installed package builds it: examples/*.c compiled with CC and nothing
# but `pkg-config --cflags --libs pier` (plus openssl for tls-echo, which
# calls OpenSSL itself, and the thread library on POSIX), then some of
# them run with --selftest.  In TESTS; scripts/check runs it against its
# staged native install and the Windows one (under Wine).
#
#   tests/install-examples.sh [--installed] [--static] [--cc CC]
#                             [--out DIR] [-- RUN...]
#
#   --installed  pkg-config, as the environment sets it up, finds the
#                installed pier; without it, $top_builddir is first
#                installed into a temporary DESTDIR (make install), and
#                pkg-config and the selftests are pointed there
#   --static     pkg-config --static (the .pc's private libraries too);
#                chosen by itself when the staged install has no shared
#                library
#   --cc CC      the compiler (default $CC, else cc)
#   --out DIR    where the programs go (default: a temporary directory)
#   RUN...       command prefix for the selftests, e.g. "wine" or
#                "env LD_LIBRARY_PATH=..." (set by itself when staging)
# Environment:
#   top_builddir, top_srcdir   (set by make check; default .)
#   PIER_INSTALL_SELFTESTS     the examples whose --selftest runs
#                              (default "connect-data tls-echo"; "all":
#                              every one tests/examples.sh runs)
#
# Output: "installed-example: NAME built", "installed-example: NAME
# selftest ok", a failure's compiler or selftest output, and at the end
#   install-examples: N built with pkg-config, M selftests ok
# Exits 0 when every build and selftest passed, 1 otherwise, 77 (skipped,
# with the reason) without pkg-config or a compiler.
: "${top_builddir:=.}" "${top_srcdir:=.}"
installed=0 static='' cc=${CC:-cc} out=''
while [ $# -gt 0 ]; do
  case $1 in
    --installed) installed=1 ;;
    --static) static=--static ;;
    --cc) cc=$2; shift ;;
    --out) out=$2; shift ;;
    --) shift; break ;;
    *) echo "usage: tests/install-examples.sh [--installed] [--static]" \
            "[--cc CC] [--out DIR] [-- RUN...]" >&2
       exit 2 ;;
  esac
  shift
done
# What is left, "$@", is the selftests' command prefix.

skip() { echo "install-examples: skipped: $*"; exit 77; }
command -v pkg-config >/dev/null 2>&1 || skip "no pkg-config"
set -- $cc "$@" # the compiler's first word, checked here, then dropped
command -v "$1" >/dev/null 2>&1 || skip "no compiler $1"
shift
if command -v timeout >/dev/null 2>&1; then limiter="timeout 120"
else limiter=; fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pier-install-examples.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
[ -n "$out" ] || out=$tmp/examples
mkdir -p "$out"
log=$tmp/log

# stage - make install into $tmp/stage and point pkg-config and the
# selftests at it: the sysroot prefixes the .pc's -I/-L paths, so nothing
# of the source or build tree is used.
stage() {
  if ! make -C "$top_builddir" install DESTDIR="$tmp/stage" >"$log" 2>&1; then
    echo "install-examples: make install DESTDIR=... failed:"
    tail -n 30 "$log"
    exit 1
  fi
  pc=$(find "$tmp/stage" -name pier.pc | head -n 1)
  [ -n "$pc" ] || { echo "install-examples: no pier.pc installed"; exit 1; }
  PKG_CONFIG_SYSROOT_DIR=$tmp/stage
  PKG_CONFIG_PATH=$(dirname "$pc")
  export PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH
  libdir=$(dirname "$(dirname "$pc")")
  shared=
  for f in "$libdir"/libpier.so* "$libdir"/libpier*.dylib; do
    [ -e "$f" ] && shared=$f
  done
  [ -n "$shared" ] || static=--static
  # The programs carry no rpath: the staged library comes first.
  [ $# -gt 0 ] || set -- env LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  run="$*"
}

run="$*"
[ "$installed" = 1 ] || stage "$@"

flags=$(pkg-config $static --cflags --libs pier 2>"$log") || {
  echo "install-examples: pkg-config $static --cflags --libs pier failed:"
  cat "$log"
  exit 1
}
echo "pkg-config $static --cflags --libs pier: $flags"

status=0 built=0 passed=0
for src in "$top_srcdir"/examples/*.c; do
  name=$(basename "$src" .c)
  extra=
  if [ "$name" = tls-echo ]; then
    if ! pkg-config --exists openssl 2>/dev/null; then
      echo "installed-example: $name skipped (no openssl)"
      continue
    fi
    extra=$(pkg-config $static --cflags --libs openssl)
  fi
  case $cc in *mingw*) ;; *) extra="$extra -lpthread" ;; esac
  # $cc, $flags and $extra unquoted: lists of words.
  if $cc -O2 -Wall "$src" $flags $extra -o "$out/$name" >"$log" 2>&1; then
    echo "installed-example: $name built"
    built=$((built + 1))
  else
    echo "installed-example: $name FAILED to build:"
    cat "$log"
    status=1
  fi
done

want=${PIER_INSTALL_SELFTESTS:-"connect-data tls-echo"}
if [ "$want" = all ]; then
  want=$(sed -n 's/^examples=${PIER_EXAMPLES:-"\(.*\)"}$/\1/p' \
           "$top_srcdir/tests/examples.sh")
fi
for name in $want; do
  exe=$out/$name
  [ -e "$exe" ] || exe=$exe.exe
  [ -e "$exe" ] || continue
  # $limiter and $run unquoted: commands with arguments.
  if $limiter $run "$exe" --selftest >"$log" 2>&1 </dev/null; then
    echo "installed-example: $name selftest ok"
    passed=$((passed + 1))
  else
    echo "installed-example: $name selftest FAILED (exit $?):"
    tr -d '\r' <"$log" | tail -n 30
    status=1
  fi
done
echo "install-examples: $built built with pkg-config, $passed selftests ok"
exit $status
