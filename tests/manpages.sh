#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/manpages.sh - the man pages (doc/mkman, doc/doxygen.am) are there
# for every public function and say what they must (automake TESTS):
#   - every pier_* function the library exports (nm -D of .libs/libpier.so,
#     as tests/symbols.sh reads it; without one, those declared in the
#     headers), less those of <pier/spi.h>, and every function declared in
#     pier.h, pier/errno.h and pier/tls.h, has doc/man/man3/NAME.3 with the
#     sections NAME, SYNOPSIS (naming it), DESCRIPTION, RETURN VALUE,
#     ERRORS (documented), THREADS and SEE ALSO;
#   - the main calls have an EXAMPLE too;
#   - every PIER_E* code under ERRORS is one of <pier/errno.h>;
#   - pier(7) and pier_tls(3) exist;
#   - every page renders with groff -man -Tutf8 -ww without a warning;
#   - man finds them by name: MANPATH=doc/man man -w pier_accept, pier;
#   - the HTML reference (doc/api/html) has every header, tls.h too, and
#     the guide, semantics, providers and protocol documents as pages.
# Skipped (exit 77) when the build has no man pages (configure
# --disable-doc, or no doxygen/perl).
# Environment: top_builddir, top_srcdir (set by make check; default .),
# NM (default nm).
: "${top_builddir:=.}"
: "${top_srcdir:=.}"
nm=${NM:-nm}
man3=$top_builddir/doc/man/man3
man7=$top_builddir/doc/man/man7
inc=$top_srcdir/include
fail=0
tmp=${TMPDIR:-/tmp}/pier-manpages.$$
trap 'rm -f "$tmp" "$tmp".*' EXIT
trap 'exit 1' INT TERM

bad() { echo "manpages: $*" >&2; fail=1; }

if [ ! -d "$man3" ]; then
  echo "manpages: no $man3 (built without the API reference), skipped"
  exit 77
fi

main_calls="pier_loop_new pier_loop_run pier_socket_open pier_bind pier_listen
  pier_accept pier_connect pier_recv pier_send pier_close pier_cancel
  pier_event_select pier_poll pier_resolve pier_shutdown pier_timer_start"

# --- the functions -------------------------------------------------------------
# Declared in the three headers: "name(" after a return type at line start.
sed -n 's/^[a-z][a-z0-9_ *]*[ *]\(pier_[a-z0-9][a-z0-9_]*\)(.*/\1/p' \
  "$inc/pier.h" "$inc/pier/errno.h" "$inc/pier/tls.h" >"$tmp.decl"
# Exported by the shared library, less the provider interface.
so=$top_builddir/.libs/libpier.so
if [ -e "$so" ] && $nm -D --defined-only "$so" >"$tmp.nm" 2>/dev/null; then
  awk '$2 == "T" { print $NF }' "$tmp.nm" | sed 's/@.*//' |
    grep '^pier_[^_]' | while read -r f; do
      grep -q "\\b$f(" "$inc/pier/spi.h" || echo "$f"
    done >"$tmp.exp"
  echo "manpages: $(wc -l <"$tmp.exp" | tr -d ' ') functions exported" \
       "(less <pier/spi.h>'s)"
else
  : >"$tmp.exp"
  echo "manpages: no $so, the headers' functions only"
fi
sort -u "$tmp.decl" "$tmp.exp" >"$tmp.all"
[ -s "$tmp.all" ] || bad "no functions found in $inc"

# The PIER_E* codes.
sed -n 's/^ *XX(\([A-Z_0-9]*\),.*/PIER_\1/p' "$inc/pier/errno.h" >"$tmp.codes"

n=0
while read -r f; do
  n=$((n + 1))
  p=$man3/$f.3
  if [ ! -f "$p" ]; then bad "$f has no man page ($p)"; continue; fi
  for sec in NAME SYNOPSIS DESCRIPTION "RETURN VALUE" ERRORS THREADS \
             "SEE ALSO"; do
    grep -q "^\\.SH $sec\$" "$p" || bad "$f.3 has no $sec section"
  done
  sed -n '/^\.SH SYNOPSIS$/,/^\.SH /p' "$p" | grep -q "[ *]$f(" ||
    bad "$f.3: its SYNOPSIS does not declare $f"
  sed -n '/^\.SH ERRORS$/,/^\.SH /p' "$p" >"$tmp.err"
  grep -q '^Not documented' "$tmp.err" &&
    bad "$f.3: ERRORS not documented (add \"Errors:\" to its header comment)"
  for c in $(sed 's/\\-/-/g' "$tmp.err" | grep -o 'PIER_E[A-Z_0-9]*' | sort -u); do
    case $c in PIER_E) continue ;; esac
    grep -qx "$c" "$tmp.codes" || bad "$f.3: ERRORS names $c, no such code"
  done
done <"$tmp.all"
echo "manpages: $n function pages with NAME, SYNOPSIS, DESCRIPTION," \
     "RETURN VALUE, ERRORS, THREADS, SEE ALSO"

for f in $main_calls; do
  grep -q '^\.SH EXAMPLE$' "$man3/$f.3" 2>/dev/null ||
    bad "$f.3 has no EXAMPLE"
done
echo "manpages: the main calls have an EXAMPLE"

[ -f "$man7/pier.7" ] || bad "no pier(7) ($man7/pier.7)"
[ -f "$man3/pier_tls.3" ] || bad "no pier_tls(3)"

# --- rendering ------------------------------------------------------------------
if command -v groff >/dev/null 2>&1; then
  pages=0
  for p in "$man3"/*.3 "$man7"/*.7; do
    [ -f "$p" ] || continue
    pages=$((pages + 1))
    if ! LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$p" >"$tmp.out" 2>&1 ||
       [ -s "$tmp.out" ]; then
      bad "${p##*/} does not render cleanly:"; sed 's/^/  /' "$tmp.out" >&2
    fi
  done
  echo "manpages: $pages pages render with groff -man -ww, no warning"
else
  echo "manpages: no groff, rendering not checked"
fi
# --- man finds them -------------------------------------------------------------
if command -v man >/dev/null 2>&1; then
  for name in pier_accept pier_tls pier; do
    w=$(MANPATH="$top_builddir/doc/man" man -w "$name" 2>/dev/null)
    case $w in
      */doc/man/man[37]/"$name".[37]) ;;
      *) bad "man -w $name with MANPATH=doc/man finds '${w:-nothing}'" ;;
    esac
  done
  echo "manpages: man finds pier_accept(3), pier_tls(3) and pier(7) by name"
else
  echo "manpages: no man, lookup by name not checked"
fi

# --- the HTML reference ---------------------------------------------------------
html=$top_builddir/doc/api/html
for page in pier_8h errno_8h tls_8h spi_8h md_guide md_semantics \
            md_providers md_protocol index; do
  [ -f "$html/$page.html" ] || bad "the HTML reference has no $page.html"
done
grep -q 'href="md_guide.html"' "$html/index.html" 2>/dev/null ||
  bad "the HTML main page does not link the guide"
echo "manpages: the HTML reference has the four headers and the four documents"
exit $fail
