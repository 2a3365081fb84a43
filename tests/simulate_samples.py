#!/usr/bin/env python3
"""`data = simulate(..., samples = N, keep = K, noise = s, output = "f.csv")`
(docs/language.md, "data"), end to end through `nodec run`, from the CSV it writes:

- dx/dt = -k x with x ~ uniform(1, 2) per trajectory: the columns id, t, x; N
  trajectories of K rows each, ids 0..N-1 in order, times increasing, distinct, on
  the grid and starting at t0; every value x0 exp(-k t) for its trajectory's x0 (to
  1e-9), the x0 all in [1, 2) and all different; the kept times' frequencies
  those of K - 1 of the nt - 1 later times chosen uniformly (chi-square);
- reproducibility: the same seed gives the same bytes, another seed other data; the
  first trajectories of a larger N are the same (per-sample step control: to the
  last digit);
- noise = s against noise = 0 under one seed: the same ids, times and (noise-free)
  trajectories, the differences of mean 0 and standard deviation s (4 standard
  errors), and noise = 2s gives twice the differences;
- a train over the simulation and the same train over csv() of the file it wrote
  give the same losses step by step (the simulation is batched as a CSV of
  id,t,x: trajectories with their own times);
- a vector state and a second-order state (their columns, x[0], x[1], dx/dt).

Usage: simulate_samples.py NODEC"""
import csv, math, os, sys, tempfile

import node_run
from node_run import check

NODEC = os.path.abspath(sys.argv[1])


def run(dir, text, name="m.node"):
    node_run.run(NODEC, dir, text, name)


