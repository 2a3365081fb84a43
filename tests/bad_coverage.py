#!/usr/bin/env python3
"""Every error message nodec can print has a golden in tests/bad/ (issue 13): finds each
error call in the sources (diag_error, diag_plain, the runtime's nd_solver_fail and
nd_grad_fail, the CSV, .npy and safetensors readers', the command line's), turns its format
string into a pattern (each printf conversion matches anything), and looks for it among
the expected standard-error lines (`#| ...`) of tests/bad/*.node and *.node.expect.

A message that no .node file can reach (a broken invariant, out of memory, the runtime
used directly as a library) is listed in a file tests/bad/UNREACHABLE.AREA with the
reason, one per line: `FILE: FORMAT  -- REASON` (FORMAT as written in the source, escapes
and all; `#` starts a comment line). The test fails on a message neither covered nor listed,
and on a listed one that no longer exists, so the catalogue grows with the code.

Usage: bad_coverage.py REPO [--list]   (--list prints every message and its golden)"""
import os, re, sys

CALLS = ["diag_error", "diag_plain", "diag_note", "diag_warning", "nd_solver_fail", "nd_grad_fail", "csv_error",
         "usage_error", "header_fail", "coef_error", "step_error", "part_error", "name_error",
         "group_error", "equation_target_error", "run_fail", "train_fail", "io_fail", "npy_error"]
SOURCES = ["compiler", "runtime", "tools"]
LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
CONVERSION = re.compile(r"%[-+ #0]*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|z|j|t|L)?[diouxXeEfgGcsp%]")

def call_formats(path):
    """(line, format) for each error call in a C, bison or flex source."""
    text = open(path, encoding="utf-8", errors="replace").read()
    pattern = re.compile(r"\b(" + "|".join(CALLS) + r")\s*\(")
    for m in pattern.finditer(text):
        # the definition or declaration of the function itself is not a call
        before = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
        if re.search(r"\b(void|int|bool|static|char)\b[\w\s\*]*$", before):
            continue
        depth, i, parts, fmt_done = 1, m.end(), [], False
        while i < len(text) and depth > 0:
            c = text[i]
            if c == '"':
                lit = LITERAL.match(text, i)
                if not lit:
                    break
                if not fmt_done:
                    parts.append(lit.group(1))
                i = lit.end()
                continue
            if parts and not c.isspace():
                fmt_done = True
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            i += 1
        if parts:
            line = text.count("\n", 0, m.start()) + 1
            yield line, "".join(parts)

def unescape(fmt):
    return fmt.encode().decode("unicode_escape", errors="replace")

def to_pattern(fmt):
    out, at = [], 0
    for m in CONVERSION.finditer(fmt):
        out.append(re.escape(fmt[at:m.start()]))
        out.append("%" if m.group() == "%%" else ".*?")
        at = m.end()
    out.append(re.escape(fmt[at:]))
    return re.compile("".join(out), re.S)

def golden_text(folder):
    """Every expected standard-error line of the catalogue, with the file it is in."""
    lines = []
    for f in sorted(os.listdir(folder)):
        if not (f.endswith(".node") or f.endswith(".node.expect")):
            continue
        with open(os.path.join(folder, f), "rb") as fp:
            text = fp.read().decode("utf-8", errors="replace")
        for line in text.splitlines():
            if line.startswith("#|"):
                lines.append((f, line[3:] if line.startswith("#| ") else line[2:]))
            m = re.match(r"#\s*expect-stderr:\s*(.+)$", line)
            if m:
                lines.append((f, m.group(1).strip()))
    return lines

def main():
    if len(sys.argv) < 2:
        print(__doc__); sys.exit(2)
    repo = os.path.abspath(sys.argv[1])
    folder = os.path.join(repo, "tests", "bad")
    listing = "--list" in sys.argv
    unreachable = {}
    for name in sorted(f for f in os.listdir(folder) if f.startswith("UNREACHABLE")):
        path = os.path.join(folder, name)
        for line in open(path, encoding="utf-8"):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            where, _, rest = line.partition(": ")
            fmt, sep, reason = rest.rpartition("  -- ")
            if not sep or not reason.strip():
                print(f"{name}: no reason given: {line!r}")
                sys.exit(1)
            unreachable[(where, fmt)] = reason
    goldens = golden_text(folder)
    missing, seen, covered = [], set(), 0
    for top in SOURCES:
        for root, _, files in os.walk(os.path.join(repo, top)):
            for f in sorted(files):
                if not f.endswith((".c", ".y", ".l")):
                    continue
                src = os.path.join(root, f)
                rel = os.path.relpath(src, repo)
                for line, fmt in call_formats(src):
                    key = (rel, fmt)
                    seen.add(key)
                    pattern = to_pattern(unescape(fmt))
                    hit = next((g for g, text in goldens if pattern.search(text)), None)
                    if listing:
                        print(f"{rel}:{line}: {fmt!r} -> {hit or unreachable.get(key, 'MISSING')}")
                    if hit:
                        covered += 1
                    elif key not in unreachable:
                        missing.append(f"{rel}:{line}: {fmt}")
    stale = [f"{w}: {f}" for (w, f) in unreachable if (w, f) not in seen]
    for m in missing:
        print(f"no golden in tests/bad/ for {m}")
    for s in stale:
        print(f"tests/bad/UNREACHABLE.* lists a message the sources no longer have: {s}")
    print(f"{covered} messages covered by tests/bad/, {len(unreachable)} listed unreachable, "
          f"{len(missing)} missing")
    sys.exit(1 if missing or stale else 0)

if __name__ == "__main__":
    main()
