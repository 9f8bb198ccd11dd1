#!/usr/bin/env bash
# man.sh "HEADER..." MANDIR OUTDIR - the manual pages installed under MANDIR
# cover the headers (one word each, futures.h and, where it is built,
# futures_mpi.h) and render cleanly.
#
# Each page must render with `man -l` (its text goes to OUTDIR) with nothing
# on stderr, and pass groff with every warning turned on (-ww) without one.
# A function page must show its prototype as its header writes it; each
# header's overview (futures(7), futures_mpi(7)) must list its functions. Every function that tests/exports.sh counts as
# public must have a page, and no page may be left for a function that is
# gone. The last line is "man-check: N passed, M failed" (pages, and
# functions without one); exit 1 if M > 0.
set -u
headers=$1 mandir=$2 out=$3
for tool in man groff; do
    command -v $tool > /dev/null || {
        echo "man-check: no $tool here; install man-db and groff-base (.ci/run does)"
        exit 1; }
done
# Slim Debian images leave /usr/share/groff out, macros included.
if [ -n "$(printf '.TH T 1\n' | groff -man -Tutf8 -ww -z 2>&1)" ]; then
    echo "man-check: groff cannot read a page: are its man macros installed?"
    printf '.TH T 1\n' | groff -man -Tutf8 -ww -z
    exit 1
fi
rm -rf "$out" && mkdir -p "$out"
pass=0 fail=0 ok=1
bad() { echo "man-check: $1: $2"; ok=0; }

# The prototype of function $1 on one line, as the header declares it,
# without FUTURES_API and attribute macros.
proto() {
    awk -v name="$1" '
        /^FUTURES_API/ { buf = ""; on = 1 }
        on { buf = buf " " $0
             if ($0 ~ /;/) { on = 0; if (buf ~ ("[ *]" name "\\(")) print buf } }
    ' $headers | sed -e 's/FUTURES_API //' -e 's/ *FUTURES_PRINTF([^)]*)//' |
        tr -s ' \t' '  ' | sed -e 's/^ //' -e 's/( /(/g'
}

# Text as one line with single spaces, so that line breaks do not matter.
flat() { tr -s ' \n' '  ' < "$1"; }

functions=$(for h in $headers; do tests/exports.sh --list "$h"; done)
for f in $functions; do
    [ -f "$mandir/man3/$f.3" ] && continue
    bad "$f" "no page $mandir/man3/$f.3"
    fail=$((fail + 1))
done

for page in "$mandir"/man3/*.3 "$mandir"/man7/*.7; do
    [ -f "$page" ] || continue
    name=$(basename "$page") ok=1
    MANWIDTH=80 man -l "$page" > "$out/$name.txt" 2> "$out/$name.err"
    [ $? -eq 0 ] || bad "$name" "man -l failed"
    [ -s "$out/$name.err" ] && bad "$name" "man -l said: $(head -3 "$out/$name.err")"
    [ -s "$out/$name.txt" ] || bad "$name" "man -l rendered nothing"
    groff -man -Tutf8 -ww -z "$page" > "$out/$name.warn" 2>&1
    [ -s "$out/$name.warn" ] && bad "$name" "groff warns: $(head -3 "$out/$name.warn")"
    case $name in
    *.3)
        fn=${name%.3}
        if ! grep -qx "$fn" <<< "$functions"; then
            bad "$name" "no public function $fn in $headers"
        elif ! flat "$out/$name.txt" | grep -qF -- "$(proto "$fn")"; then
            bad "$name" "the rendered page lacks the prototype: $(proto "$fn")"
        fi ;;
    *.7)
        h=include/${name%.7}.h
        if [[ " $headers " != *" $h "* ]]; then
            bad "$name" "no header $h among $headers"
        fi
        for f in $(tests/exports.sh --list "$h" 2>/dev/null); do
            flat "$out/$name.txt" | grep -qF -- "$f(3)" ||
                bad "$name" "does not list $f(3)"
        done ;;
    esac
    if [ $ok -eq 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
if [ $pass -eq 0 ]; then bad "$mandir" "no page passed"; fail=$((fail + 1)); fi
echo "man-check: $pass passed, $fail failed"
[ $fail -eq 0 ]
