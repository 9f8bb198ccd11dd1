#!/usr/bin/env python3
"""docs_check.py - turn every C block of the docs into a program to compile.

    python3 tools/docs_check.py OUTDIR DOC.md...

`make docs-check` runs this, then compiles each program it wrote with gcc
and with clang (-std=c11 -Wall -Wextra -Werror -pedantic) and links it
against the static library, so that what the docs show is C11 that builds
and names functions that exist.

How a block says what it is
---------------------------
The line just above a block's opening fence may hold a marker, an HTML
comment, which GitHub does not show:

  (no marker)                              A complete program: it defines
                                           main().
  <!-- program: NAME -->                   A complete program that
                                           fragments name.
  <!-- fragment: NAME -->                  Statements: compiled, in braces
                                           of their own, in place of NAME's
                                           statement placeholder.
  <!-- fragment: NAME, file scope -->      Functions, variables or
                                           declarations: compiled in place
                                           of NAME's file-scope placeholder.
  <!-- excerpt: include/futures.h -->      Declarations copied from the
                                           header (or from
                                           include/futures_mpi.h, which
                                           needs MPI to compile)
                                           header that C cannot compile a
                                           second time (a struct definition):
                                           compared with the header, token by
                                           token (comments, FUTURES_API and
                                           FUTURES_PRINTF() aside).

A program that only serves as context may be hidden from the rendered page:
leave its marker open (`<!-- program: NAME`) and close the comment with a
line `-->` just below the block's closing fence.

NAME refers to a program of the same document, before or after it. A
program's placeholders are lines that hold only a comment beginning with
`/* ...`: at column 0, the file-scope one; indented, inside a function, the
statement one (every program that fragments name has one). A fragment
sees every file-scope fragment of its program that comes before it in the
document, as a reader would. Names that a program and its file-scope
fragments define or declare at file scope are referenced from the
statement placeholder, so that none is unused and the linker has to find
each one.

Blocks in other languages carry their own tag (sh, text, python, ...); a
fence with no tag is an error, as is a C block that is neither a complete
program nor marked. Errors name the file and line; compiler messages point
into the Markdown too (#line).

Output: OUTDIR/<doc>-<n>.c, n counting the document's C blocks from 1, one
line per program on stdout, and a summary line on stderr.
"""

import os
import re
import sys

FENCE = re.compile(r'^(\s*)(`{3,}|~{3,})\s*([^`\s]*)\s*$')
MARKER = re.compile(r'^<!--\s*(program|fragment|excerpt):\s*(.*?)\s*(-->)?\s*$')
PLACEHOLDER = re.compile(r'^(\s*)/\* \.\.\..*\*/\s*$')
MAIN = re.compile(r'^int\s+main\s*\(', re.M)
HEADER = 'include/futures.h'
HEADERS = (HEADER, 'include/futures_mpi.h')


class DocError(Exception):
    pass


class Block:
    def __init__(self, doc, line, lang, lines):
        self.doc, self.line, self.lang, self.lines = doc, line, lang, lines
        self.kind, self.name, self.scope, self.hidden = None, None, None, False

    @property
    def where(self):
        return '%s:%d' % (self.doc, self.line)

    @property
    def text(self):
        return '\n'.join(self.lines) + '\n'


def blocks_of(doc):
    """Every fenced block of @doc with its marker; C blocks are classified."""
    lines = open(doc, encoding='utf-8').read().split('\n')
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        marker = MARKER.match(lines[i])
        if marker and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
            raise DocError('%s:%d: marker not followed by a code block'
                           % (doc, i + 1))
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        start, j = i, i + 1
        end = re.compile(r'^\s*' + re.escape(fence[0]) + '{%d,}\\s*$'
                         % len(fence))
        while j < len(lines) and not end.match(lines[j]):
            j += 1
        if j == len(lines):
            raise DocError('%s:%d: code block never closed' % (doc, start + 1))
        if not lang:
            raise DocError('%s:%d: code block without a language: tag it '
                           '(c, sh, text, ...)' % (doc, start + 1))
        body = [l[len(indent):] if l.startswith(indent) else l.lstrip()
                for l in lines[start + 1:j]]
        b = Block(doc, start + 2, lang, body)  # line of the first code line
        prev = MARKER.match(lines[start - 1]) if start > 0 else None
        if prev and lang != 'c':
            raise DocError('%s:%d: marker on a %s block' % (doc, start, lang))
        if lang == 'c':
            classify(b, prev, lines, j)
        out.append(b)
        i = j + 1
    return out


