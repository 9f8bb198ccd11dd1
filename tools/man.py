#!/usr/bin/env python3
"""man.py - write the manual pages from the public header's doc comments.

    man.py HEADER OUTDIR --version V [--date YYYY-MM-DD]
    man.py HEADER --list

Writes OUTDIR/man3/NAME.3 for every function the header declares with
FUTURES_API, and an overview in OUTDIR/man7 named after the header:
futures.7 for include/futures.h, futures_mpi.7 for include/futures_mpi.h
(whose pages name the pkg-config package futures-mpi). --list prints the
pages' paths relative to OUTDIR instead (for make uninstall). The date
defaults to SOURCE_DATE_EPOCH, else the header's modification time, so that
the same header always gives the same pages.

The header's comments follow one pattern, which this script relies on:

    /**
     * name() - a one-line summary.
     *
     * Paragraphs, @param for a parameter, other_function() for a reference.
     * Ownership: ... Errors: ... (labelled clauses, anywhere in a line)
     *
     *     indented lines are code
     */
    FUTURES_API type name(params);

A FUTURES_API declaration without such a comment right above it is an
error: the script names it and exits 1, so no function goes without a page.
Several declarations under one comment all get pages: full copies rather
than .so links, since `man -l` resolves a .so relative to the current
directory and would fail on an installed link page.
"""
import argparse
import os
import re
import sys
import time

PROG = "man.py"
MANUAL = "libfutures"  # short, so that long page names fit the header line

# What the pages say of the header they come from (set_header()).
HEADER = "include/futures.h"
OVERVIEW = "futures"  # the section 7 page: the header's name
PACKAGE = "futures"   # its pkg-config package


def set_header(path):
    """futures_mpi.h: the overview futures_mpi(7), package futures-mpi."""
    global HEADER, OVERVIEW, PACKAGE
    HEADER = "include/" + os.path.basename(path)
    OVERVIEW = os.path.basename(path)[:-len(".h")]
    PACKAGE = OVERVIEW.replace("_", "-")

# Labelled clauses, and the page sections they become.
LABELS = {"Ownership": "OWNERSHIP", "Errors": "ERRORS",
          "Thread safety": "THREAD SAFETY"}
LABEL_RE = re.compile(r"^(%s):\s*" % "|".join(LABELS))

# Macros that are attributes, not part of what a caller writes.
ATTRIBUTES_RE = re.compile(r"\s*\bFUTURES_PRINTF\s*\([^)]*\)")
SYNOPSIS_WIDTH = 72  # columns of a SYNOPSIS line: 80 less the indent
SUMMARY_MAX = 72  # characters of a NAME line's summary before it is cut
EM_DASH = "\x01"  # stands for an em dash until roff escapes are in


class HeaderError(Exception):
    pass


# ------------------------------------------------------------------ parsing --

def strip_conditionals(text):
    """Blanks out every #if block but the include guard, keeping line
    numbers: those blocks only choose between compilers and languages
    (FUTURES_API's and FUTURES_PRINTF's definitions, extern "C")."""
    out, depth, guard_seen = [], 0, False
    for line in text.split("\n"):
        word = line.split()[0] if line.split() else ""
        if word in ("#if", "#ifdef", "#ifndef"):
            if not guard_seen and word == "#ifndef" and depth == 0:
                guard_seen = True  # the include guard: keep what it holds
                out.append("")
                continue
            depth += 1
            out.append("")
            continue
        if word == "#endif":
            depth = max(depth - 1, 0)
            out.append("")
            continue
        out.append("" if depth else line)
    return "\n".join(out)


