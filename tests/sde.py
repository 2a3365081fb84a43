#!/usr/bin/env python3
"""Stochastic differential equations (docs/language.md, "Stochastic differential
equations"), end to end through `nodec run`:

- geometric Brownian motion dx = mu x dt + sigma x dW, whose exact solution on the
  path W is x0 exp((mu - sigma^2/2) t + sigma W(t)): every sample of euler_maruyama and
  milstein against it on the same path (written by `brownian = ...`), a vector state with
  its own mu and sigma per element, and an ODE state beside it (g = 0: Euler's method);
- the strong order: mean |error| at T over 1000 paths at h, h/2, h/4, h/8 (each step's
  dW is a sum of the finer steps', the Brownian tree), slope ~1/2 for euler_maruyama
  and ~1 for milstein;
- reproducibility: the same seed gives byte-identical files, another seed another path,
  and the two solvers see the same path;
- an Ornstein-Uhlenbeck process's mean and variance at T over 4000 paths against the
  closed forms, within 4 standard errors (plus the step's bias);
- option precision = f32 against f64 on the same path;
- gradients (docs/gradients.md, "Verlet and the SDE methods"): `--check-gradient`
  through euler_maruyama and milstein trains (backprop on each step's path) with a
  state-dependent, time-dependent diffusion over a batch, identical histories from one
  seed, and a fresh path per training step.

Usage: sde.py NODEC"""
import csv, math, os, subprocess, sys, tempfile

import node_run
from node_run import check

NODEC = os.path.abspath(sys.argv[1])


def run(dir, text, name="m.node"):
    node_run.run(NODEC, dir, text, name)


def rows(dir, name):
    with open(os.path.join(dir, name)) as f:
        return list(csv.DictReader(f))


def by_sample(table, t):
    """{sample: row} at time t."""
    return {int(r["sample"]): r for r in table if float(r["t"]) == t}


GBM = """option seed = {seed}
{precision}
model GBM {{
  state x[2] = [1, 2]
  state y = 1
  const mu = [0.5, -0.2]
  const sigma = [0.8, 0.3]
  dx = mu * x dt + sigma * x dW
  dy/dt = -y
}}
solve GBM {{ t = [0, 0.5, 1]; samples = {n}; solver = {solver}(h = {h}); brownian = "w{tag}.csv"; output = "x{tag}.csv" }}
"""
MU, SIGMA, X0 = [0.5, -0.2], [0.8, 0.3], [1.0, 2.0]


def gbm_errors(dir, solver, h, n, seed=1, precision=""):
    """|x - exact| per sample at t = 1 for x[0], x[1], and the rows."""
    tag = "_%s_%g_%d_%d%s" % (solver, h, n, seed, "f32" if precision else "")
    run(dir, GBM.format(seed=seed, n=n, solver=solver, h=h, tag=tag, precision=precision))
    xs, ws = rows(dir, "x%s.csv" % tag), rows(dir, "w%s.csv" % tag)
    errs = []
    for t in (0.5, 1.0):
        X, W = by_sample(xs, t), by_sample(ws, t)
        for s in X:
            for i in range(2):
                c = "x[%d]" % i
                exact = X0[i] * math.exp((MU[i] - SIGMA[i] ** 2 / 2) * t + SIGMA[i] * float(W[s][c]))
                errs.append((t, s, i, abs(float(X[s][c]) - exact), exact))
    return errs, xs, ws


def per_sample(dir):
    for solver, h, bound_mean, bound_max in (("euler_maruyama", 2.0 ** -10, 0.02, 0.3),
                                              ("milstein", 2.0 ** -10, 1e-3, 0.02)):
        errs, xs, _ = gbm_errors(dir, solver, h, 200)
        e = [r[3] / max(1.0, r[4]) for r in errs]
        mean = sum(e) / len(e)
        check(mean < bound_mean and max(e) < bound_max,
              "%s h = 2^-10: GBM on the same path, mean relative error %.2e < %g, max %.2e < %g"
              % (solver, mean, bound_mean, max(e), bound_max))
        # the ODE state beside the noise: Euler's method, whatever the path
        y = [float(r["y"]) for r in xs if float(r["t"]) == 1.0]
        euler = (1 - h) ** round(1 / h)
        check(all(abs(v - euler) < 1e-12 for v in y),
              "%s: a state with dy/dt = -y beside the noise is Euler's method (%.15g)" % (solver, euler))


def strong_order(dir):
    for solver, want in (("euler_maruyama", 0.5), ("milstein", 1.0)):
        hs = [2.0 ** -k for k in (4, 5, 6, 7)]
        means = []
        for h in hs:
            errs, _, _ = gbm_errors(dir, solver, h, 1000, seed=11)
            e = [r[3] for r in errs if r[0] == 1.0 and r[2] == 0]
            means.append(sum(e) / len(e))
        slope = (math.log(means[0]) - math.log(means[-1])) / (math.log(hs[0]) - math.log(hs[-1]))
        check(abs(slope - want) < 0.15,
              "%s: strong order %.3f (want %.1f), mean |x(1) - exact| %s"
              % (solver, slope, want, ", ".join("%.3e" % m for m in means)))


