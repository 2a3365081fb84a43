"""scipy's solve_ivp (RK45, DOP853) on bench_solvers' problems, run by
bench_solvers as a subprocess: the true spiral dy/dt = A^T y^3 and the
2-50-2 tanh MLP on y^3 (batch 1 and 20, the batch as one system of 40, as
nodec's shared step size treats it) over [0, 25], 1000 output times,
rtol 1e-7, atol 1e-9. The MLP's parameters come from the file bench_solvers
writes, so every tool solves the same problem.

Usage: python3 scipy_solvers.py PARAMS_FILE [rounds]
Prints one line per problem and method:
  RESULT problem method ms_per_solve nfe steps y(25)...
"""
import sys
import time

import numpy as np
from scipy.integrate import solve_ivp
from scipy.integrate import DOP853, RK45

T_END, NT, RTOL, ATOL = 25.0, 1000, 1e-7, 1e-9
A = np.array([[-0.1, 2.0], [-2.0, -0.1]])


def read_params(path):
    arrays = {}
    with open(path) as f:
        for line in f:
            name, *values = line.split()
            arrays[name] = np.array([float(v) for v in values])
    return (arrays["W1"].reshape(50, 2), arrays["b1"], arrays["W2"].reshape(2, 50),
            arrays["b2"])


def circle(batch):
    """Points on the circle of radius 2 starting at [2, 0], as bench_solvers."""
    phi = 2.0 * np.pi * np.arange(batch) / batch
    return np.column_stack([2.0 * np.cos(phi), 2.0 * np.sin(phi)]).ravel()


def spiral_rhs(t, y):
    return (y ** 3) @ A  # the row vector y^3 times A: A^T y^3


def mlp_rhs_for(params, batch):
    W1, b1, W2, b2 = params

    def rhs(t, y):
        z = y.reshape(batch, 2) ** 3
        return (np.tanh(z @ W1.T + b1) @ W2.T + b2).ravel()
    return rhs


def count_steps(method, rhs, y0):
    """Accepted steps, from the solver's own loop (solve_ivp does not report them)."""
    solver = {"RK45": RK45, "DOP853": DOP853}[method](rhs, 0.0, y0, T_END, rtol=RTOL, atol=ATOL)
    steps = 0
    while solver.status == "running":
        solver.step()
        steps += 1
    return steps


def bench(name, rhs, y0, method, rounds):
    ts = np.linspace(0.0, T_END, NT)
    sol = solve_ivp(rhs, (0.0, T_END), y0, method=method, t_eval=ts, rtol=RTOL, atol=ATOL)
    if not sol.success:
        raise SystemExit(f"scipy {method} failed on {name}: {sol.message}")
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        solve_ivp(rhs, (0.0, T_END), y0, method=method, t_eval=ts, rtol=RTOL, atol=ATOL)
        times.append(time.perf_counter() - t0)
    ms = 1e3 * float(np.median(times))
    y_end = " ".join(f"{v:.17g}" for v in sol.y[:, -1])
    print(f"RESULT {name} {method} {ms:.6f} {sol.nfev} {count_steps(method, rhs, y0)} {y_end}",
          flush=True)


def main():
    params = read_params(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    problems = [("spiral", spiral_rhs, np.array([2.0, 0.0])),
                ("mlp_b1", mlp_rhs_for(params, 1), circle(1)),
                ("mlp_b20", mlp_rhs_for(params, 20), circle(20))]
    for name, rhs, y0 in problems:
        for method in ("RK45", "DOP853"):
            bench(name, rhs, y0, method, rounds)


if __name__ == "__main__":
    main()
