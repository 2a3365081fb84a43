#!/usr/bin/env python3
"""Golden tests for nodec: runs every *.node file in a folder and checks what its
comments expect (Wren's `// expect:`, jq's %%FAIL blocks).

  #| TEXT                                  the exact standard error, line by line; nodec must
                                            exit with status 1 (error goldens)
  # args: check                             the subcommand and flags (default: run); the file
                                            goes last, or where `{file}` stands
  # expect: OUT.csv rows = N                data rows in an output file
  # expect: OUT.csv ROW COLUMN = V ± TOL    ROW is a 0-based index or `last`
  # expect: OUT.csv ROW COLUMN = REF.csv ROW COLUMN ± TOL
                                            against another output's cell (± 0: the same
                                            double, as the CSV writes every digit)
  # expect-stdout: TEXT                     TEXT appears in standard output
  # expect-stderr: TEXT                     TEXT appears in standard error
  # expect-exit: N                          exit status (default 0, or 1 with #| lines)
  # timeout: SECONDS                        default 60
  # setup: SHELL COMMAND                    run in the temporary folder first (a folder where
                                            a file is expected, a symlink, a truncated copy)
  # skip-if-root: REASON                    skipped when run as root (file permissions)
  # needs-plots: REASON                     skipped when nodec was built without PLplot
  # stdout-to: PATH                         standard output into PATH (/dev/full: a failed
                                            write), not captured

A source that cannot hold comments (empty, binary garbage, NUL bytes, broken UTF-8)
takes its directives from NAME.node.expect beside it.

Each file runs in a fresh temporary folder holding a copy of the folder's files, so
outputs never collide. Usage: golden.py NODEC FOLDER [-k SUBSTRING]
"""
import csv, os, re, shutil, subprocess, sys, tempfile

def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return [h.strip() for h in rows[0]], rows[1:]

def read_cell(workdir, out, row, col):
    """(value, None), or (None, what is wrong)."""
    path = os.path.join(workdir, out)
    if not os.path.exists(path):
        return None, f"{out} was not written"
    head, body = read_csv(path)
    if col not in head:
        return None, f"{out} has no column {col!r} (columns: {head})"
    r = len(body) - 1 if row == "last" else int(row)
    if r >= len(body):
        return None, f"{out} has {len(body)} rows, wanted row {row}"
    return float(body[r][head.index(col)]), None

def check_value(workdir, out, row, col, value, tol):
    got, err = read_cell(workdir, out, row, col)
    if err:
        return err
    if not abs(got - value) <= tol:
        return f"{out} row {row} {col}: got {got!r}, want {value!r} ± {tol}"
    return None

def directives(src):
    sidecar = src + ".expect"
    with open(sidecar if os.path.exists(sidecar) else src, "rb") as f:
        return f.read().decode("utf-8", errors="replace")

