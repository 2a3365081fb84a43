#!/usr/bin/env python3
"""One training iteration of torchdiffeq's spiral demo (examples/ode_demo.py) in plain
PyTorch, for bench_train's side-by-side ratios: float64, the 2-50-2 tanh network on y^3
(weights ~ normal(0, 0.1), biases 0), a batch of 20 windows of 10 observations of the
true spiral, mean absolute error, dopri5 (rtol 1e-7, atol 1e-9) written here as a
Python loop of tensor operations, RMSprop(lr = 1e-3). The gradient is either

- backprop (the default): autograd through the solver's steps (torchdiffeq's `odeint`);
- adjoint: torchdiffeq's `odeint_adjoint` written out the same way. The forward solve
  runs without a graph (torch.no_grad); the backward pass goes from the last
  observation time to the first, adding dL/dy(t_i) to the adjoint a at each
  observation, and integrates the augmented system [y, a, g] (g the parameters'
  gradient) backwards over each interval with a fresh dopri5 solve (initial step
  included, as torchdiffeq's odeint is called once per interval), with the same rtol
  and atol, and torchdiffeq's error norm for tupled states: the max over y, a and each
  parameter's g of their RMS norms. Each evaluation computes f(y) and the
  vector-Jacobian products a^T df/dy, a^T df/dtheta with torch.autograd.grad. After
  each interval y is reset to the forward solve's state there, as torchdiffeq does.

The solver follows torchdiffeq's choices where they matter for the cost: the
Dormand-Prince 5(4) pair with FSAL, an RMS error norm of atol + rtol * max(|y|, |y_new|),
the step factor 0.9 * ratio^(-1/5) clipped to [0.2, 10], Hairer's initial step; it
shortens a step to land on each observation time (torchdiffeq interpolates instead).
Step-size decisions are made on detached floats, as torchdiffeq does.

Usage: torch_spiral.py [--gradient adjoint|backprop] [--iters N] [--threads T] [--json]
       torch_spiral.py --check
Prints the median time per iteration and the function evaluations per iteration
(nfe_forward: evaluations of f in the forward solve; nfe_backward: for the adjoint,
evaluations of the augmented system in the backward solve, each one f and its vjps;
for backprop, the evaluations autograd differentiates through, 6 per accepted step).
--check compares the two gradients at the initial parameters on one batch and exits
nonzero if max |g_adjoint - g_backprop| / max |g_backprop| is above 1e-4.
"""
import argparse, json, statistics, sys, time

import torch

torch.set_default_dtype(torch.float64)

RTOL, ATOL = 1e-7, 1e-9

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


def rms(x):
    return float(torch.sqrt(torch.mean(x ** 2)))


def rms_ratio(err, y, y_new, rtol, atol, norm=rms):
    with torch.no_grad():
        scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
        return norm(err / scale)


def initial_step(f, y0, f0, rtol, atol, norm=rms):
    """Hairer, Norsett & Wanner, Solving ODEs I, II.4 (as torchdiffeq's)."""
    with torch.no_grad():
        scale = atol + rtol * y0.abs()
        d0 = norm(y0 / scale)
        d1 = norm(f0 / scale)
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        f1 = f(y0 + h0 * f0)
        d2 = norm((f1 - f0) / scale) / h0
        h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / 5)
        return min(100 * h0, h1)


def dopri5(f, y0, ts, rtol, atol, norm=rms, stats=None):
    """The states at every time of ts (an increasing list of floats), differentiable
    through the steps. stats, a dict, gets the number of accepted steps added."""
    y, t = y0, ts[0]
    k1 = f(y)
    h = initial_step(f, y0, k1, rtol, atol, norm)
    out = [y0]
    accepted = 0
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
            ratio = rms_ratio(err, y, y_new, rtol, atol, norm)
            if ratio <= 1:  # landing sets t to t_out exactly: no sliver of a step after it
                t, y, k1 = t_out if landing else t + step, y_new, ks[6]
                accepted += 1
            factor = 10 if ratio == 0 else min(10, max(0.2, 0.9 * ratio ** (-1 / 5)))
            h = step * factor
        out.append(y)
    if stats is not None:
        stats["accepted"] = stats.get("accepted", 0) + accepted
    return torch.stack(out)


def adjoint_gradient(func, pred, grad_pred, ts, rtol, atol):
    """torchdiffeq's odeint_adjoint backward pass: the gradient of the loss with respect
    to func's parameters, from the forward states pred (len(ts), ...) and the loss's
    gradient with respect to them, grad_pred. Returns (the gradients, the number of
    evaluations of the augmented system)."""
    params = [p for p in func.parameters()]
    y_shape, n_y = pred.shape[1:], pred[0].numel()
    sizes = [n_y, n_y] + [p.numel() for p in params]
    nfe = 0

    def aug(s):  # d/ds of [y, a, g] with s = -t (the solve runs forward in s)
        nonlocal nfe
        nfe += 1
        parts = torch.split(s, sizes)
        with torch.enable_grad():
            y = parts[0].view(y_shape).detach().requires_grad_(True)
            fy = func(y)
            a = parts[1].view(y_shape)
            vjps = torch.autograd.grad(fy, [y] + params, a, allow_unused=True)
        # dy/dt = f, da/dt = -a^T df/dy, dg/dt = -a^T df/dtheta; d/ds = -d/dt
        return torch.cat([-fy.detach().reshape(-1)] +
                         [torch.zeros(n) if v is None else v.reshape(-1)
                          for v, n in zip(vjps, sizes[1:])])

    def norm(x):  # torchdiffeq's mixed norm over the tupled state: max of the RMS norms
        return max(rms(part) for part in torch.split(x, sizes))

    with torch.no_grad():
        a = grad_pred[-1].reshape(-1)
        g = torch.zeros(sum(sizes[2:]))
        for i in range(len(ts) - 1, 0, -1):
            state = torch.cat([pred[i].reshape(-1), a, g])
            end = dopri5(aug, state, [-ts[i], -ts[i - 1]], rtol, atol, norm)[-1]
            _, a, g = torch.split(end, [n_y, n_y, sum(sizes[2:])])
            a = a + grad_pred[i - 1].reshape(-1)  # y resets to pred[i - 1] at the next cat
    grads, offset = [], 0
    for p in params:
        grads.append(g[offset:offset + p.numel()].view_as(p).clone())
        offset += p.numel()
    return grads, nfe