def scan(text):
    """Splits the header into comments, preprocessor lines and statements
    (up to a ';' outside braces), each a dict with its kind, text and line.
    A comment on the same line after a statement or #define is its
    trailing comment."""
    items, pos, n = [], 0, len(text)

    def line_at(p):
        return text.count("\n", 0, p) + 1

    def trailing(p):
        """A /* */ comment that starts on the line p is on, after p."""
        m = re.compile(r"[ \t]*(/\*.*?\*/)").match(text, p)
        if m and "\n" not in text[p:m.start(1)]:
            return m.group(1), m.end()
        return None, p

    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            return items
        start = pos
        if text.startswith("/*", pos):
            end = text.find("*/", pos + 2)
            if end < 0:
                raise HeaderError("%d: unterminated comment" % line_at(pos))
            pos = end + 2
            items.append({"kind": "comment", "text": text[start:pos],
                          "line": line_at(start)})
        elif text[pos] == "#":
            end = text.find("\n", pos)
            end = n if end < 0 else end
            body = text[start:end]
            com = None
            m = re.search(r"/\*.*?\*/", body)
            if m:
                com, body = m.group(0), body[:m.start()]
            pos = end
            items.append({"kind": "pp", "text": body.strip(),
                          "comment": com, "line": line_at(start)})
        else:
            depth = 0
            while pos < n:
                c = text[pos]
                if text.startswith("/*", pos):
                    pos = text.find("*/", pos + 2) + 2
                    continue
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                elif c == ";" and depth == 0:
                    break
                pos += 1
            pos += 1
            body = text[start:pos]
            com, pos = trailing(pos)
            items.append({"kind": "stmt", "text": body, "comment": com,
                          "line": line_at(start)})


def comment_lines(comment):
    """The lines of a /* */ or /** */ comment without its frame: the
    leading ' * ' goes, further indentation stays (it marks code)."""
    body = comment[3:] if comment.startswith("/**") else comment[2:]
    body = body[:-2]
    lines = []
    for raw in body.split("\n"):
        s = raw.strip()
        if s.startswith("*"):
            s = raw.lstrip()[1:]
            s = s[1:] if s.startswith(" ") else s
        else:
            s = raw.strip()
        lines.append(s.rstrip())
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def comment_text(comment):
    """A plain comment as one line of prose."""
    return " ".join(l.strip() for l in comment_lines(comment) if l.strip())


def blocks(lines):
    """Groups comment lines into paragraphs ('text', [lines]) and code
    blocks ('code', [lines]): code is indented four spaces or more."""
    out = []
    for line in lines:
        if not line.strip():
            out.append(None)
            continue
        kind = "code" if line.startswith("    ") else "text"
        if out and out[-1] is not None and out[-1][0] == kind:
            out[-1][1].append(line if kind == "code" else line.strip())
        else:
            out.append((kind, [line if kind == "code" else line.strip()]))
    out = [b for b in out if b is not None]
    for kind, ls in out:
        if kind == "code":
            indent = min(len(l) - len(l.lstrip()) for l in ls)
            ls[:] = [l[indent:] for l in ls]
    return out


def sentences(lines):
    """Splits a paragraph into sentences: at '.', '?' or '!' followed by
    white space, outside parentheses and `code`. Each comes with whether it
    ended at the end of a line of the header."""
    text = "\n".join(lines)
    out, depth, code, start = [], 0, False, 0
    for i, c in enumerate(text):
        if c == "`":
            code = not code
        elif code:
            continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth = max(depth - 1, 0)
        elif c in ".?!" and depth == 0 and \
                (i + 1 == len(text) or text[i + 1] in " \n"):
            nxt = text[i + 1] if i + 1 < len(text) else "\n"
            out.append((" ".join(text[start:i + 1].split()), nxt == "\n"))
            start = i + 1
    rest = " ".join(text[start:].split())
    if rest:
        out.append((rest, True))
    return out


def param_names(params):
    """The parameter names of a prototype's parameter list."""
    names, depth, cur = [], 0, ""
    parts = []
    for c in params:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    for p in parts:
        p = p.strip()
        m = re.search(r"\(\s*\*\s*(\w+)\s*\)", p)
        if m:
            names.append(m.group(1))
            continue
        m = re.search(r"(\w+)\s*(\[[^\]]*\])?$", p)
        if m and p != "void" and m.group(1) not in ("void", "..."):
            if len(p.split()) > 1 or "*" in p:
                names.append(m.group(1))
    return names


