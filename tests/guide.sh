#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/guide.sh - the guide is a program that compiles (automake TESTS):
#   1. every ```c block of doc/guide.md is a quote, announced by the line
#      before it, "<!-- quote FILE NAME -->", and is exactly the lines of
#      FILE between "/* guide: NAME */" and the next "/* guide: end */";
#      every such region exists once;
#   2. the guide's contents list names its "## N. Title" sections, in order;
#   3. examples/guide-server.c, examples/guide-client.c and README.md's
#      "A short example" compile with cc -Wall -Wextra -Werror;
#   4. the two programs run: guide-server --connections 3 on 127.0.0.1,
#      then guide-client against it, once per compiled provider, each
#      bounded by a timeout; both must exit 0.
# Environment: top_srcdir, top_builddir (set by make check; default .),
# CC (default cc; the compile check is for the build machine),
# PIER_TESTS_BIN (lists the providers with --providers; default
# $top_builddir/tests/pier-tests), PIER_TEST_WRAPPER (e.g. "wine"),
# PIER_GUIDE_TIMEOUT (seconds per program, default 30).
: "${top_srcdir:=.}"
: "${top_builddir:=.}"
cc=${CC:-cc}
wrap=${PIER_TEST_WRAPPER:-}
limit=${PIER_GUIDE_TIMEOUT:-30}
bin=${PIER_TESTS_BIN:-$top_builddir/tests/pier-tests}
guide=$top_srcdir/doc/guide.md
fail=0
tmp=${TMPDIR:-/tmp}/pier-guide.$$
mkdir -p "$tmp" || exit 1
server_pid=
trap 'test -n "$server_pid" && kill "$server_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

bad() { echo "guide: $*" >&2; fail=1; }

# --- 1. quotes ----------------------------------------------------------------
# The region NAME of FILE, without its marker lines, on stdout; status 1 if
# FILE has no such region or has it twice.
region() {
  awk -v name="$2" '
    $0 ~ "^[ \t]*/\\* guide: " name " \\*/[ \t]*$" { inside = 1; n++; next }
    inside && /^[ \t]*\/\* guide: end \*\/[ \t]*$/ { inside = 0; next }
    inside { print }
    END { exit (n == 1 && !inside) ? 0 : 1 }' "$1"
}

# Split the guide: quotes into $tmp/q.N (first line "FILE NAME"), and
# complain about ```c blocks with no quote line before them.
awk -v dir="$tmp" '
  /^<!-- quote [^ ]+ [^ ]+ -->$/ { want = $3 " " $4; line = NR; next }
  /^```c[ \t]*$/ {
    if (want == "") { print "unquoted ```c block at line " NR > "/dev/stderr"; bad = 1 }
    n++; f = dir "/q." n; print want > f; inblock = 1; want = ""; next }
  inblock && /^```[ \t]*$/ { inblock = 0; close(f); next }
  inblock { print > f; next }
  { if (want != "") { print "quote line " line " not followed by ```c" > "/dev/stderr"; bad = 1 }
    want = "" }
  END { print n + 0 > (dir "/count"); exit bad }' "$guide" || fail=1

quotes=0
for q in "$tmp"/q.*; do
  [ -e "$q" ] || continue
  read -r file name <"$q"
  [ -n "$file" ] || continue
  quotes=$((quotes + 1))
  if ! region "$top_srcdir/$file" "$name" >"$tmp/want"; then
    bad "$file has no single region \"guide: $name\""
    continue
  fi
  sed 1d "$q" >"$tmp/got"
  if ! cmp -s "$tmp/want" "$tmp/got"; then
    bad "the guide's quote of $file $name differs from the file:"
    diff -u "$tmp/want" "$tmp/got" | sed 's/^/  /' >&2
  fi
done
[ "$quotes" -gt 0 ] || bad "no quotes found in $guide"
echo "guide: $quotes quoted blocks checked against the programs"

# --- 2. contents --------------------------------------------------------------
sed -n '/^Contents$/,/^## /s/^\([0-9][0-9]*\)\. \(.*\)$/\1. \2/p' "$guide" \
  >"$tmp/contents"
sed -n 's/^## \([0-9][0-9]*\. .*\)$/\1/p' "$guide" >"$tmp/sections"
if cmp -s "$tmp/contents" "$tmp/sections"; then
  echo "guide: contents list the $(wc -l <"$tmp/sections" | tr -d ' ') sections"
