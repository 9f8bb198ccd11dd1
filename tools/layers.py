#!/usr/bin/env python3
"""Checks that the library's object files form no dependency cycle.

Usage: tools/layers.py build/obj/*.o

Reads each object's defined and undefined symbols with nm, links every
undefined symbol to the object that defines it, and prints one line per
object with the objects it calls. Exits 1, naming the files, if any
objects depend on each other through any chain of calls: lib/internal.h
says that calls go down the layers only, and up only through function
pointers, which nm cannot see.
"""
import os
import subprocess
import sys


def symbols(path):
    """The global symbols @path defines, and those it needs."""
    out = subprocess.run(["nm", path], capture_output=True, text=True,
                         check=True).stdout
    defined, needed = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            needed.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBRCV":
            defined.add(parts[2])
    return defined, needed


def graph(paths):
    defs, needs = {}, {}
    for path in sorted(paths):
        name = os.path.basename(path)[:-2]
        d, n = symbols(path)
        needs[name] = n
        for s in d:
            defs[s] = name
    return {a: sorted({defs[s] for s in n if s in defs and defs[s] != a})
            for a, n in needs.items()}


def cycles(edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    edges = graph(sys.argv[1:])
    for a in sorted(edges):
        print(f"{a}: -> {', '.join(edges[a]) or '-'}")
    found = cycles(edges)
    for comp in found:
        print("cycle:", " ".join(comp))
    print(f"layers: {len(edges)} objects, {sum(map(len, found))} in cycles")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    main()