def parse_function(stmt):
    """Name, one-line prototype and parameter names of a declaration."""
    text = stmt["text"]
    proto = " ".join(text.split())
    proto = re.sub(r"^FUTURES_API\s+", "", proto)
    proto = ATTRIBUTES_RE.sub("", proto)
    proto = re.sub(r"\(\s+", "(", proto)
    proto = re.sub(r"\s+\)", ")", proto)
    proto = re.sub(r"\s+;", ";", proto)
    m = re.match(r"(.*?[\s*])(\w+)\((.*)\);$", proto)
    if not m:
        raise HeaderError("%d: cannot read the declaration %r"
                          % (stmt["line"], proto))
    return {"name": m.group(2), "proto": proto, "ret": m.group(1).strip(),
            "params": param_names(m.group(3)), "line": stmt["line"]}


def parse_type(stmt, comment):
    """A typedef or struct definition: the names it defines, its text for a
    SYNOPSIS, and its comment and its fields' comments."""
    text = stmt["text"].strip()
    fields = []
    m = re.match(r"struct\s+(\w+)\s*\{(.*)\}\s*;$", text, re.S)
    if m:
        name = "struct " + m.group(1)
        lines = ["struct %s {" % m.group(1)]
        for fl in m.group(2).split("\n"):
            fm = re.match(r"\s*(.*?;)\s*(/\*.*\*/)?\s*$", fl)
            if not fm or not fm.group(1):
                continue
            decl = " ".join(fm.group(1).split())
            lines.append("    " + decl)
            fname = param_names(decl[:-1])
            fields.append((fname[0] if fname else decl,
                           comment_text(fm.group(2)) if fm.group(2) else ""))
        lines.append("};")
        return {"name": name, "synopsis": lines, "comment": comment,
                "fields": fields, "opaque": False}
    one = " ".join(text.split())
    one = re.sub(r"\(\s+", "(", one)
    one = re.sub(r"\s+\)", ")", one)
    m = re.match(r"typedef\s+struct\s+\w+\s+(\w+);$", one)
    if m:
        return {"name": m.group(1), "synopsis": [one], "comment": comment,
                "fields": [], "opaque": True}
    m = re.search(r"\(\s*\*\s*(\w+)\s*\)\s*\(", one) or \
        re.search(r"(\w+)\s*;$", one)
    if one.startswith("typedef") and m:
        return {"name": m.group(1), "synopsis": [one], "comment": comment,
                "fields": [], "opaque": False}
    return None


def parse_header(path):
    """Everything the pages need from the header."""
    with open(path) as f:
        text = f.read()
    items = scan(strip_conditionals(text))
    hdr = {"intro": None, "sections": [], "functions": [], "types": {},
           "macros": {}, "order": []}
    section = {"title": "General", "intro": None, "functions": []}
    hdr["sections"].append(section)
    banner = re.compile(r"/\*\s*-+\s*([^-*][^*]*?)\s*-+\s*\*/$")
    pending = None  # the comment right above the current item
    group = None    # the doc comment and the functions declared under it
    for i, it in enumerate(items):
        if it["kind"] == "comment":
            m = banner.match(it["text"])
            if m:
                section = {"title": m.group(1).capitalize(), "intro": None,
                           "functions": []}
                hdr["sections"].append(section)
                pending, group = None, None
                continue
            if i == 0:  # the header's own comment: the overview's text
                hdr["intro"] = comment_lines(it["text"])
                continue
            pending, group = it, None
            continue
        if it["kind"] == "pp":
            m = re.match(r"#define\s+(\w+)\s+(\S.*)$", it["text"])
            if m and not m.group(1).startswith("FUTURES_"):
                com = it["comment"] or (pending and pending["text"])
                hdr["macros"][m.group(1)] = {
                    "name": m.group(1), "value": m.group(2).strip(),
                    "comment": comment_text(com) if com else ""}
            if not m or m.group(1).startswith("FUTURES_"):
                pending = None  # else the next #define shares the comment
            group = None
            continue
        stmt = it
        if stmt["text"].lstrip().startswith("FUTURES_API"):
            fn = parse_function(stmt)
            if pending is not None and pending["text"].startswith("/**"):
                group = {"comment": pending, "functions": [fn]}
            elif group is not None and re.search(
                    r"\b%s\(\)" % fn["name"], group["comment"]["text"]):
                group["functions"].append(fn)  # documented with the first
            else:
                raise HeaderError(
                    "%d: %s() has no doc comment; write /** %s() - what it "
                    "does. */ right above its declaration"
                    % (fn["line"], fn["name"], fn["name"]))
            fn["group"] = group
            section["functions"].append(fn)
            hdr["functions"].append(fn)
            pending = None
            continue
        com = stmt["comment"] or (pending and pending["text"])
        t = parse_type(stmt, comment_text(com) if com else "")
        if t:
            hdr["types"][t["name"]] = t
            hdr["order"].append(t["name"])
            if section["intro"] is None and pending is not None and \
                    not section["functions"] and t["opaque"]:
                section["intro"] = comment_text(pending["text"])
        pending, group = None, None
    hdr["sections"] = [s for s in hdr["sections"] if s["functions"]]
    for fn in hdr["functions"]:
        read_doc(fn, hdr)
    return hdr


