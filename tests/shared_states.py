#!/usr/bin/env python3
"""Shared states (docs/language.md, "Shared states"): ANODEV2-like trains (and batched
solves, whose CSV must keep its columns and values, and an evaluate) run with the
shared block (option shared_states = once, the default) and with every state per sample
(per_copy), side by side, must give the same loss history (to rounding where the two
layouts take the same steps: fixed steps, and the adaptive forward solve, whose norm counts
the shared block as per copy; within the backward solve's tolerance for the adaptive adjoint,
whose norm of one shared adjoint cannot equal that of B copies), and the once layout's
gradient must agree with central differences (--check-gradient). --dump=grad must say the
weights are shared once (and per_copy that nothing is), so the test cannot pass by running
the old layout twice.

Usage: shared_states.py NODEC EXAMPLES_DIR"""
import os, re, shutil, subprocess, sys, tempfile

MODEL = """model Coupled {
  state z[4]
  state W[4, 4] = W0
  state V[2] = v0
  state u = 1
  param W0[4, 4] ~ normal(0, 0.5)
  param P[4, 4] ~ normal(0, 0.1)
  param v0[2] = 0.3
  param c[4] = 0
  param w[4] ~ normal(0, 0.1)
  param b = 0
  dz/dt = tanh(W @ z + c) + V[0] * u * z
  dW/dt = tanh(P @ W) - W
  dV/dt = -V * sum(W) / 16
  du/dt = -u * V[1]
}
"""

# What a train and an evaluate of the rings share: the file's head and the block's.
HEAD = """option seed = 3
{option}
data rings = csv("rings.csv")
{model}
"""
RINGS = """  data       = rings
  init       = {{ z = concat(rings.x, zeros(2)) }}
  t          = [0, 1]
  final_loss = softplus(dot(w, z) + b) - rings.label * (dot(w, z) + b)"""

TRAIN = HEAD + "train Coupled {{\n" + RINGS + """ + {wloss}
  {extra}
  solver     = {solver}
  gradient   = {gradient}
  optimizer  = adam(lr = 2e-2)
  steps      = 4
  log_every  = 1
  history    = "loss.csv"
}}
"""

SOLVERS = {"rk4": "rk4(h = 0.1)", "dopri5": "dopri5(rtol = 1e-7, atol = 1e-9)",
           "bdf": "bdf(rtol = 1e-7, atol = 1e-9)", "rodas4": "rodas4(rtol = 1e-7, atol = 1e-9)",
           "kvaerno5": "kvaerno5(rtol = 1e-7, atol = 1e-9)"}
CASES = []
for s in ["rk4", "dopri5"]:
    for g in ["adjoint", "backprop", "checkpoint"]:
        CASES.append((s, g, "0.01 * sum(W * W)", ""))
for g in ["adjoint", "backprop", "checkpoint"]:
    CASES.append(("bdf", g, "0.01 * sum(W * W)", ""))
# a running cost reading the shared weights, and a minibatch of the rings
CASES.append(("rk4", "adjoint", "0", "regularize = 0.05 * sum(W * W) + 0.01 * dot(z, z)"))
CASES.append(("dopri5", "backprop", "0.1 * V[1]", "batch      = 16"))

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def run(nodec, d, text, *args):
    with open(os.path.join(d, "m.node"), "w") as f:
        f.write(text)
    p = subprocess.run([nodec, "run", *args, "m.node"], cwd=d, capture_output=True, text=True,
                       timeout=300)
    return p


def run_layout(nodec, d, name, o, text, kind, read):
    """Runs text (layout o), checks that --dump=grad says the states are shared once
    (or, per copy, that nothing is) in its `kind` kernel set, and returns read(d), or
    None after a failure."""
    p = run(nodec, d, text)
    if p.returncode != 0:
        fail("%s %s: nodec failed: %s" % (name, o, p.stderr[-2000:]))
        return None
    result = read(d)
    dump = run(nodec, d, text, "--dump=grad").stdout
    shared = re.findall(r"^kernels of %s .*; shared once: (.*)$" % kind, dump, re.M)
    want = ["W, V, u"] if o == "once" else []
    if shared != want:
        fail("%s %s: --dump=grad says shared %r, expected %r" % (name, o, shared, want))
    return result


def history(d):
    """(loss, nfe_forward, nfe_backward) of each logged step."""
    rows = open(os.path.join(d, "loss.csv")).read().split("\n")[1:]
    return [tuple(float(x) for x in r.split(",")[1:4]) for r in rows if r]


