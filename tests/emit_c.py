#!/usr/bin/env python3
"""emit-c against nodec run: for every .node file in a folder, `nodec emit-c` it,
compile the C with the strict flags of issue 7 (C99 and C++), run the program,
and compare every CSV and the table on stdout with what `nodec run` writes, to
1e-12 (relative to the value's size, for values larger than 1).

Input data sets live in FOLDER/data/ (copied next to each file as data/).

A file that must fail says so with `# emit-fails: TEXT`: `nodec run` and every build of
the emitted program exit with status 1 and TEXT in their standard error (the runtime's
messages name the states in both).

A file may set its own tolerance with a line `# emit-tol: 1e-7`: bdf's emitted
LU (runtime/solve/nd_lapack.c's plain C one) rounds differently from OpenBLAS's, so
an adaptive bdf solve may take other steps and agree only to its tolerance.

  Usage: emit_c.py NODEC FOLDER [--sanitize]

--sanitize also builds and runs the C with -fsanitize=address,undefined.
Prints one line per file and closes with 'N passed, N failed'.
"""
import csv, glob, os, shutil, subprocess, sys, tempfile

TOL = 1e-12
C_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]
CXX_FLAGS = ["-x", "c++", "-O2", "-Wall", "-Wextra", "-Werror"]
SAN_FLAGS = ["-std=c99", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def numbers(text):
    """The numeric cells of a CSV or table text, row by row (headers kept as text)."""
    rows = []
    for line in text.splitlines():
        cells = next(csv.reader([line])) if "," in line else line.split()
        rows.append([c.strip() for c in cells])
    return rows


def file_fails(path):
    for line in open(path):
        if line.startswith("# emit-fails:"):
            return line.split(":", 1)[1].strip()
    return None


def file_tolerance(src):
    for line in open(src):
        if line.startswith("# emit-tol:"):
            return float(line.split(":", 1)[1])
    return TOL


def same(a, b, tol=TOL):
    ra, rb = numbers(a), numbers(b)
    if len(ra) != len(rb):
        return f"{len(ra)} rows, nodec run wrote {len(rb)}"
    for i, (x, y) in enumerate(zip(ra, rb)):
        if len(x) != len(y):
            return f"row {i}: {len(x)} cells, nodec run wrote {len(y)}"
        for u, v in zip(x, y):
            try:
                fu, fv = float(u), float(v)
            except ValueError:
                if u != v:
                    return f"row {i}: {u!r} vs {v!r}"
                continue
            if not abs(fu - fv) <= tol * max(1.0, abs(fv)):
                return f"row {i}: {fu!r} vs {fv!r}"
    return None


def compile_and_run(cc, flags, out_c, exe, workdir, fails=None):
    p = run([cc, *flags, out_c, "-o", exe, "-lm"], workdir)
    if p.returncode != 0:
        return None, f"{cc} failed:\n{p.stderr[:2000]}"
    p = run([exe], workdir)
    if fails is not None:
        if p.returncode != 1 or fails not in p.stderr:
            return None, f"exited {p.returncode}, want 1 with {fails!r}:\n{p.stderr[:2000]}"
        return p.stdout, None
    if p.returncode != 0:
        return None, f"{os.path.basename(exe)} exited {p.returncode}:\n{p.stderr[:2000]}"
    return p.stdout, None


def outputs(folder):
    return {os.path.basename(f): open(f).read() for f in glob.glob(os.path.join(folder, "*.csv"))}


def check_file(nodec, src, sanitize):
    name = os.path.basename(src)
    tol = file_tolerance(src)
    msgs = []
    with tempfile.TemporaryDirectory() as tmp:
        ref, gen = os.path.join(tmp, "ref"), os.path.join(tmp, "gen")
        os.mkdir(ref)
        os.mkdir(gen)
        data = os.path.join(os.path.dirname(src), "data")
        for d in (ref, gen):
            shutil.copy(src, d)
            if os.path.isdir(data):  # input data sets, out of the compared *.csv
                shutil.copytree(data, os.path.join(d, "data"))
        fails = file_fails(src)
        p = run([nodec, "run", name], ref)
        if fails is not None and (p.returncode != 1 or fails not in p.stderr):
            return [f"nodec run: exit {p.returncode}, want 1 with {fails!r}: {p.stderr[:500]}"]
        if fails is None and p.returncode != 0:
            return [f"nodec run failed: {p.stderr[:500]}"]
        want_out, want = p.stdout, outputs(ref)
        p = run([nodec, "emit-c", name, "-o", "out.c"], gen)
        if p.returncode != 0:
            return [f"nodec emit-c failed: {p.stderr[:500]}"]
        builds = [("cc", C_FLAGS), ("c++", CXX_FLAGS)] + ([("cc", SAN_FLAGS)] if sanitize else [])
        for cc, flags in builds:
            for f in glob.glob(os.path.join(gen, "*.csv")):
                os.remove(f)
            label = f"{cc} {' '.join(flags[:2])}"
            stdout, err = compile_and_run(cc, flags, "out.c", os.path.join(gen, "prog"), gen, fails)
            if err:
                msgs.append(f"{label}: {err}")
                continue
            got = outputs(gen)
            if sorted(got) != sorted(want):
                msgs.append(f"{label}: wrote {sorted(got)}, nodec run wrote {sorted(want)}")
            for f in sorted(set(got) & set(want)):
                diff = same(got[f], want[f], tol)
                if diff:
                    msgs.append(f"{label}: {f}: {diff}")
            diff = same(stdout, want_out, tol)
            if diff:
                msgs.append(f"{label}: stdout: {diff}")
    return msgs


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    nodec, folder = os.path.abspath(sys.argv[1]), sys.argv[2]
    sanitize = "--sanitize" in sys.argv[3:]
    passed = failed = 0
    for src in sorted(glob.glob(os.path.join(folder, "*.node"))):
        msgs = check_file(nodec, src, sanitize)
        print(("FAIL " if msgs else "ok   ") + os.path.basename(src))
        for m in msgs:
            print("     " + m.replace("\n", "\n     "))
        failed += bool(msgs)
        passed += not msgs
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