def run_one(nodec, src, workdir):
    text = directives(src)
    name = os.path.basename(src)
    skip = re.findall(r"^#\s*skip-if-root:\s*(.+)$", text, re.M)
    if skip and os.geteuid() == 0:
        return None
    if re.search(r"^#\s*needs-plots:", text, re.M) and "without PLplot" in subprocess.run(
            [nodec, "--version"], capture_output=True, text=True).stdout:
        return None
    for cmd in re.findall(r"^#\s*setup:\s*(.+)$", text, re.M):
        subprocess.run(cmd, shell=True, cwd=workdir, check=True)
    args = (re.findall(r"^#\s*args:\s*(.+)$", text, re.M) or ["run"])[0].split()
    timeout = float((re.findall(r"^#\s*timeout:\s*(\S+)", text, re.M) or ["60"])[0])
    want_err = [line[3:] if line.startswith("#| ") else line[2:]
                for line in text.splitlines() if line.startswith("#|")]
    exits = re.findall(r"^#\s*expect-exit:\s*(\d+)", text, re.M)
    want_exit = int(exits[0]) if exits else (1 if want_err else 0)
    try:
        argv = [a.replace("{file}", name) for a in args]
        if not any("{file}" in a for a in args):
            argv.append(name)
        to = re.findall(r"^#\s*stdout-to:\s*(\S+)", text, re.M)
        with open(to[0], "wb") if to else open(os.devnull, "rb") as sink:
            p = subprocess.run([nodec, *argv], cwd=workdir, timeout=timeout,
                               stdout=sink if to else subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout = p.stdout or b""
    except subprocess.TimeoutExpired:
        return [f"no answer in {timeout:.0f} s"]
    p.stdout = p.stdout.decode("utf-8", errors="backslashreplace")
    p.stderr = p.stderr.decode("utf-8", errors="backslashreplace")
    if p.returncode != want_exit:
        return [f"exit {p.returncode}, want {want_exit}; stderr: {p.stderr.strip()[-600:]}"]
    msgs = []
    if want_err and p.stderr.splitlines() != want_err:
        msgs.append("stderr differs:\n--- want\n" + "\n".join(want_err) + "\n--- got\n" + p.stderr)
    for want in re.findall(r"^#\s*expect-stdout:\s*(.+)$", text, re.M):
        if want.strip() not in p.stdout:
            msgs.append(f"stdout lacks {want.strip()!r}: {p.stdout[-400:]!r}")
    for want in re.findall(r"^#\s*expect-stderr:\s*(.+)$", text, re.M):
        if want.strip() not in p.stderr:
            msgs.append(f"stderr lacks {want.strip()!r}: {p.stderr[-400:]!r}")
    for m in re.finditer(r"^#\s*expect:\s*(\S+)\s+rows\s*=\s*(\d+)\s*$", text, re.M):
        path = os.path.join(workdir, m.group(1))
        n = len(read_csv(path)[1]) if os.path.exists(path) else -1
        if n != int(m.group(2)):
            msgs.append(f"{m.group(1)}: {n} data rows, want {m.group(2)}")
    for m in re.finditer(r"^#\s*expect:\s*(\S+)\s+(\w+)\s+(\S+)\s*=\s*(\S+)\s*(?:±|\+-)\s*(\S+)\s*$",
                         text, re.M):
        out, row, col, value, tol = m.groups()
        err = check_value(workdir, out, row, col, float(value), float(tol))
        if err:
            msgs.append(err)
    cell = r"(\S+\.csv)\s+(\w+)\s+(\S+)"
    for m in re.finditer(r"^#\s*expect:\s*" + cell + r"\s*=\s*" + cell + r"\s*(?:±|\+-)\s*(\S+)\s*$",
                         text, re.M):
        out, row, col, ref, ref_row, ref_col, tol = m.groups()
        value, err = read_cell(workdir, ref, ref_row, ref_col)
        err = err or check_value(workdir, out, row, col, value, float(tol))
        if err:
            msgs.append(f"{err} (= {ref} {ref_row} {ref_col})")
    return msgs

def main():
    argv = sys.argv[1:]
    only = ""
    if "-k" in argv:
        i = argv.index("-k"); only = argv[i + 1]; del argv[i:i + 2]
    if len(argv) != 2:
        print(__doc__); sys.exit(2)
    nodec, folder = os.path.abspath(argv[0]), os.path.abspath(argv[1])
    files = sorted(f for f in os.listdir(folder) if f.endswith(".node") and only in f)
    passed = failed = skipped = 0
    for f in files:
        with tempfile.TemporaryDirectory() as wd:
            for extra in os.listdir(folder):
                src = os.path.join(folder, extra)
                if os.path.isfile(src):
                    shutil.copy(src, wd)
            msgs = run_one(nodec, os.path.join(folder, f), wd)
        if msgs is None:
            skipped += 1
            print(f"skip {f} (as root, or a plot without PLplot)")
        elif msgs:
            failed += 1
            print(f"FAIL {f}: " + "; ".join(msgs))
        else:
            passed += 1
            print(f"ok   {f}")
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    sys.exit(1 if failed or not files else 0)

if __name__ == "__main__":
    main()