def read_doc(fn, hdr):
    """Reads the doc comment of @fn's group into summary, paragraphs and
    labelled clauses."""
    group = fn["group"]
    if "doc" in group:
        fn["doc"] = group["doc"]
        return
    first = group["functions"][0]
    com = group["comment"]
    bl = blocks(comment_lines(com["text"]))
    if not bl or bl[0][0] != "text":
        raise HeaderError("%d: the doc comment above %s() is empty"
                          % (com["line"], first["name"]))
    head = " ".join(bl[0][1])
    m = re.match(r"(\w+)\(\)\s+-\s+(.+)$", head, re.S)
    if not m:
        raise HeaderError("%d: the doc comment above %s() must start with "
                          "'%s() - summary'" % (com["line"], first["name"],
                                                first["name"]))
    if m.group(1) != first["name"]:
        raise HeaderError("%d: the doc comment above %s() is about %s()"
                          % (com["line"], first["name"], m.group(1)))
    rest = bl[0][1][:]
    rest[0] = re.sub(r"^\w+\(\)\s+-\s+", "", rest[0])
    doc = {"summary_para": sentences(rest), "blocks": bl[1:],
           "text": " ".join(" ".join(b[1]) for b in bl)}
    group["doc"] = doc
    fn["doc"] = doc


# --------------------------------------------------------------- rendering --

def esc(text, code=False):
    """Escapes roff's specials in plain text. In code every '-' is a minus
    and quotes are straight; in prose a '-' between letters is a hyphen."""
    text = text.replace("\\", "\\e")
    if code:
        text = text.replace("-", "\\-").replace("'", "\\(aq")
        text = text.replace("`", "\\(ga")
    else:
        text = re.sub(r"(?<![A-Za-z])-|-(?![A-Za-z])", r"\\-", text)
    return text.replace("^", "\\(ha").replace("~", "\\(ti")


def inline(text):
    """Prose to roff: `code` in bold, @param in italics, function() names
    in bold, specials escaped."""
    out = []
    for i, part in enumerate(re.split(r"`([^`]*)`", text)):
        if i % 2:
            out.append("\\fB" + esc(part, code=True) + "\\fR")
            continue
        part = esc(part)
        part = re.sub(r"@(\w+)", r"\\fI\1\\fR", part)
        part = re.sub(r"(?<![\w.\\])([A-Za-z_]\w*)\(\)", r"\\fB\1\\fR()",
                      part)
        out.append(part)
    return "".join(out).replace(EM_DASH, "\\(em")


def line_safe(s):
    """A line of roff text that cannot be read as a request."""
    return "\\&" + s if s.startswith((".", "'")) else s


