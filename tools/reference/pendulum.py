#!/usr/bin/env python3
"""Reference for tests/lang/second_order.node's pendulum, d2x/dt2 = -sin(x) from
x(0) = 1, dx/dt(0) = 0: the first-order pair (x, v) integrated by scipy's
solve_ivp with DOP853 at rtol = atol = 1e-13, an implementation independent of
nodec's. Prints x and dx/dt at t = 0, 2.5, 5, 7.5, 10 with 17 digits.

    python3 tools/reference/pendulum.py"""
import numpy as np
from scipy.integrate import solve_ivp


def rhs(t, y):
    return [y[1], -np.sin(y[0])]


def main():
    ts = [0.0, 2.5, 5.0, 7.5, 10.0]
    sol = solve_ivp(rhs, (0.0, 10.0), [1.0, 0.0], method="DOP853", t_eval=ts,
                    rtol=1e-13, atol=1e-13)
    assert sol.success, sol.message
    for i, t in enumerate(ts):
        print(f"t = {t}: x = {sol.y[0][i]!r}, dx/dt = {sol.y[1][i]!r}")


if __name__ == "__main__":
    main()
