#!/usr/bin/env python3
"""Batches of a forced model and of irregular series (issue 15, part 2): what solving
samples at their own times as one batch buys over solving them one at a time.
Usage: bench_batches.py NODEC [--quick]

  windows    a forced model (a damped oscillator driven by cos(1.3 t), fitted by an MLP),
             windows(length = 20, count = C) on a uniform grid, one training iteration:
             C windows as one batch (each on its own clock) against C iterations of one
             window (count = 1), which is what each of the C one-window solves of the
             old path cost. Time per iteration from the train's own summary (the JIT's
             compile time excluded), the per-iteration figure of count = 1 times C.
  irregular  N trajectories with missing values (a common grid of 40 times relative to
             random starts, 30 % of the values missing), a training iteration of a forced
             model with the adjoint: one batch on the union of the relative times against
             N trains of one trajectory each. (Trajectories whose times are all apart are
             solved one at a time: a union of all-distinct times makes every time a step
             end for the whole batch, which costs more than it saves; tools/train.c,
             UNION_MIN_SHARED.)

Everything of one table runs in the same minute, alternating, best of 3 (the machine is
shared): the ratios are the claims, not the absolute times.
"""
import os, random, re, subprocess, sys, tempfile

nodec = os.path.abspath(sys.argv[1])
quick = "--quick" in sys.argv
repeats = 1 if quick else 3

TRUE = """model True { state x[2] = [1, 0]; dx/dt = [x[1], -0.3 * x[1] - x[0] + cos(1.3 * t)] }
data obs = simulate(True, t = linspace(0, 60, 1201), solver = dopri5(rtol = 1e-9, atol = 1e-11))
model Fit { state x[2]; net f = MLP(2, 32, 2, tanh); dx/dt = f(x) + [0, cos(1.3 * t)] }
"""

def run(wd, text, pattern):
    path = os.path.join(wd, "bench.node")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([nodec, "run", path], capture_output=True, text=True, cwd=wd, timeout=600)
    if p.returncode != 0:
        sys.exit(f"bench_batches: nodec failed:\n{p.stderr}")
    m = re.findall(pattern, p.stderr)
    if not m:
        sys.exit(f"bench_batches: no timing line in:\n{p.stderr}")
    return [float(x) for x in m]

def train_seconds_per_step(wd, count, steps):
    text = TRUE + (f"train Fit {{ data = obs; loss = sum((x - obs.x)^2); "
                   f"batch = windows(length = 20, count = {count}); solver = rk4(h = 0.05); "
                   f"optimizer = adam(lr = 1e-3); steps = {steps} }}\n")
    return run(wd, text, r"done: \d+ steps in ([0-9.]+) s")[0] / steps

def windows_table(wd):
    print("windows of a forced model, rk4(h = 0.05), length 20 (ms per iteration of C windows)")
    print(f"{'C':>6} {'one batch':>11} {'one at a time':>14} {'ratio':>7}")
    for C in ([16, 64] if quick else [16, 64, 256]):
        steps = 200 if C >= 64 else 1000
        best_b = best_o = None
        for _ in range(repeats):
            b = train_seconds_per_step(wd, C, steps)
            o = train_seconds_per_step(wd, 1, 2000) * C
            best_b = b if best_b is None or b < best_b else best_b
            best_o = o if best_o is None or o < best_o else best_o
        print(f"{C:>6} {best_b * 1e3:>11.3f} {best_o * 1e3:>14.3f} {best_o / best_b:>6.1f}x")

def irregular_files(wd, n, rng):
    """n trajectories from random starts on a common grid of 40 relative times
    (step 0.1), each observation kept with probability 0.7 (the first always)."""
    rows = []
    for k in range(n):
        t0, x = rng.uniform(0, 5), rng.uniform(-1, 1)
        for j in range(40):
            if j == 0 or rng.random() < 0.7:
                rows.append((k, t0 + 0.1 * j, x, 0.5 * x))
            x += rng.uniform(-0.1, 0.1)
    header = "id,t,x[0],x[1]\n"
    with open(os.path.join(wd, "all.csv"), "w") as f:
        f.write(header + "".join(f"{k},{t!r},{a!r},{b!r}\n" for k, t, a, b in rows))
    for k in range(n):
        with open(os.path.join(wd, f"one{k}.csv"), "w") as f:
            f.write(header + "".join(f"{i},{t!r},{a!r},{b!r}\n" for i, t, a, b in rows if i == k))

def train_text(files, steps):
    text = "model Fit { state x[2]; net f = MLP(2, 32, 2, tanh); dx/dt = f(x) + [0, cos(1.3 * t)] }\n"
    for i, name in enumerate(files):
        text += (f'data d{i} = csv("{name}")\ntrain Fit {{ data = d{i}; loss = sum((x - d{i}.x)^2); '
                 f"solver = dopri5(rtol = 1e-6, atol = 1e-8); optimizer = adam(lr = 1e-3); "
                 f"steps = {steps} }}\n")
    return text

def irregular_table(wd):
    print("\ntrajectories with missing values (a common relative grid of 40 times, 30 % missing,"
          "\nrandom starts), a forced model, dopri5 + adjoint (ms per iteration over all N)")
    print(f"{'N':>6} {'one batch':>11} {'one at a time':>14} {'ratio':>7}")
    rng = random.Random(5)
    pattern = r"done: \d+ steps in ([0-9.]+) s"
    for n in ([16, 64] if quick else [16, 64, 256]):
        irregular_files(wd, n, rng)
        steps = max(10, 2000 // n)
        best_b = best_o = None
        for _ in range(repeats):
            b = run(wd, train_text(["all.csv"], steps), pattern)[0] / steps
            o = sum(run(wd, train_text([f"one{k}.csv" for k in range(n)], steps), pattern)) / steps
            best_b = b if best_b is None or b < best_b else best_b
            best_o = o if best_o is None or o < best_o else best_o
        print(f"{n:>6} {best_b * 1e3:>11.2f} {best_o * 1e3:>14.2f} {best_o / max(best_b, 1e-9):>6.1f}x")

with tempfile.TemporaryDirectory() as wd:
    windows_table(wd)
    irregular_table(wd)