def prose(sents):
    """Sentences, one per line, as roff input."""
    return [line_safe(inline(s)) for s, _ in sents]


def plain(text):
    """Prose without markup, for a NAME line and for lengths."""
    return re.sub(r"@(\w+)", r"\1", text.replace("`", ""))


def drop_parens(text):
    out, depth = "", 0
    for c in text:
        if c == "(" and depth == 0 and out and not out[-1].isalnum() \
                and out[-1] not in "_":
            depth = 1
            continue
        if depth:
            depth += c == "("
            depth -= c == ")"
            continue
        out += c
    return re.sub(r"\s+([,.;:])", r"\1", " ".join(out.split()))


def summary(fn, hdr):
    """The NAME line's summary, and whether it is the whole first sentence
    of the comment (else DESCRIPTION opens with that sentence in full).
    A long one loses its parentheses, then what follows a colon or
    semicolon, then, if still much too long, what follows a comma."""
    first = rewrite(fn, hdr, fn["doc"]["summary_para"][0][0])
    s = first.rstrip(".")
    whole = True
    cuts = ((drop_parens, SUMMARY_MAX), (r"(.+?)[:;] ", SUMMARY_MAX),
            (r"(.+?), ", SUMMARY_MAX + 8))
    for cut, limit in cuts:
        if len(plain(s)) <= limit:
            continue
        whole = False
        if callable(cut):
            s = cut(s)
        else:
            m = re.match(cut, s)
            s = m.group(1) if m else s
    return s, whole


def split_doc(fn, hdr):
    """DESCRIPTION's blocks and the labelled and return-value clauses, each
    a list of sentences. A clause runs from its label to the end of its
    paragraph, except that Ownership and Thread safety end at the end of a
    header line (they are short; what follows may be description). A
    sentence that starts with 'Returns' goes to RETURN VALUE, with those
    after it that say what it returns, unless the function returns void.
    Text on either side of a clause taken out becomes two paragraphs."""
    doc = fn["doc"]
    s, whole = summary(fn, hdr)
    paras = [("text", doc["summary_para"][1:])] + [
        (k, sentences(ls) if k == "text" else ls) for k, ls in doc["blocks"]]
    desc, clauses = [], {v: [] for v in LABELS.values()}
    clauses["RETURN VALUE"] = []
    returns = fn["ret"] != "void"
    for i, (kind, body) in enumerate(paras):
        if kind == "code":
            desc.append(("code", body))
            continue
        start, keep, label, in_return = len(desc), [], None, False
        for text, eol in body:
            m = LABEL_RE.match(text)
            if m:
                label = LABELS[m.group(1)]
                text = text[m.end():]
                text = text[0].upper() + text[1:] if text else text
            if label:
                clauses[label].append((text, eol))
                if eol and label != "ERRORS":
                    label = None
            elif returns and (text.startswith("Returns ") or (
                    in_return and re.search(r"\breturns?\b", text))):
                clauses["RETURN VALUE"].append((text, eol))
                in_return = True
            else:
                in_return = False
                keep.append((text, eol))
                continue
            if keep:
                desc.append(("text", keep))
                keep = []
        if keep:
            desc.append(("text", keep))
        if i == 0 and len(desc) == start:
            desc.append(("text", []))  # where the first sentence may go
    # The NAME line shortened the first sentence, or nothing else is left
    # to describe: DESCRIPTION opens with the sentence in full.
    if not whole or not any(body for _, body in desc):
        lead = ("%s() %s %s" % (fn["name"], EM_DASH,
                                doc["summary_para"][0][0]), True)
        desc[0] = ("text", [lead] + desc[0][1])
    desc = [(k, body) for k, body in desc if body]
    return s, desc, clauses