def classify(b, marker, lines, close):
    if not marker:
        if not MAIN.search(strip(b.text)):
            raise DocError('%s: C block is neither a complete program (no '
                           'main()) nor marked; see tools/docs_check.py'
                           % b.where)
        b.kind = 'program'
        return
    kind, arg, closed = marker.groups()
    b.kind = kind
    if kind == 'program':
        if not re.fullmatch(r'[\w-]+(\s*\(.*\))?', arg):
            raise DocError('%s: program marker needs a name' % b.where)
        b.name = re.match(r'[\w-]+', arg).group(0)
        b.hidden = not closed
        if b.hidden and (close + 1 >= len(lines)
                         or lines[close + 1].strip() != '-->'):
            raise DocError('%s: a hidden program ends with a line "-->" just '
                           'below its fence' % b.where)
        if not MAIN.search(strip(b.text)):
            raise DocError('%s: a program defines main()' % b.where)
    elif not closed:
        raise DocError('%s: only a program may be hidden' % b.where)
    elif kind == 'fragment':
        m = re.fullmatch(r'([\w-]+)(,\s*file scope)?', arg)
        if not m:
            raise DocError('%s: write "fragment: NAME" or "fragment: NAME, '
                           'file scope"' % b.where)
        b.name, b.scope = m.group(1), 'file' if m.group(2) else 'body'
    elif arg not in HEADERS:
        raise DocError('%s: only excerpts of %s are checked'
                       % (b.where, ' and '.join(HEADERS)))
    else:
        b.header = arg
    if '-->' in b.text and b.hidden:
        raise DocError('%s: "-->" would end the comment' % b.where)


def strip(text):
    """@text without comments and string or character literals, lines kept."""
    def blank(m):
        s = m.group(0)
        if s.startswith('/'):
            return re.sub(r'[^\n]', ' ', s)
        return s[0] + ' ' * (len(s) - 2) + s[-1]
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|'
                  r"'(?:\\.|[^'\\\n])*'", blank, text, flags=re.S)


def file_scope_names(text):
    """(functions, objects) that @text defines or declares at file scope."""
    funcs, objs, depth, decl = [], [], 0, ''
    for ch in strip(text):
        if depth == 0:
            decl += ch
        if ch == '{':
            depth += 1
        elif ch == '}':
            depth -= 1
        if depth == 0 and (ch == ';' or ch == '}'):
            name_of(decl, funcs, objs)
            decl = ''
    return funcs, objs


def name_of(decl, funcs, objs):
    d = '\n'.join(l for l in decl.split('\n') if not l.lstrip().startswith('#'))
    d = re.sub(r'=.*', '', d, flags=re.S).strip()
    if not d or d.startswith('typedef') or re.fullmatch(r'[};\s]*', d) \
            or re.match(r'(struct|union|enum)(\s+\w+)?\s*(\{|;$)', d):
        return  # a type, or a tag: nothing to link
    pointer = re.match(r'[^(]*\(\s*\*\s*(?:(?:const|volatile)\s+)*(\w+)\s*\)',
                       d)
    if pointer:  # a pointer to a function: an object
        if pointer.group(1) not in objs:
            objs.append(pointer.group(1))
        return
    call = re.match(r'[^(]*?\b(\w+)\s*\(', d, re.S)
    if call:
        name = call.group(1)
        if name != 'main' and name not in funcs:
            funcs.append(name)
        return
    obj = re.search(r'\b(\w+)\s*(\[[^\]]*\])*\s*;?\s*$', d)
    if obj and obj.group(1) not in objs:
        objs.append(obj.group(1))


def placeholders(prog):
    slots = {}
    for k, l in enumerate(prog.lines):
        m = PLACEHOLDER.match(l)
        if m:
            scope = 'body' if m.group(1) else 'file'
            if scope in slots:
                raise DocError('%s:%d: a second %s placeholder'
                               % (prog.doc, prog.line + k, scope))
            slots[scope] = k
    if 'body' not in slots:
        raise DocError('%s: a program that fragments name needs an indented '
                       '"/* ... */" line for their statements' % prog.where)
    if 'file' in slots and slots['file'] > slots['body']:
        raise DocError('%s: the file-scope placeholder comes first'
                       % prog.where)
    return slots


