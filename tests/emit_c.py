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

f32 mode: each file is also emitted with `option precision = f32` prepended (a
temporary copy; a file with its own `option precision` line is left out) and the
single-precision program (C99 and C++) is compared with the double one emitted
from the file as it is, to F32_TOL relative (`# emit-f32-tol: 1e-3` sets a file's
own). Its source must say `#define ND_REAL_F32` and hold no `double` between its
first model and main (the kernels, parameters, train code); its trains run through
nodec's JIT in float before it is written, as nodec run trains. A file with
`# emit-f32-skip: REASON` is left out of f32 mode (a problem whose steps fall below
float's resolution of t). In f32 the program is run as C99 and compiled as C++.

  Usage: emit_c.py NODEC FOLDER [--sanitize]

--sanitize also builds and runs the C with -fsanitize=address,undefined.
Prints one line per file and closes with 'N passed, N failed'.
"""
import csv, glob, os, re, shutil, subprocess, sys, tempfile

TOL = 1e-12
# float rounding (2^-24 ~ 6e-8) grows through an adaptive solve at the default
# tolerances (rtol 1e-6 is near float's limit): 1e-4 leaves a wide margin.
F32_TOL = 1e-4
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


def file_tolerance(src, key="# emit-tol:", default=TOL):
    for line in open(src):
        if line.startswith(key):
            return float(line.split(":", 1)[1])
    return default


def same(a, b, tol=TOL, against="nodec run"):
    ra, rb = numbers(a), numbers(b)
    if len(ra) != len(rb):
        return f"{len(ra)} rows, {against} wrote {len(rb)}"
    for i, (x, y) in enumerate(zip(ra, rb)):
        if len(x) != len(y):
            return f"row {i}: {len(x)} cells, {against} wrote {len(y)}"
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


def f32_skip(src):
    """Why the file is left out of f32 mode, or None."""
    text = open(src).read()
    if re.search(r"^\s*option\s+precision", text, re.M):
        return "it sets its own precision"
    m = re.search(r"^# emit-f32-skip:(.*)$", text, re.M)
    if m:
        return m.group(1).strip()
    return None


def f32_source_problem(path):
    text = open(path).read()
    if "#define ND_REAL_F32" not in text:
        return "no #define ND_REAL_F32 in the f32 program"
    start, end = text.find("/* ---- model "), text.find("#ifndef NODEC_NO_MAIN")
    m = re.search(r"\bdouble\b", text[start:end]) if 0 <= start < end else None
    if m:
        at = text.count("\n", 0, start + m.start()) + 1
        return f"'double' at line {at} of the f32 program's kernels"
    return None


def check_f32(nodec, src, tmp, want_out, want):
    """The f32 program (C99 and C++) against the f64 program's outputs."""
    name = os.path.basename(src)
    f32 = os.path.join(tmp, "f32")
    os.mkdir(f32)
    with open(os.path.join(f32, name), "w") as f:
        f.write("option precision = f32\n" + open(src).read())
    data = os.path.join(os.path.dirname(src), "data")
    if os.path.isdir(data):
        shutil.copytree(data, os.path.join(f32, "data"))
    p = run([nodec, "emit-c", name, "-o", "out.c"], f32)
    if p.returncode != 0:
        return [f"f32: nodec emit-c failed: {p.stderr[:500]}"]
    problem = f32_source_problem(os.path.join(f32, "out.c"))
    if problem:
        return [f"f32: {problem}"]
    tol, msgs = file_tolerance(src, "# emit-f32-tol:", F32_TOL), []
    # C++ only compiled (its narrowing rules meet float first); run once, as C99
    p = run(["c++", *CXX_FLAGS, "-fsyntax-only", "out.c"], f32)
    if p.returncode != 0:
        msgs.append(f"f32 c++: {p.stderr[:2000]}")
    # a float program fails earlier: the message up to its time must match
    fails = file_fails(src)
    fails = fails.split(" at t = ")[0] if fails else None
    for cc, flags in [("cc", C_FLAGS)]:
        label = f"f32 {cc} {' '.join(flags[:2])}"
        stdout, err = compile_and_run(cc, flags, "out.c", os.path.join(f32, "prog"), f32, fails)
        if err:
            msgs.append(f"{label}: {err}")
            continue
        got = outputs(f32)
        if sorted(got) != sorted(want):
            msgs.append(f"{label}: wrote {sorted(got)}, the f64 program wrote {sorted(want)}")
        for f in sorted(set(got) & set(want)):
            diff = same(got[f], want[f], tol, "the f64 program")
            if diff:
                msgs.append(f"{label}: {f}: {diff}")
        diff = same(stdout, want_out, tol, "the f64 program")
        if diff:
            msgs.append(f"{label}: stdout: {diff}")
    return msgs


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
            return [f"nodec run: exit {p.returncode}, want 1 with {fails!r}: {p.stderr[:500]}"], None
        if fails is None and p.returncode != 0:
            return [f"nodec run failed: {p.stderr[:500]}"], None
        want_out, want = p.stdout, outputs(ref)
        p = run([nodec, "emit-c", name, "-o", "out.c"], gen)
        if p.returncode != 0:
            return [f"nodec emit-c failed: {p.stderr[:500]}"], None
        builds = [("cc", C_FLAGS), ("c++", CXX_FLAGS)] + ([("cc", SAN_FLAGS)] if sanitize else [])
        f64_out = None  # the C99 build's outputs: what the f32 program is compared with
        for cc, flags in builds:
            for f in glob.glob(os.path.join(gen, "*.csv")):
                os.remove(f)
            label = f"{cc} {' '.join(flags[:2])}"
            stdout, err = compile_and_run(cc, flags, "out.c", os.path.join(gen, "prog"), gen, fails)
            if err:
                msgs.append(f"{label}: {err}")
                continue
            got = outputs(gen)
            if f64_out is None:
                f64_out = (stdout, got)
            if sorted(got) != sorted(want):
                msgs.append(f"{label}: wrote {sorted(got)}, nodec run wrote {sorted(want)}")
            for f in sorted(set(got) & set(want)):
                diff = same(got[f], want[f], tol)
                if diff:
                    msgs.append(f"{label}: {f}: {diff}")
            diff = same(stdout, want_out, tol)
            if diff:
                msgs.append(f"{label}: stdout: {diff}")
        skip = f32_skip(src)
        if f64_out is not None and not skip:
            msgs += check_f32(nodec, src, tmp, *f64_out)
    return msgs, skip


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    nodec, folder = os.path.abspath(sys.argv[1]), sys.argv[2]
    sanitize = "--sanitize" in sys.argv[3:]
    passed = failed = 0
    for src in sorted(glob.glob(os.path.join(folder, "*.node"))):
        msgs, skip = check_file(nodec, src, sanitize)
        print(("FAIL " if msgs else "ok   ") + os.path.basename(src) +
              (f" (f64 only: {skip})" if skip else " (and f32)"))
        for m in msgs:
            print("     " + m.replace("\n", "\n     "))
        failed += bool(msgs)
        passed += not msgs
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
