#!/usr/bin/env python3
"""The language contract's examples, run as written: every fenced block of LANGUAGE.md
that holds a directive (solve, train) is a program; a directive on a model the block does
not define gets the earlier block that defines it prepended (LANGUAGE.md shows the Flow
model and its training in two blocks). Data files the program reads (csv("NAME")) are
copied from the given folders. Each program must run with exit status 0; where a block's
comments state `x(1) = VALUE` for its solves, the last row of each printed table must
match them in order (to 1e-9 relative).

  Usage: language_examples.py NODEC LANGUAGE.md DATA_DIR...
Prints one line per program and closes with 'N passed, N failed'.
"""
import os, re, shutil, subprocess, sys, tempfile

DIRECTIVE = re.compile(r"^\s*(solve|train)\s+([A-Za-z_]\w*)", re.M)
MODEL = re.compile(r"^\s*model\s+([A-Za-z_]\w*)", re.M)
CSV = re.compile(r'csv\("([^"]+)"\)')
STATED = re.compile(r"#[^\n]*?x\(1\) = ([-+]?\d[\d.]*(?:[eE][-+]?\d+)?)(?=\s|$)", re.M)


def programs(text):
    """(first line of the block, source) for each block with a directive."""
    defined, out = {}, []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        own = set(MODEL.findall(block))
        for name in own:
            defined[name] = block
        needed = [n for _, n in DIRECTIVE.findall(block) if n not in own]
        if not DIRECTIVE.search(block):
            continue
        prefix = "".join(defined[n] for n in dict.fromkeys(needed) if n in defined)
        out.append((block.strip().splitlines()[0], prefix + block))
    return out


def last_rows(stdout):
    """The x of the last row of each table nodec prints (a header line, then rows)."""
    values, last = [], None
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0] == "t":
            if last is not None:
                values.append(last)
            last = None
        elif len(cells) >= 2:
            last = float(cells[-1])
    if last is not None:
        values.append(last)
    return values


def check(nodec, source, data_dirs):
    with tempfile.TemporaryDirectory() as wd:
        for name in CSV.findall(source):
            found = [os.path.join(d, name) for d in data_dirs if os.path.exists(os.path.join(d, name))]
            if not found:
                return f"no data file {name} in {', '.join(data_dirs)}"
            shutil.copy(found[0], wd)
        path = os.path.join(wd, "example.node")
        with open(path, "w") as f:
            f.write(source)
        p = subprocess.run([nodec, "run", "--quiet", path], cwd=wd, capture_output=True, text=True,
                           timeout=1200)
        if p.returncode != 0:
            return f"exit {p.returncode}: {p.stderr.strip()[:400]}"
        stated = [float(v) for v in STATED.findall(source)]
        if stated:
            got = last_rows(p.stdout)
            if len(got) < len(stated):
                return f"{len(got)} tables printed, the comments state {len(stated)} values"
            for want, have in zip(stated, got):
                if abs(have - want) > 1e-9 * max(1.0, abs(want)):
                    return f"x(1) = {have!r}, the comment states {want!r}"
    return None


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    nodec, md, data_dirs = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3:]
    failures = 0
    progs = programs(open(md).read())
    for first, source in progs:
        problem = check(nodec, source, [os.path.abspath(d) for d in data_dirs])
        failures += problem is not None
        print(("FAIL " if problem else "ok   ") + first + (": " + problem if problem else ""))
    print(f"{len(progs) - failures} passed, {failures} failed")
    return 1 if failures or not progs else 0


if __name__ == "__main__":
    sys.exit(main())