def synopsis_decl(decl, params=()):
    """A one-line declaration in bold, @params in italics, broken after the
    commas of its parameter list (the parenthesis that closes last) when it
    is long, continuation lines lined up as clang-format lines them up."""
    close = decl.rindex(")")
    depth, open_at = 0, close
    while True:
        depth += decl[open_at] == ")"
        depth -= decl[open_at] == "("
        if depth == 0:
            break
        open_at -= 1
    head, tail = decl[:open_at + 1], decl[close:]
    pieces, depth, cur = [], 0, ""
    for c in decl[open_at + 1:close]:
        depth += (c == "(") - (c == ")")
        if c == "," and depth == 0:
            pieces.append(cur.strip() + ",")
            cur = ""
        else:
            cur += c
    pieces.append(cur.strip() + tail)
    lines, line = [], head
    for p in pieces:
        if line != head and len(line) + len(p) + 1 > SYNOPSIS_WIDTH:
            lines.append(line)
            line = " " * len(head) + p
        else:
            line += ("" if line == head else " ") + p
    lines.append(line)
    out = []
    for l in lines:
        r = esc(l, code=True)
        for name in params:
            r = re.sub(r"(?<![\w])%s(?![\w])" % re.escape(name),
                       r"\\fI%s\\fB" % name, r)
        out.append(line_safe("\\fB" + r + "\\fR"))
    return out


def used_types(fn, hdr):
    """The typedefs, structs and macros worth showing with @fn: those the
    prototypes of its group name (and those they name, in turn), and
    macros its comment names. Opaque handles are left to futures(7)."""
    want, seen = [], set()
    todo = [f["proto"] for f in fn["group"]["functions"]]
    while todo:
        text = todo.pop(0)
        for name in hdr["order"]:
            t = hdr["types"][name]
            if name in seen or t["opaque"]:
                continue
            if re.search(r"(?<![\w])%s(?![\w])" % re.escape(name), text):
                seen.add(name)
                want.append(t)
                todo.append(" ".join(t["synopsis"]))
    macros = [m for m in hdr["macros"].values()
              if re.search(r"\b%s\b" % m["name"], fn["doc"]["text"])]
    return want, macros


def see_also(fn, hdr, group_names):
    """The public functions @fn's comment names, those it shares its
    comment with, and the one its 'as above' means."""
    names = set(re.findall(r"(?<![\w.])([a-z_]\w*)\(\)", fn["doc"]["text"]))
    public = {f["name"] for f in hdr["functions"]}
    if neighbour(fn, hdr):
        names.add(neighbour(fn, hdr))
    names |= set(group_names)
    names = sorted((names & public) - {fn["name"]})
    return names


def previous(fn, hdr):
    """The function declared (under another comment) before @fn."""
    fs = hdr["functions"]
    i = next(k for k, f in enumerate(fs) if f is fn)
    while i > 0 and fs[i - 1]["group"] is fn["group"]:
        i -= 1
    return fs[i - 1] if i > 0 else fn


def th(name, section, date, version):
    return ['.\\" Generated by tools/man.py from %s; edit the '
            'header, not this page.' % HEADER,
            '.TH %s %s %s "libfutures %s" "%s"'
            % (name, section, date, version, MANUAL),
            ".nh", ".ad l"]


def refs(names, section="3"):
    """A comma-separated list of page references, one per line."""
    out = []
    for i, n in enumerate(names):
        out.append(".BR %s (%s)%s" % (n, section,
                                      "," if i + 1 < len(names) else ""))
    return out


def render_blocks(desc):
    out = []
    for kind, body in desc:
        out.append(".PP")
        if kind == "code":
            out += [".in +4n", ".EX"]
            out += [line_safe(esc(l, code=True)) for l in body]
            out += [".EE", ".in"]
        else:
            out += prose(body)
    return out


def neighbour(fn, hdr):
    """The function whose comment a one-paragraph comment's 'as above'
    points to: the one declared before it. In a longer comment 'as above'
    points inside the comment itself, which holds on a page too."""
    if fn["doc"]["blocks"] or not re.search(r"\bas above\b",
                                            fn["doc"]["text"]):
        return None
    return previous(fn, hdr)["name"]


