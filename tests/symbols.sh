#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/symbols.sh - the library exports only pier_* and the headers are
# clean C99 and C++11:
#   - .libs/libpier.so: every defined dynamic symbol starts with pier_
#     and not pier__ (skipped when there is no shared library);
#   - .libs/libpier.a: every defined global symbol starts with pier_;
#   - include/pier.h (and pier/spi.h, with the build's pier/features.h)
#     compile with cc -std=c99 -pedantic
#     -Wall -Werror; tests/headers-cxx.cc compiles with $CXX -std=c++11
#     (skipped when CXX is empty or not installed).
# In a Windows (mingw) build the library is PE, not ELF: the nm checks are
# skipped there (the headers are still compiled, on the build machine).
# Environment: top_builddir, top_srcdir (set by make check; default .),
# CXX, CC (default cc), NM (default nm).
: "${top_builddir:=.}"
: "${top_srcdir:=.}"
nm=${NM:-nm}
cc=${CC:-cc}
fail=0
tmp=${TMPDIR:-/tmp}/pier-symbols.$$
trap 'rm -f "$tmp" "$tmp.c"' EXIT
trap 'exit 1' INT TERM

bad() { echo "symbols: $*" >&2; fail=1; }

# A Windows build: its Makefile has EXEEXT = .exe.
windows=no
if grep -q '^EXEEXT = \.exe' "$top_builddir/Makefile" 2>/dev/null; then
  windows=yes
fi

# --- shared library: defined dynamic symbols -------------------------------
so=$top_builddir/.libs/libpier.so
if [ "$windows" = yes ]; then
  echo "symbols: Windows build, shared library check skipped"
elif [ -e "$so" ]; then
  # nm -D --defined-only: "addr type name"; ignore absolute/version nodes (A).
  if ! $nm -D --defined-only "$so" >"$tmp" 2>&1; then
    bad "nm -D failed on $so"; cat "$tmp" >&2
  else
    wrong=$(awk '$2 != "A" { print $NF }' "$tmp" | sed 's/@.*//' |
            grep -v '^pier_[^_]' || true)
    [ -n "$wrong" ] && bad "$so exports non-pier_ symbols:" $wrong
    [ -s "$tmp" ] || bad "$so exports nothing"
    echo "symbols: $so: $(awk '$2 != "A"' "$tmp" | wc -l) exported symbols"
  fi
else
  echo "symbols: $so absent, shared check skipped"
fi

# --- static library: defined global symbols --------------------------------
a=$top_builddir/.libs/libpier.a
if [ "$windows" = yes ]; then
  echo "symbols: Windows build, static library check skipped"
elif [ -e "$a" ]; then
  if ! $nm -g --defined-only "$a" >"$tmp" 2>&1; then
    bad "nm -g failed on $a"; cat "$tmp" >&2
  else
    # lines "addr T name"; skip member headers ("x.o:") and blank lines
    wrong=$(awk 'NF >= 2 && $0 !~ /:$/ { print $NF }' "$tmp" |
            grep -v '^pier_' || true)
    [ -n "$wrong" ] && bad "$a defines non-pier_ globals:" $wrong
    echo "symbols: $a: $(awk 'NF >= 2 && $0 !~ /:$/' "$tmp" | wc -l) global symbols"
  fi
else
  echo "symbols: $a absent, static check skipped"
fi

# --- headers as C99 ---------------------------------------------------------
# <pier/features.h> defines every feature macro (0 or 1) and the version.
cat >"$tmp.c" <<'EOF'
#include <pier.h>
#include <pier/spi.h>
#if !defined(PIER_HAVE_TLS) || !defined(PIER_HAVE_LIBEVENT) || \
    !defined(PIER_HAVE_IOCP) || !defined(PIER_HAVE_URING)
#error <pier/features.h> lacks a PIER_HAVE_* macro
#endif
#if (PIER_HAVE_TLS | PIER_HAVE_LIBEVENT | PIER_HAVE_IOCP | PIER_HAVE_URING) > 1
#error a PIER_HAVE_* macro is neither 0 nor 1
#endif
static const char version[] = PIER_VERSION_STRING;
int main(void) { return pier_version() == 0 || version[0] == 0; }
EOF
if $cc -std=c99 -pedantic -Wall -Werror -fsyntax-only -I"$top_builddir/include" \
     -I"$top_srcdir/include" "$top_srcdir/include/pier.h" >"$tmp" 2>&1 &&
   $cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only \
     -I"$top_builddir/include" -I"$top_srcdir/include" "$tmp.c" >>"$tmp" 2>&1; then
  echo "symbols: headers compile as C99"
else
  bad "headers are not clean C99:"; cat "$tmp" >&2
fi

# --- headers as C++11 -------------------------------------------------------
if [ "$windows" = yes ]; then
  echo "symbols: Windows build, C++ check skipped"
elif [ -n "${CXX:-}" ] && command -v "${CXX%% *}" >/dev/null 2>&1; then
  if $CXX -std=c++11 -Wall -Werror -fsyntax-only -I"$top_builddir/include" \
       -I"$top_srcdir/include" \
       "$top_srcdir/tests/headers-cxx.cc" >"$tmp" 2>&1; then
    echo "symbols: headers compile as C++11"
  else
    bad "headers are not clean C++11:"; cat "$tmp" >&2
  fi
else
  echo "symbols: CXX empty or not installed, C++ check skipped"
fi

exit $fail