def spiral_data():
    data_size = 1000
    t = torch.linspace(0, 25, data_size)
    true_a = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
    with torch.no_grad():
        true_y = dopri5(Counted(true_a), torch.tensor([[2.0, 0.0]]), t.tolist(), RTOL, ATOL)
    return t, true_y


def draw_batch(true_y, batch_time=10, batch_size=20):
    s = torch.randperm(true_y.shape[0] - batch_time)[:batch_size]
    batch_y0 = true_y[s, 0]                                              # (20, 2)
    batch_y = torch.stack([true_y[s + i, 0] for i in range(batch_time)])  # (10, 20, 2)
    return batch_y0, batch_y


def gradient_step(func, gradient, batch_y0, batch_y, batch_t):
    """Sets the parameters' .grad to the loss's gradient. Returns (loss, nfe forward,
    nfe backward)."""
    func.nfe = 0
    stats = {}
    if gradient == "backprop":
        pred = dopri5(func, batch_y0, batch_t, RTOL, ATOL, stats=stats)
        n_forward = func.nfe
        loss = torch.mean(torch.abs(pred - batch_y))
        loss.backward()
        return loss, n_forward, 6 * stats["accepted"]
    with torch.no_grad():
        pred = dopri5(func, batch_y0, batch_t, RTOL, ATOL)
    n_forward = func.nfe
    pred.requires_grad_(True)
    loss = torch.mean(torch.abs(pred - batch_y))
    grad_pred, = torch.autograd.grad(loss, pred)
    grads, n_backward = adjoint_gradient(func, pred.detach(), grad_pred, batch_t, RTOL, ATOL)
    for p, gp in zip(func.parameters(), grads):
        p.grad = gp
    return loss.detach(), n_forward, n_backward


def check():
    """Both gradients at the initial parameters on one batch."""
    torch.manual_seed(0)
    t, true_y = spiral_data()
    batch_t = t[:10].tolist()
    func = Counted()
    batch_y0, batch_y = draw_batch(true_y)
    out = {}
    for gradient in ("backprop", "adjoint"):
        func.zero_grad(set_to_none=True)
        hooks = []
        if gradient == "backprop":  # count the evaluations autograd differentiates through
            calls = [0]
            orig = func.forward

            def counted(y):
                r = orig(y)
                if r.requires_grad:
                    r.register_hook(lambda g: calls.__setitem__(0, calls[0] + 1))
                return r
            func.forward = counted
        loss, nf, nb = gradient_step(func, gradient, batch_y0, batch_y, batch_t)
        if gradient == "backprop":
            func.forward = orig
            if calls[0] != nb:
                print(f"backprop: autograd went through {calls[0]} evaluations, "
                      f"the count says {nb}")
                return 1
        out[gradient] = torch.cat([p.grad.reshape(-1) for p in func.parameters()]).clone()
        print(f"{gradient:9s} loss {float(loss):.15g}  nfe forward {nf}  backward {nb}  "
              f"|grad| max {float(out[gradient].abs().max()):.6g}")
    gb, ga = out["backprop"], out["adjoint"]
    diff = float((ga - gb).abs().max() / gb.abs().max())
    big = gb.abs() > 1e-3 * gb.abs().max()
    elem = float(((ga - gb).abs()[big] / gb.abs()[big]).max())
    print(f"max |g_adjoint - g_backprop| / max |g_backprop| = {diff:.3e} "
          f"(componentwise, over the {int(big.sum())} of {gb.numel()} components above "
          f"1e-3 max: {elem:.3e}); tolerance 1e-4: {'ok' if diff <= 1e-4 else 'FAILED'}")
    return 0 if diff <= 1e-4 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradient", choices=("adjoint", "backprop"), default="backprop")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="compare the adjoint and backprop gradients and exit")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.check:
        return check()
    torch.manual_seed(0)

    t, true_y = spiral_data()
    batch_t = t[:10].tolist()

    func = Counted()
    opt = torch.optim.RMSprop(func.parameters(), lr=1e-3)
    times, fwd, bwd = [], [], []
    for it in range(args.iters + 5):
        batch_y0, batch_y = draw_batch(true_y)
        start = time.perf_counter()
        opt.zero_grad()
        _, n_forward, n_backward = gradient_step(func, args.gradient, batch_y0, batch_y, batch_t)
        opt.step()
        if it >= 5:  # warm-up
            times.append(time.perf_counter() - start)
            fwd.append(n_forward)
            bwd.append(n_backward)
    res = {"ms_per_iter": 1e3 * statistics.median(times), "nfe_forward": statistics.median(fwd),
           "nfe_backward": statistics.median(bwd), "gradient": args.gradient,
           "threads": torch.get_num_threads(), "torch": torch.__version__}
    if args.json:
        print(json.dumps(res))
    else:
        what = "adjoint" if args.gradient == "adjoint" else "backprop through dopri5"
        print(f"torch {res['torch']} ({res['threads']} threads), {what}: "
              f"{res['ms_per_iter']:.3f} ms per iteration (median of {args.iters}), "
              f"nfe forward {res['nfe_forward']:.0f}, backward {res['nfe_backward']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