def rewrite(fn, hdr, text):
    """Words that point at a place in the header, made to point at pages:
    'as above' of a short comment, the conventions at the header's top."""
    prev = neighbour(fn, hdr)
    if prev:
        text = re.sub(r"\bas above\b", "as for %s()" % prev, text)
    return re.sub(r"\bthe conventions at the top\b",
                  "the conventions in futures(7)", text)


def rewrite_all(fn, hdr, sents):
    return [(rewrite(fn, hdr, t), e) for t, e in sents]


def page3(fn, hdr, date, version):
    group = [f["name"] for f in fn["group"]["functions"]]
    s, desc, clauses = split_doc(fn, hdr)
    desc = [(k, rewrite_all(fn, hdr, b) if k == "text" else b)
            for k, b in desc]
    clauses = {k: rewrite_all(fn, hdr, v) for k, v in clauses.items()}
    out = th(fn["name"], "3", date, version)
    out += [".SH NAME", "%s \\- %s" % (", ".join(group), esc(plain(s)))]
    out += [".SH SYNOPSIS", ".nf", ".B #include <%s>" % HEADER[8:], ".PP"]
    for f in fn["group"]["functions"]:
        out += synopsis_decl(f["proto"], f["params"])
    types, macros = used_types(fn, hdr)
    for t in types:
        out.append(".PP")
        if len(t["synopsis"]) == 1:
            out += synopsis_decl(t["synopsis"][0])
        else:
            out += [line_safe("\\fB%s\\fR" % esc(l, code=True))
                    for l in t["synopsis"]]
    if macros:
        out.append(".PP")
        out += ["\\fB#define %s %s\\fR" % (m["name"],
                                             esc(m["value"], code=True))
                for m in macros]
    out += [".fi", ".PP", "Compile and link with", link_with()]
    out += [".SH DESCRIPTION"] + render_blocks(desc)
    described = [t for t in types if t["comment"]]
    if described or macros:
        title = ("Types and constants" if described and macros else
                 "Constants" if macros else "Types")
        out.append(".SS %s" % title)
        for t in described:
            out += [".TP", ".B %s" % t["name"]]
            out += prose(sentences([t["comment"]]))
            if t["fields"]:
                out.append(".RS")
                for name, text in t["fields"]:
                    out += [".TP", ".I %s" % name, line_safe(inline(text))]
                out.append(".RE")
        for m in macros:
            out += [".TP", ".B %s" % m["name"]]
            out += prose(sentences([m["comment"]]))
    for sect in ("RETURN VALUE", "OWNERSHIP", "ERRORS", "THREAD SAFETY"):
        if clauses[sect]:
            out += [".SH " + sect] + prose(clauses[sect])
    also = see_also(fn, hdr, group)
    out += [".SH SEE ALSO"] + refs(also, "3")
    if also:
        out[-1] += ","
    out.append(".BR %s (7)" % OVERVIEW)
    return out


def link_with():
    return "\\fI$(pkg\\-config \\-\\-cflags \\-\\-libs %s)\\fR." % (
        PACKAGE.replace("-", "\\-"))


