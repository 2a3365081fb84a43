#!/usr/bin/env python3
"""One training iteration of torchdiffeq's spiral demo (examples/ode_demo.py) in plain
PyTorch, for bench_train's side-by-side ratio: float64, the 2-50-2 tanh network on y^3
(weights ~ normal(0, 0.1), biases 0), a batch of 20 windows of 10 observations of the
true spiral, mean absolute error, dopri5 (rtol 1e-7, atol 1e-9) written here as a
Python loop of tensor operations, gradient by autograd through the solver's steps
(torchdiffeq's `odeint`, not `odeint_adjoint`), RMSprop(lr = 1e-3).

The solver follows torchdiffeq's choices where they matter for the cost: the
Dormand-Prince 5(4) pair with FSAL, an RMS error norm of atol + rtol * max(|y|, |y_new|),
the step factor 0.9 * ratio^(-1/5) clipped to [0.2, 10], Hairer's initial step; it
shortens a step to land on each observation time (torchdiffeq interpolates instead).
Step-size decisions are made on detached floats, as torchdiffeq does.

Usage: torch_spiral.py [--iters N] [--threads T] [--json]
Prints the median time per iteration and the function evaluations per iteration.
"""
import argparse, json, statistics, sys, time

import torch

torch.set_default_dtype(torch.float64)

A = [[],
     [1 / 5],
     [3 / 40, 9 / 40],
     [44 / 45, -56 / 15, 32 / 9],
     [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
     [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
     [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]]
B = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0]
BHAT = [5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]
E = [b - bh for b, bh in zip(B, BHAT)]


class Counted(torch.nn.Module):
    """dy/dt = net(y^3), counting forward evaluations."""

    def __init__(self, true_a=None):
        super().__init__()
        self.nfe = 0
        self.true_a = true_a
        if true_a is None:
            self.net = torch.nn.Sequential(torch.nn.Linear(2, 50), torch.nn.Tanh(),
                                           torch.nn.Linear(50, 2))
            for m in self.net.modules():
                if isinstance(m, torch.nn.Linear):
                    torch.nn.init.normal_(m.weight, mean=0, std=0.1)
                    torch.nn.init.constant_(m.bias, val=0)

    def forward(self, y):
        self.nfe += 1
        if self.true_a is not None:
            return torch.mm(y ** 3, self.true_a)
        return self.net(y ** 3)


def rms_ratio(err, y, y_new, rtol, atol):
    with torch.no_grad():
        scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
        return float(torch.sqrt(torch.mean((err / scale) ** 2)))


def initial_step(f, y0, f0, rtol, atol):
    """Hairer, Norsett & Wanner, Solving ODEs I, II.4 (as torchdiffeq's)."""
    with torch.no_grad():
        scale = atol + rtol * y0.abs()
        d0 = float(torch.sqrt(torch.mean((y0 / scale) ** 2)))
        d1 = float(torch.sqrt(torch.mean((f0 / scale) ** 2)))
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        f1 = f(y0 + h0 * f0)
        d2 = float(torch.sqrt(torch.mean(((f1 - f0) / scale) ** 2))) / h0
        h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / 5)
        return min(100 * h0, h1)


def dopri5(f, y0, ts, rtol, atol):
    """The states at every time of ts (a list of floats), differentiable through the steps."""
    y, t = y0, ts[0]
    k1 = f(y)
    h = initial_step(f, y0, k1, rtol, atol)
    out = [y0]
    for t_out in ts[1:]:
        while t < t_out:
            landing = h >= t_out - t
            step = t_out - t if landing else h
            ks = [k1]
            for i in range(1, 7):
                yi = y + step * sum(a * k for a, k in zip(A[i], ks) if a != 0)
                ks.append(f(yi))
            y_new = yi  # FSAL: the last stage argument is the 5th-order solution
            err = step * sum(e * k for e, k in zip(E, ks) if e != 0)
            ratio = rms_ratio(err, y, y_new, rtol, atol)
            if ratio <= 1:  # landing sets t to t_out exactly: no sliver of a step after it
                t, y, k1 = t_out if landing else t + step, y_new, ks[6]
            factor = 10 if ratio == 0 else min(10, max(0.2, 0.9 * ratio ** (-1 / 5)))
            h = step * factor
        out.append(y)
    return torch.stack(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    data_size, batch_time, batch_size = 1000, 10, 20
    t = torch.linspace(0, 25, data_size)
    true_a = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
    with torch.no_grad():
        true_y = dopri5(Counted(true_a), torch.tensor([[2.0, 0.0]]), t.tolist(), 1e-7, 1e-9)
    batch_t = t[:batch_time].tolist()

    func = Counted()
    opt = torch.optim.RMSprop(func.parameters(), lr=1e-3)
    times, fwd, total = [], [], []
    for it in range(args.iters + 5):
        s = torch.randperm(data_size - batch_time)[:batch_size]
        batch_y0 = true_y[s, 0]                                              # (20, 2)
        batch_y = torch.stack([true_y[s + i, 0] for i in range(batch_time)])  # (10, 20, 2)
        start = time.perf_counter()
        opt.zero_grad()
        func.nfe = 0
        pred = dopri5(func, batch_y0, batch_t, 1e-7, 1e-9)
        n_forward = func.nfe
        loss = torch.mean(torch.abs(pred - batch_y))
        loss.backward()
        opt.step()
        if it >= 5:  # warm-up
            times.append(time.perf_counter() - start)
            fwd.append(n_forward)
    res = {"ms_per_iter": 1e3 * statistics.median(times), "nfe_forward": statistics.median(fwd),
           "threads": torch.get_num_threads(), "torch": torch.__version__}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"torch {res['torch']} ({res['threads']} threads), backprop through dopri5: "
              f"{res['ms_per_iter']:.3f} ms per iteration (median of {args.iters}), "
              f"nfe forward {res['nfe_forward']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