def table(dir, name):
    with open(os.path.join(dir, name), newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [[float(v) for v in r] for r in rows[1:]]


def trajectories(rows):
    """{id: [row, ...]}, the ids in file order, and whether each id's rows are together."""
    out, order = {}, []
    for r in rows:
        i = int(r[0])
        if i not in out:
            out[i] = []
            order.append(i)
        out[i].append(r)
    runs = sum(1 for k in range(len(rows)) if k == 0 or rows[k][0] != rows[k - 1][0])
    return out, order, runs == len(order)


DECAY = """option seed = {seed}
model Decay {{ state x; const k = 0.7; dx/dt = -k * x }}
data obs = simulate(Decay, t = linspace(0, 3, {nt}), samples = {n}, keep = {keep}{noise},
                    init = {{ x ~ uniform(1, 2) }},
                    solver = dopri5(rtol = 1e-12, atol = 1e-14{control}), output = "{out}")
"""


def decay(dir, out, seed=1, n=50, keep=7, nt=31, noise="", control=""):
    run(dir, DECAY.format(seed=seed, n=n, keep=keep, nt=nt, out=out, control=control,
                          noise=noise and f", noise = {noise}"), out + ".node")
    return table(dir, out)


def check_decay(dir):
    nt, n, keep, k = 31, 50, 7, 0.7
    grid = [3 * j / (nt - 1) for j in range(nt)]
    head, rows = decay(dir, "a.csv")
    check(head == ["id", "t", "x"], f"columns id,t,x (got {head})")
    check(len(rows) == n * keep, f"{n} x {keep} rows (got {len(rows)})")
    by, order, together = trajectories(rows)
    check(order == list(range(n)) and together, "ids 0..N-1, each trajectory's rows together, in order")
    check(all(len(by[i]) == keep for i in by), f"every trajectory has {keep} rows")
    ts_ok = all(by[i][0][1] == 0 and all(a[1] < b[1] for a, b in zip(by[i], by[i][1:]))
                and all(any(r[1] == g for g in grid) for r in by[i]) for i in by)
    check(ts_ok, "each trajectory's times start at t0, increase, and are times of the grid")
    err = max(abs(r[2] - by[i][0][2] * math.exp(-k * r[1])) for i in by for r in by[i])
    check(err < 1e-9, f"each value is x0 exp(-k t) for its trajectory's x0 (max error {err:.2e})")
    x0 = [by[i][0][2] for i in by]
    check(all(1 <= v < 2 for v in x0) and len(set(x0)) == n, "x0 drawn per trajectory in [1, 2)")
    # the later times' counts: each is kept with probability (K-1)/(nt-1)
    counts = {}
    head, many = decay(dir, "many.csv", n=4000, keep=keep, nt=nt)
    for r in many:
        counts[r[1]] = counts.get(r[1], 0) + 1
    check(counts.get(0.0) == 4000, "t0 kept by every trajectory")
    expect = 4000 * (keep - 1) / (nt - 1)
    chi2 = sum((counts.get(g, 0) - expect) ** 2 / expect for g in grid[1:])
    # 29 degrees of freedom (the counts sum to 4000 (K-1)): the 0.999 quantile is 58.3
    check(chi2 < 58.3, f"the kept times are uniform over the later times (chi2 {chi2:.1f}, 29 dof)")
    return rows


def check_reproducible(dir, rows):
    again = decay(dir, "b.csv")[1]
    check(again == rows, "the same seed gives the same data set")
    other = decay(dir, "c.csv", seed=2)[1]
    check(other != rows, "another seed gives another data set")
    small = decay(dir, "d.csv", n=20, control=", step_control = per_sample")[1]
    large = decay(dir, "e.csv", n=50, control=", step_control = per_sample")[1]
    check(small == large[:len(small)], "the first 20 trajectories of 50 are those of 20 (per_sample)")
    shared = max(abs(a[2] - b[2]) for a, b in zip(small, rows))
    check(all(a[:2] == b[:2] for a, b in zip(small, rows)) and shared < 1e-10,
          f"... and of a shared-step solve, times exactly, values to the tolerance ({shared:.1e})")


def check_noise(dir):
    s = 0.05
    clean = decay(dir, "n0.csv", n=400, noise="0")[1]
    noisy = decay(dir, "n1.csv", n=400, noise=str(s))[1]
    twice = decay(dir, "n2.csv", n=400, noise=str(2 * s))[1]
    check(all(a[:2] == b[:2] for a, b in zip(clean, noisy)), "noise changes neither ids nor times")
    d = [b[2] - a[2] for a, b in zip(clean, noisy)]
    m = sum(d) / len(d)
    sd = math.sqrt(sum((v - m) ** 2 for v in d) / (len(d) - 1))
    n = len(d)
    check(abs(m) < 4 * s / math.sqrt(n), f"the noise's mean is 0 (got {m:.2e})")
    check(abs(sd - s) < 4 * s / math.sqrt(2 * n), f"the noise's standard deviation is {s} (got {sd:.4f})")
    d2 = [b[2] - a[2] for a, b in zip(clean, twice)]
    check(max(abs(b - 2 * a) for a, b in zip(d, d2)) < 1e-12, "noise = 2s draws the same noise, twice")
    by, _, _ = trajectories(clean)
    err = max(abs(r[2] - by[i][0][2] * math.exp(-0.7 * r[1])) for i in by for r in by[i])
    check(err < 1e-9, f"noise = 0 leaves the exact values ({err:.1e})")


TRAIN = """option seed = 3
model True {{ state x; const k = 0.7; dx/dt = -k * x }}
{data}
model Fit {{ state x; param k = 0.3; dx/dt = -k * x }}
train Fit {{ data = obs; loss = (x - obs.x)^2; optimizer = adam(lr = 0.05); steps = 3; log_every = 1;
            solver = dopri5(rtol = 1e-10, atol = 1e-12); history = "{hist}" }}
"""
SIM = ('data obs = simulate(True, t = linspace(0, 2, 21), samples = 30, keep = 6, noise = 0.01, '
       'init = { x ~ uniform(1, 2) }, solver = dopri5(rtol = 1e-12, atol = 1e-14), output = "sim.csv")')


def check_train(dir):
    run(dir, TRAIN.format(data=SIM, hist="h_sim.csv"), "t1.node")
    run(dir, TRAIN.format(data='data obs = csv("sim.csv")', hist="h_csv.csv"), "t2.node")
    a, b = table(dir, "h_sim.csv"), table(dir, "h_csv.csv")
    la, lb = [r[1] for r in a[1]], [r[1] for r in b[1]]
    check(len(la) == 3 and la == lb, f"a train over the simulation is the train over its csv ({la} vs {lb})")
    check(la[2] < la[0], "and its loss falls")


SHAPES = """option seed = 4
model V {
  state x[2]
  state dx/dt = 0
  d2x/dt2 = -x
}
data obs = simulate(V, t = linspace(0, 1, 11), samples = 3, keep = 4,
                    init = { x ~ uniform(-1, 1) }, output = "v.csv")
"""


def check_shapes(dir):
    run(dir, SHAPES, "v.node")
    head, rows = table(dir, "v.csv")
    check(head == ["id", "t", "x[0]", "x[1]", "dx/dt[0]", "dx/dt[1]"], f"vector and velocity columns ({head})")
    # x'' = -x from (x0, 0): x = x0 cos t, dx/dt = -x0 sin t
    by, _, _ = trajectories(rows)
    err = max(abs(r[2 + e] - by[i][0][2 + e] * math.cos(r[1])) + abs(r[4 + e] + by[i][0][2 + e] * math.sin(r[1]))
              for i in by for r in by[i] for e in (0, 1))
    check(len(rows) == 12 and err < 1e-5, f"3 x 4 rows of x0 cos t, -x0 sin t (error {err:.1e})")


with tempfile.TemporaryDirectory() as dir:
    rows = check_decay(dir)
    check_reproducible(dir, rows)
    check_noise(dir)
    check_train(dir)
    check_shapes(dir)

node_run.finish()