def page7(hdr, date, version):
    intro = blocks(hdr["intro"])
    m = re.match(r"\S+\s+-\s+(.*?)\.?$", " ".join(intro[0][1]))
    name = m.group(1) if m else "futures for C11 on POSIX threads"
    out = th(OVERVIEW, "7", date, version)
    out += [".SH NAME", "%s \\- %s" % (esc(OVERVIEW), esc(name))]
    out += [".SH SYNOPSIS", ".nf", ".B #include <%s>" % HEADER[8:], ".fi",
            ".PP", "Compile and link with", link_with()]
    out.append(".SH DESCRIPTION")
    for kind, ls in intro[1:]:
        # A paragraph, or one that ends in a list of '- ' items.
        items, lead = [], []
        for l in ls:
            if l.startswith("- "):
                items.append([l[2:]])
            elif items:
                items[-1].append(l)
            else:
                lead.append(l)
        if lead:
            out += [".PP"] + prose(sentences(lead))
        for it in items:
            out += [".IP \\(bu 2"] + prose(sentences(it))
    out.append(".SH FUNCTIONS")
    out.append("Each function has a page of its own in section 3.")
    for sec in hdr["sections"]:
        out.append(".SS %s" % sec["title"])
        if sec["intro"]:
            out += [".PP"] + prose(sentences([sec["intro"]]))
        for fn in sec["functions"]:
            s, _ = summary(fn, hdr)
            out += [".TP", ".BR %s (3)" % fn["name"], line_safe(inline(s))]
    typed = [n for n in hdr["order"] if hdr["types"][n]["comment"]]
    if typed:
        out.append(".SH TYPES")
    for name in typed:
        t = hdr["types"][name]
        out += [".TP", ".B %s" % name] + prose(sentences([t["comment"]]))
    env = environment(hdr)
    if env:
        out.append(".SH ENVIRONMENT")
        for var, (fns, said) in env:
            out += [".TP", ".B %s" % var] + prose(said) + ["See"]
            out += refs(fns)
            out[-1] += "."
    out.append(".SH SEE ALSO")
    if OVERVIEW != "futures":
        return out + [".BR futures (7),",
                      "and, in the libfutures source tree,",
                      ".IR docs/distributed.md",
                      "and the header the pages come from,",
                      ".IR %s ." % HEADER]
    out += ["The guide,",
            ".IR docs/guide.md ,",
            "explains the model beside Python's asyncio and walks through the",
            "samples;",
            ".I docs/api.md",
            "covers every function again with an example.",
            "Both are in the libfutures source tree,",
            "as is the header the pages come from,",
            ".IR include/futures.h ."]
    return out


def environment(hdr):
    """Environment variables the comments mention: for each, the functions
    whose comments mention it and the sentences that do."""
    found = {}
    for fn in hdr["functions"]:
        doc = fn["doc"]
        sents = doc["summary_para"] + [
            x for k, ls in doc["blocks"] if k == "text" for x in sentences(ls)]
        for var in re.findall(r"\b(FUTURES_[A-Z_]+)\b", doc["text"]):
            if var in hdr["macros"]:
                continue
            fns, said = found.setdefault(var, ([], []))
            if fn["name"] not in fns:
                fns.append(fn["name"])
                said += [x for x in sents if re.search(r"\b%s\b" % var, x[0])]
    return sorted(found.items())


# -------------------------------------------------------------------- main --

def pages(hdr):
    return ["man3/%s.3" % f["name"] for f in hdr["functions"]] + \
        ["man7/%s.7" % OVERVIEW]


def default_date(header):
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = int(epoch) if epoch else int(os.stat(header).st_mtime)
    return time.strftime("%Y-%m-%d", time.gmtime(stamp))


def write(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv):
    ap = argparse.ArgumentParser(prog=PROG,
                                 description=__doc__.splitlines()[0])
    ap.add_argument("header")
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--version")
    ap.add_argument("--date")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    set_header(args.header)
    try:
        hdr = parse_header(args.header)
    except HeaderError as e:
        sys.stderr.write("%s: %s:%s\n" % (PROG, args.header, e))
        return 1
    if not hdr["functions"]:
        sys.stderr.write("%s: %s declares no FUTURES_API function\n"
                         % (PROG, args.header))
        return 1
    if args.list:
        print("\n".join(pages(hdr)))
        return 0
    if not args.outdir or not args.version:
        ap.error("OUTDIR and --version are needed unless --list is given")
    date = args.date or default_date(args.header)
    for sub in ("man3", "man7"):
        os.makedirs(os.path.join(args.outdir, sub), exist_ok=True)
    for fn in hdr["functions"]:
        write(os.path.join(args.outdir, "man3", fn["name"] + ".3"),
              page3(fn, hdr, date, args.version))
    write(os.path.join(args.outdir, "man7", OVERVIEW + ".7"),
          page7(hdr, date, args.version))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