class Writer:
    """Builds one C file, with #line so that messages point into the docs."""

    def __init__(self, path):
        self.path, self.out = path, []

    def emit(self, lines, doc=None, line=None):
        if doc:
            self.out.append('#line %d "%s"' % (line, doc))
        self.out.extend(lines)
        if doc:
            self.out.append('#line %d "%s"' % (len(self.out) + 2, self.path))

    def save(self):
        with open(self.path, 'w', encoding='utf-8') as f:
            f.write('\n'.join(self.out) + '\n')


def uses(funcs, objs, indent):
    """Statements that reference each name: used, and linked."""
    return ([indent + 'docs_check_keep = (void (*)(void))%s;' % n
             for n in funcs] + [indent + '(void)&%s;' % n for n in objs])


def write_wrapped(path, prog, file_frags, frag):
    """@prog with @file_frags at its file-scope slot, @frag at its body."""
    slots = placeholders(prog)
    if file_frags and 'file' not in slots:
        raise DocError('%s: program %s has no file-scope placeholder'
                       % (file_frags[-1].where, prog.name))
    funcs, objs = file_scope_names(prog.text)
    w = Writer(path)
    cut = slots.get('file', slots['body'])
    w.emit(prog.lines[:cut], prog.doc, prog.line)
    w.emit(['static void (*volatile docs_check_keep)(void);'])
    for f in file_frags:
        w.emit(f.lines, f.doc, f.line)
        fu, ob = file_scope_names(f.text)
        funcs += [n for n in fu if n not in funcs]
        objs += [n for n in ob if n not in objs]
    if 'file' in slots:
        w.emit(prog.lines[cut + 1:slots['body']], prog.doc,
               prog.line + cut + 1)
    indent = re.match(r'\s*', prog.lines[slots['body']]).group(0)
    w.emit(uses(funcs, objs, indent))
    if frag:
        w.emit([indent + '{'])
        w.emit([indent + l if l else l for l in frag.lines], frag.doc,
               frag.line)
        w.emit([indent + '}'])
    w.emit(prog.lines[slots['body'] + 1:], prog.doc,
           prog.line + slots['body'] + 1)
    w.save()


def tokens(text):
    return re.findall(r'\w+|\.\.\.|->|[^\s\w]', strip(text))


def check_excerpt(b):
    head = tokens(open(b.header, encoding='utf-8').read())
    head = ' '.join(t for t in head if t != 'FUTURES_API')
    head = re.sub(r' FUTURES_PRINTF \( \d+ , \d+ \)', '', head)
    depth, decl = 0, []
    for t in tokens(b.text):
        decl.append(t)
        depth += (t == '{') - (t == '}')
        if depth == 0 and t == ';':
            if ' %s ' % ' '.join(decl) not in ' %s ' % head:
                raise DocError('%s: not in %s as written: %s'
                               % (b.where, b.header, ' '.join(decl)))
            decl = []


def main():
    outdir, docs = sys.argv[1], sys.argv[2:]
    os.makedirs(outdir, exist_ok=True)
    counts = {'program': 0, 'fragment': 0, 'excerpt': 0, 'other': 0}
    try:
        for doc in docs:
            stem = os.path.splitext(os.path.basename(doc))[0]
            blocks = blocks_of(doc)
            c = [b for b in blocks if b.lang == 'c']
            counts['other'] += len(blocks) - len(c)
            progs = {b.name: b for b in c if b.kind == 'program' and b.name}
            seen = {}  # program name -> its file-scope fragments so far
            for n, b in enumerate(c, 1):
                counts[b.kind] += 1
                path = os.path.join(outdir, '%s-%d.c' % (stem, n))
                if b.kind == 'excerpt':
                    check_excerpt(b)
                    continue
                if b.kind == 'program':
                    if b.name:
                        write_wrapped(path, b, [], None)
                    else:
                        w = Writer(path)
                        w.emit(b.lines, b.doc, b.line)
                        w.save()
                else:
                    prog = progs.get(b.name)
                    if not prog:
                        raise DocError('%s: no program named %s in %s'
                                       % (b.where, b.name, doc))
                    files = seen.setdefault(b.name, [])
                    if b.scope == 'file':
                        files.append(b)
                    write_wrapped(path, prog, files,
                                  b if b.scope == 'body' else None)
                print(path)
    except DocError as e:
        print('docs-check: %s' % e, file=sys.stderr)
        sys.exit(1)
    print('docs-check: %d C blocks: %d programs, %d fragments, %d header '
          'excerpts; %d blocks in other languages'
          % (counts['program'] + counts['fragment'] + counts['excerpt'],
             counts['program'], counts['fragment'], counts['excerpt'],
             counts['other']), file=sys.stderr)


if __name__ == '__main__':
    main()
