#!/usr/bin/env bash
# exports.sh HEADER LIBRARY - the shared library exports exactly the
# functions the public header declares with FUTURES_API, nothing more.
# exports.sh --list HEADER - print those functions, one a line (tests/man.sh
# uses it, so that the pages and the exports count the same functions).
set -eu
public() { sed -n 's/^FUTURES_API[^(]*[ *]\([a-z_][a-z0-9_]*\)(.*/\1/p' "$1" | sort; }
if [ "$1" = --list ]; then
    public "$2"
    exit 0
fi
header=$1 lib=$2
want=$(public "$header")
have=$(nm -D --defined-only "$lib" | awk '$2 == "T" { print $3 }' | sort)
if [ "$want" != "$have" ]; then
    echo "exports differ from the header (< header, > library):"
    diff <(echo "$want") <(echo "$have") 2>/dev/null || \
        { echo "header:"; echo "$want"; echo "library:"; echo "$have"; }
    exit 1
fi
echo "exports: $(echo "$want" | wc -l) passed, 0 failed (functions exported, each declared in $header)"