def reproducible(dir):
    gbm_errors(dir, "milstein", 2.0 ** -6, 20, seed=5)
    a = open(os.path.join(dir, "x_milstein_0.015625_20_5.csv")).read()
    gbm_errors(dir, "milstein", 2.0 ** -6, 20, seed=5)
    b = open(os.path.join(dir, "x_milstein_0.015625_20_5.csv")).read()
    check(a == b, "the same seed gives byte-identical output")
    gbm_errors(dir, "milstein", 2.0 ** -6, 20, seed=6)
    c = open(os.path.join(dir, "x_milstein_0.015625_20_6.csv")).read()
    check(a != c, "another seed gives another path")
    gbm_errors(dir, "euler_maruyama", 2.0 ** -6, 20, seed=5)
    w1 = open(os.path.join(dir, "w_milstein_0.015625_20_5.csv")).read()
    w2 = open(os.path.join(dir, "w_euler_maruyama_0.015625_20_5.csv")).read()
    check(w1 == w2, "euler_maruyama and milstein draw the same path from one seed")
    W = by_sample(rows(dir, "w_milstein_0.015625_20_5.csv"), 1.0)
    check(len({W[s]["x[0]"] for s in W}) == len(W) and W[0]["x[0]"] != W[0]["x[1]"],
          "each sample and each element has its own Brownian motion")


OU = """option seed = 2
model OU {
  state x = 1
  const theta = 2
  const m = 0.5
  const s = 0.7
  dx = theta * (m - x) dt + s dW
}
solve OU { t = [0, 1]; samples = 4000; solver = euler_maruyama(h = 0.001953125); output = "ou.csv" }
"""


def ornstein_uhlenbeck(dir):
    run(dir, OU)
    x = [float(r["x"]) for r in rows(dir, "ou.csv") if float(r["t"]) == 1.0]
    n = len(x)
    mean = sum(x) / n
    var = sum((v - mean) ** 2 for v in x) / (n - 1)
    theta, m, s, x0, T, h = 2.0, 0.5, 0.7, 1.0, 1.0, 2.0 ** -9
    want_mean = m + (x0 - m) * math.exp(-theta * T)
    want_var = s * s / (2 * theta) * (1 - math.exp(-2 * theta * T))
    se_mean, se_var = math.sqrt(want_var / n), want_var * math.sqrt(2.0 / (n - 1))
    bias = 2 * theta * h  # Euler's O(h) bias on both moments, relative
    check(abs(mean - want_mean) < 4 * se_mean + bias * abs(want_mean - m),
          "OU mean at T: %.5f, closed form %.5f (se %.1e)" % (mean, want_mean, se_mean))
    check(abs(var - want_var) < 4 * se_var + bias * want_var,
          "OU variance at T: %.5f, closed form %.5f (se %.1e)" % (var, want_var, se_var))


def single_precision(dir):
    e64, x64, w64 = gbm_errors(dir, "milstein", 2.0 ** -8, 50, seed=9)
    e32, x32, w32 = gbm_errors(dir, "milstein", 2.0 ** -8, 50, seed=9, precision="option precision = f32")
    d = max(abs(float(a["x[0]"]) - float(b["x[0]"])) for a, b in zip(x64, x32))
    dw = max(abs(float(a["x[0]"]) - float(b["x[0]"])) for a, b in zip(w64, w32))
    check(d < 1e-4 and dw < 1e-6, "f32 sees the f64 path (|dW| %.1e) and solves it to %.1e" % (dw, d))


SDE_TRAIN = """option seed = {seed}
data rows = csv("rows.csv")
model N {{ param mu = 0.3; param sigma = 0.4; param c = 0.2; state x; state y = 0.5
  dx = mu * x dt + sigma * sin(x + c * t) dW
  dy = -c * y dt + sigma * y dW }}
train N {{ data = rows; init = {{ x = rows.x0 }}; t = [0, 0.5, 1]; final_loss = (x - 1.2)^2 + y^2
  solver = {solver}(h = 0.01); gradient = backprop; optimizer = sgd(lr = {lr}); steps = 4
  history = "h_{solver}_{seed}.csv" }}
"""


def gradients(dir):
    import re
    with open(os.path.join(dir, "rows.csv"), "w") as f:
        f.write("x0\n1\n0.5\n-0.3\n")
    for solver in ("euler_maruyama", "milstein"):
        path = os.path.join(dir, "g.node")
        with open(path, "w") as f:
            f.write(SDE_TRAIN.format(seed=3, solver=solver, lr="1e-2"))
        p = subprocess.run([NODEC, "run", "--quiet", "--check-gradient", "g.node"], cwd=dir,
                           capture_output=True, text=True)
        errs = [float(e) for e in re.findall(r"relative error (\S+)", p.stderr)]
        check(p.returncode == 0 and "backprop gradient against central differences" in p.stderr
              and len(errs) == 3 and max(errs) < 1e-6,
              "%s: backprop on the step's path against central differences: %s" % (solver, errs))
        def history(seed):  # every column but the wall-clock seconds
            run(dir, SDE_TRAIN.format(seed=seed, solver=solver, lr="1e-2"))
            return [(r["step"], r["loss"], r["nfe_forward"], r["nfe_backward"])
                    for r in rows(dir, "h_%s_%d.csv" % (solver, seed))]
        first, again, other = history(3), history(3), history(4)
        check(first == again and first != other,
              "%s: one seed gives one training history, another seed another" % solver)
        # with lr = 1e-12 the parameters stay (to 1e-12): only a fresh path per step
        # moves the loss
        run(dir, SDE_TRAIN.format(seed=3, solver=solver, lr="1e-12"))
        losses = [r["loss"] for r in rows(dir, "h_%s_3.csv" % solver)]
        check(len(losses) == 4 and len(set(losses)) == 4,
              "%s: each training step draws its own path (losses %s)" % (solver, ", ".join(losses)))


with tempfile.TemporaryDirectory() as dir:
    gradients(dir)
    per_sample(dir)
    strong_order(dir)
    reproducible(dir)
    ornstein_uhlenbeck(dir)
    single_precision(dir)
node_run.finish()
