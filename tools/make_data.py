#!/usr/bin/env python3
"""Writes the small data sets the examples read (standard library only, fixed seeds,
so the committed files can be regenerated bit for bit):

  examples/rings.csv      ANODE's concentric rings: x[0], x[1], label (0 inside, 1 outside)
  examples/rings_test.csv 800 more points of the same rings, held out for the error rate
  examples/moons.csv      two interleaving half circles, standardised: x[0], x[1]
  examples/lv_noisy.csv   a Lotka-Volterra trajectory with Gaussian noise: t, x, y

Usage: tools/make_data.py [OUTPUT_FOLDER]   (default: examples/ beside this script)
"""
import math, os, random, sys

def write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join(f"{v:.6f}" if isinstance(v, float) else str(v) for v in row) + "\n")

def rings(rng, n_each=100):
    """Dupont et al. (2019), section 4.1: g(x) = 0 for |x| <= 0.5, 1 for 1 <= |x| <= 1.5.
    No continuous 2-d flow maps the disc outside the ring it sits in, so a plain
    neural ODE cannot separate them with a linear readout; an augmented one can."""
    rows = []
    for label, lo, hi in ((0, 0.0, 0.5), (1, 1.0, 1.5)):
        for _ in range(n_each):
            # uniform in the annulus: the radius's square is uniform
            r = math.sqrt(rng.uniform(lo * lo, hi * hi))
            a = rng.uniform(0, 2 * math.pi)
            rows.append((r * math.cos(a), r * math.sin(a), label))
    rng.shuffle(rows)
    return rows

def moons(rng, n=512, noise=0.05):
    """scikit-learn's make_moons (two half circles, the second shifted to interleave),
    then standardised per coordinate so a flow from N(0, I) has little to stretch."""
    pts = []
    for i in range(n):
        a = math.pi * rng.random()
        if i % 2 == 0:
            x, y = math.cos(a), math.sin(a)
        else:
            x, y = 1 - math.cos(a), 0.5 - math.sin(a)
        pts.append((x + rng.gauss(0, noise), y + rng.gauss(0, noise)))
    mx = sum(p[0] for p in pts) / n
    my = sum(p[1] for p in pts) / n
    sx = math.sqrt(sum((p[0] - mx) ** 2 for p in pts) / n)
    sy = math.sqrt(sum((p[1] - my) ** 2 for p in pts) / n)
    return [((x - mx) / sx, (y - my) / sy) for x, y in pts]

# Lotka-Volterra: dx/dt = alpha x - beta x y, dy/dt = delta x y - gamma y.
LV_TRUE = (1.5, 1.0, 3.0, 1.0)  # alpha, beta, gamma, delta: the textbook values
LV_NOISE = 0.1

def lv_rhs(s, p):
    a, b, c, d = p
    x, y = s
    return (a * x - b * x * y, d * x * y - c * y)

def lv_solve(p, y0, ts, substeps=200):
    """Classical RK4 with `substeps` steps between observations (error ~1e-12 here)."""
    out, s = [y0], y0
    for t0, t1 in zip(ts, ts[1:]):
        h = (t1 - t0) / substeps
        for _ in range(substeps):
            k1 = lv_rhs(s, p)
            k2 = lv_rhs([s[i] + h / 2 * k1[i] for i in range(2)], p)
            k3 = lv_rhs([s[i] + h / 2 * k2[i] for i in range(2)], p)
            k4 = lv_rhs([s[i] + h * k3[i] for i in range(2)], p)
            s = [s[i] + h / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]) for i in range(2)]
        out.append(s)
    return out

def lotka_volterra(rng, n=101, t1=10.0):
    ts = [t1 * i / (n - 1) for i in range(n)]
    traj = lv_solve(LV_TRUE, [1.0, 1.0], ts)
    return [(t, x + rng.gauss(0, LV_NOISE), y + rng.gauss(0, LV_NOISE))
            for t, (x, y) in zip(ts, traj)]

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "examples")
    write_csv(os.path.join(out, "rings.csv"), ["x[0]", "x[1]", "label"], rings(random.Random(1)))
    write_csv(os.path.join(out, "rings_test.csv"), ["x[0]", "x[1]", "label"],
              rings(random.Random(9), 400))
    write_csv(os.path.join(out, "moons.csv"), ["x[0]", "x[1]"], moons(random.Random(2)))
    write_csv(os.path.join(out, "lv_noisy.csv"), ["t", "x", "y"], lotka_volterra(random.Random(3)))

if __name__ == "__main__":
    main()