def check_case(nodec, d, solver, gradient, wloss, extra):
    before = len(failures)
    name = "%s/%s%s" % (solver, gradient, " (" + extra.split("=")[0].strip() + ")" if extra else "")
    texts = {o: TRAIN.format(option="option shared_states = " + o, model=MODEL, wloss=wloss,
                             extra=extra, solver=SOLVERS[solver], gradient=gradient)
             for o in ("once", "per_copy")}
    losses = {}
    for o, text in texts.items():
        losses[o] = run_layout(nodec, d, name, o, text, "train", history)
        if losses[o] is None:
            return
    ha, hb = losses["once"], losses["per_copy"]
    a, b = [h[0] for h in ha], [h[0] for h in hb]
    # the same evaluations: the same steps, and for bdf the same Newton iterations
    # (a wrong bordered Jacobian would converge too, more slowly); the adaptive
    # adjoint's backward steps may differ
    for k, (x, y) in enumerate(zip(ha, hb)):
        adaptive_adjoint = gradient == "adjoint" and solver != "rk4"
        same = x[1] == y[1] if adaptive_adjoint else x[1:] == y[1:]
        if not same:
            fail("%s: step %d evaluations %r (once) vs %r (per_copy)" % (name, k + 1, x[1:], y[1:]))
    # bdf's Newton iterations see the two layouts' roundings
    tol = 1e-6 if (solver != "rk4" and gradient == "adjoint") else 1e-9 if solver == "bdf" \
        else 1e-11
    if len(a) != 4 or len(a) != len(b):
        return fail("%s: %d and %d history rows" % (name, len(a), len(b)))
    for k, (x, y) in enumerate(zip(a, b)):
        if abs(x - y) > tol * max(1.0, abs(y)):
            fail("%s: step %d loss %.17g (once) vs %.17g (per_copy), tolerance %g"
                 % (name, k + 1, x, y, tol))
    if abs(a[-1] - a[0]) < 1e-6:
        fail("%s: the loss did not move (%g to %g): the test would not see a wrong gradient"
             % (name, a[0], a[-1]))
    p = run(nodec, d, texts["once"], "--check-gradient")
    errs = re.findall(r"^\s+(\w+)\s+relative error ([0-9.e+-]+)", p.stderr, re.M)
    if len(errs) != 6:
        return fail("%s: --check-gradient printed %d parameters:\n%s" % (name, len(errs), p.stderr))
    for param, e in errs:
        if float(e) > 1e-4:
            fail("%s: --check-gradient: %s relative error %s" % (name, param, e))
    if len(failures) == before:
        print("ok  %-32s loss %.10f -> %.10f" % (name, a[0], a[-1]))


SOLVE = """option seed = 5
{option}
{model}
solve Coupled {{
  samples = 6
  init    = {{ z ~ normal(0, 1) }}
  t       = linspace(0, 2, 5)
  solver  = {solver}
  output  = "out.csv"
}}
"""


def check_solve(nodec, d, solver):
    """A batched solve: the same CSV, columns and values, once and per copy."""
    name = "solve " + solver
    before = len(failures)
    tables = {}
    for o in ("once", "per_copy"):
        text = SOLVE.format(option="option shared_states = " + o, model=MODEL,
                            solver=SOLVERS[solver])
        tables[o] = run_layout(nodec, d, name, o, text, "model",
                               lambda d: open(os.path.join(d, "out.csv")).read().split("\n"))
        if tables[o] is None:
            return
    a, b = tables["once"], tables["per_copy"]
    if a[0] != b[0] or len(a) != len(b) or len(a) != 6 * 5 + 2:
        return fail("%s: headers %r / %r, %d and %d lines" % (name, a[0], b[0], len(a), len(b)))
    # the implicit solvers' Newton iterations see the two layouts' roundings
    tol = 1e-13 if solver in ("rk4", "dopri5") else 1e-9
    for ra, rb in zip(a[1:], b[1:]):
        for x, y in zip(ra.split(","), rb.split(",")):
            if x != y and abs(float(x) - float(y)) > tol * max(1.0, abs(float(y))):
                return fail("%s: row %r against %r" % (name, ra, rb))
    if len(failures) == before:
        print("ok  %-32s %d rows of %d columns" % (name, len(a) - 2, len(a[0].split(","))))


EVALUATE = HEAD + "evaluate Coupled {{\n" + RINGS + """
  metric wsum = sum(W) + V[1] * z[0]
  solver     = dopri5(rtol = 1e-7, atol = 1e-9)
  output     = "eval.csv"
}}
"""


def check_evaluate(nodec, d):
    """An evaluate's loss and metric, once and per copy."""
    rows = {}
    for o in ("once", "per_copy"):
        text = EVALUATE.format(option="option shared_states = " + o, model=MODEL)
        rows[o] = run_layout(nodec, d, "evaluate", o, text, "evaluate",
                             lambda d: open(os.path.join(d, "eval.csv")).read().split("\n"))
        if rows[o] is None:
            return
    a, b = rows["once"], rows["per_copy"]
    if a[0] != b[0] or len(a) < 2:
        return fail("evaluate: %r against %r" % (a, b))
    va, vb = [float(x) for x in a[1].split(",")], [float(x) for x in b[1].split(",")]
    if any(abs(x - y) > 1e-12 * max(1.0, abs(y)) for x, y in zip(va, vb)):
        return fail("evaluate: %r against %r" % (a[1], b[1]))
    print("ok  %-32s %s = %s" % ("evaluate", a[0], a[1]))


def main():
    nodec, examples = sys.argv[1], sys.argv[2]
    d = tempfile.mkdtemp(prefix="nodec_shared_")
    try:
        # 48 of the rings: enough samples for a batch, few enough for bdf
        rows = open(os.path.join(examples, "rings.csv")).read().split("\n")
        with open(os.path.join(d, "rings.csv"), "w") as f:
            f.write("\n".join(rows[:49]) + "\n")
        for case in CASES:
            check_case(nodec, d, *case)
        for solver in SOLVERS:
            check_solve(nodec, d, solver)
        check_evaluate(nodec, d)
    finally:
        shutil.rmtree(d)
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