else
  bad "contents and section headings differ:"
  diff -u "$tmp/contents" "$tmp/sections" | sed 's/^/  /' >&2
fi

# --- 3. compiles without warnings ---------------------------------------------
awk '/^## A short example/ { f = 1 } f && /^```c/ { g = 1; next }
     g && /^```/ { exit } g' "$top_srcdir/README.md" >"$tmp/readme.c"
[ -s "$tmp/readme.c" ] || bad "README.md has no \"A short example\" C block"
for src in "$top_srcdir/examples/guide-server.c" \
           "$top_srcdir/examples/guide-client.c" "$tmp/readme.c"; do
  if $cc -Wall -Wextra -Werror -I"$top_builddir/include" -I"$top_srcdir/include" -c "$src" \
       -o "$tmp/out.o" >"$tmp/cc.log" 2>&1; then
    echo "guide: ${src##*/} compiles with -Wall -Wextra -Werror"
  else
    bad "${src##*/} does not compile cleanly:"; cat "$tmp/cc.log" >&2
  fi
done

# --- 4. the pair runs on loopback ---------------------------------------------
exe() {
  e=$top_builddir/examples/$1
  if [ ! -e "$e" ] && [ -e "$e.exe" ]; then e=$e.exe; fi
  echo "$e"
}
server=$(exe guide-server)
client=$(exe guide-client)
windows=no
grep -q '^EXEEXT = \.exe' "$top_builddir/Makefile" 2>/dev/null && windows=yes
if command -v timeout >/dev/null 2>&1; then limiter="timeout $limit"
else limiter=; fi

# Start the server in the background and wait (10 s at most) for its port.
start_server() {
  : >"$tmp/server.out"
  if [ "$1" = default ]; then
    $limiter $wrap "$server" --connections 3 >"$tmp/server.out" 2>&1 </dev/null &
  else
    PIER_BACKEND=$1 $limiter $wrap "$server" --connections 3 \
      >"$tmp/server.out" 2>&1 </dev/null &
  fi
  server_pid=$!
  port=
  i=0
  while [ $i -lt 100 ] && [ -z "$port" ]; do
    port=$(tr -d '\r' <"$tmp/server.out" |
           sed -n 's/^listening on 127\.0\.0\.1 port \([0-9][0-9]*\)$/\1/p')
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1 2>/dev/null || sleep 1
    i=$((i + 1))
  done
}

if [ "$windows" = yes ] && [ -z "$wrap" ]; then
  echo "guide: Windows build without PIER_TEST_WRAPPER, run skipped"
elif [ ! -e "$server" ] || [ ! -e "$client" ]; then
  bad "guide-server or guide-client not built in $top_builddir/examples"
else
  providers=
  if [ ! -e "$bin" ] && [ -e "$bin.exe" ]; then bin=$bin.exe; fi
  if [ -e "$bin" ]; then
    providers=$($wrap "$bin" --providers 2>/dev/null </dev/null | tr -d '\r')
  fi
  [ -n "$providers" ] || providers=default
  for p in $providers; do
    start_server "$p"
    if [ -z "$port" ]; then
      bad "guide-server on $p printed no port:"; sed 's/^/  /' "$tmp/server.out" >&2
      kill "$server_pid" 2>/dev/null; wait "$server_pid"; server_pid=
      continue
    fi
    if [ "$p" = default ]; then
      $limiter $wrap "$client" --port "$port" >"$tmp/client.out" 2>&1 </dev/null
    else
      PIER_BACKEND=$p $limiter $wrap "$client" --port "$port" \
        >"$tmp/client.out" 2>&1 </dev/null
    fi
    crc=$?
    wait "$server_pid"; src=$?; server_pid=
    if [ $crc -eq 0 ] && [ $src -eq 0 ]; then
      echo "guide: guide-client and guide-server on $p: ok"
    else
      bad "on $p: guide-client exit $crc, guide-server exit $src:"
      tr -d '\r' <"$tmp/client.out" | sed 's/^/  client: /' >&2
      tr -d '\r' <"$tmp/server.out" | sed 's/^/  server: /' >&2
    fi
  done
fi
exit $fail
