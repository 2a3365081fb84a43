"""What the end-to-end tests that write .node files share (sde.py,
simulate_samples.py): `nodec run --quiet` on a program in a folder, and a
check that prints each result and counts the failures."""
import os, subprocess, sys

FAILS = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        FAILS.append(what)


def run(nodec, dir, text, name="m.node"):
    """Writes text to dir/name and runs it; exits with its errors when it fails."""
    path = os.path.join(dir, name)
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([nodec, "run", "--quiet", name], cwd=dir, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("nodec run failed:\n" + text + "\n" + p.stderr)


def finish():
    print("%d failed" % len(FAILS))
    sys.exit(1 if FAILS else 0)
