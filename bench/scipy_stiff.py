#!/usr/bin/python3
"""The stiff test problems of bench/bench_stiff.c and tests/unit/check_bdf.c in scipy.

  /usr/bin/python3 bench/scipy_stiff.py refs    tight references (Radau, rtol 1e-12) for check_bdf.c
  /usr/bin/python3 bench/scipy_stiff.py bench   scipy BDF and LSODA timings at rtol 1e-6 (the bench's
                                       scipy column): mean wall time of repeated solves

Problems (E. Hairer, G. Wanner, Solving ODEs II, and the Bari test set for IVP solvers,
https://archimede.uniba.it/~testset/): Robertson (IV.1), Van der Pol with mu = 1000
(IV.1, in the unscaled form y2' = mu (1 - y1^2) y2 - y1), HIRES and OREGO.
"""
import sys
import time

import numpy as np
from scipy.integrate import solve_ivp


def robertson(t, y):
    return [-0.04 * y[0] + 1e4 * y[1] * y[2],
            0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2,
            3e7 * y[1] ** 2]


def robertson_jac(t, y):
    return [[-0.04, 1e4 * y[2], 1e4 * y[1]],
            [0.04, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1]],
            [0.0, 6e7 * y[1], 0.0]]


MU = 1000.0


def vdp(t, y):
    return [y[1], MU * (1 - y[0] ** 2) * y[1] - y[0]]


def vdp_jac(t, y):
    return [[0.0, 1.0], [-2 * MU * y[0] * y[1] - 1, MU * (1 - y[0] ** 2)]]


def hires(t, y):
    return [-1.71 * y[0] + 0.43 * y[1] + 8.32 * y[2] + 0.0007,
            1.71 * y[0] - 8.75 * y[1],
            -10.03 * y[2] + 0.43 * y[3] + 0.035 * y[4],
            8.32 * y[1] + 1.71 * y[2] - 1.12 * y[3],
            -1.745 * y[4] + 0.43 * y[5] + 0.43 * y[6],
            -280 * y[5] * y[7] + 0.69 * y[3] + 1.71 * y[4] - 0.43 * y[5] + 0.69 * y[6],
            280 * y[5] * y[7] - 1.81 * y[6],
            -280 * y[5] * y[7] + 1.81 * y[6]]


def orego(t, y):
    return [77.27 * (y[1] + y[0] * (1 - 8.375e-6 * y[0] - y[1])),
            (y[2] - (1 + y[0]) * y[1]) / 77.27,
            0.161 * (y[0] - y[2])]


PROBLEMS = {
    "robertson": (robertson, [1.0, 0.0, 0.0],
                  [0.0, 40.0, 4e2, 4e3, 4e4, 4e5, 4e6, 4e7, 4e8, 4e9, 4e10], 1e-22),
    "vdp": (vdp, [2.0, 0.0], [0.0, 1.0, 500.0, 1000.0, 2000.0, 3000.0], 1e-12),
    "hires": (hires, [1.0, 0, 0, 0, 0, 0, 0, 0.0057], [0.0, 5.0, 321.8122], 1e-16),
    "orego": (orego, [1.0, 2.0, 3.0], [0.0, 30.0, 180.0, 360.0], 1e-14),
}


def refs():
    for name, (f, y0, ts, atol) in PROBLEMS.items():
        sol = solve_ivp(f, (ts[0], ts[-1]), y0, method="Radau", t_eval=ts, rtol=1e-12,
                        atol=atol, dense_output=False)
        assert sol.success, sol.message
        print(f"/* {name}: scipy {__import__('scipy').__version__} Radau rtol 1e-12 "
              f"atol {atol:g}, {sol.nfev} evaluations */")
        for j, t in enumerate(ts):
            row = ", ".join(f"{v:.17g}" for v in sol.y[:, j])
            print(f"    {{{t:.17g}, {{{row}}}}},")


def timed(fun, t1, y0, method, rtol, atol, jac):
    reps, best = 0, 0.0
    start = time.perf_counter()
    while reps < 5 or time.perf_counter() - start < 1.0:
        t = time.perf_counter()
        sol = solve_ivp(fun, (0.0, t1), y0, method=method, rtol=rtol, atol=atol, jac=jac)
        t = time.perf_counter() - t
        best = t if reps == 0 else min(best, t)
        reps += 1
    return best * 1e3, sol


def bench():
    cases = [("robertson", robertson, robertson_jac, [1.0, 0.0, 0.0], 1e5, 1e-6, 1e-10),
             ("vdp", vdp, vdp_jac, [2.0, 0.0], 3000.0, 1e-6, 1e-10)]
    for name, f, jac, y0, t1, rtol, atol in cases:
        for method in ("BDF", "LSODA"):
            ms, sol = timed(f, t1, y0, method, rtol, atol, jac)
            print(f"scipy {name} {method} ms {ms:.3f} steps {sol.t.size - 1} nfev {sol.nfev} "
                  f"y {' '.join(f'{v:.10g}' for v in sol.y[:, -1])}")


if __name__ == "__main__":
    {"refs": refs, "bench": bench}[sys.argv[1] if len(sys.argv) > 1 else "bench"]()
