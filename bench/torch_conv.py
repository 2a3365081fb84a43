#!/usr/bin/env python3
"""PyTorch side of bench_conv.py (issue 16's image ODE-Nets), one core.

(a) The convolutional right-hand side of examples/odenet_digits.node at a bench size:
    batch 128, 16 channels, 8x8,
        f(h) = conv2d(K2, tanh(conv2d(K1, h, pad 1) + b1), pad 1)
    timed per evaluation (forward, no autograd) and per vjp (forward with autograd, then
    the backward of sum(f * a) w.r.t. h, K1, b1 and K2), in float64 and float32.
(b) One training iteration of the digits ODE-Net written as torchdiffeq-style code
    would: conv 1->16 pad 1 + relu + 2x2 max pool to [16, 4, 4], RK4 at h = 0.25 over
    [0, 1] through an ODE block of two 16->16 3x3 convolutions with tanh (autograd through
    the steps, torchdiffeq's `odeint`, not `odeint_adjoint`), linear 256 -> 10, cross
    entropy, AdamW(lr = 1e-2, weight_decay = 0.05), batch 128 sampled from examples/digits_train.csv (random
    data of that shape if the file is missing); float64 as nodec, and float32 (torch's
    usual dtype, and its fast convolution path); median iteration.

Usage: torch_conv.py [--threads T] [--rounds R] [--iters N] [--digits CSV]
Prints one JSON object per line: {"case": ..., "dtype": ..., "seconds": ...}.
"""
import argparse, csv, json, os, statistics, sys, time

import torch
import torch.nn.functional as F

B, C, S = 128, 16, 8


def emit(**kw):
    print(json.dumps(kw), flush=True)


def per_call(fn, min_time=0.05):
    """Seconds per call of fn, over enough calls to last about min_time."""
    fn()
    n, t0 = 1, time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    reps = max(1, int(min_time / max(dt, 1e-9)))
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def bench_rhs(dtype, rounds):
    g = torch.Generator().manual_seed(0)
    K1 = (torch.randn(C, C, 3, 3, generator=g) * 0.1).to(dtype)
    K2 = (torch.randn(C, C, 3, 3, generator=g) * 0.1).to(dtype)
    b1 = (torch.randn(C, 1, 1, generator=g) * 0.1).to(dtype)
    h = torch.randn(B, C, S, S, generator=g).to(dtype)
    a = torch.randn(B, C, S, S, generator=g).to(dtype)

    def f(h, K1, b1, K2):
        return F.conv2d(torch.tanh(F.conv2d(h, K1, padding=1) + b1), K2, padding=1)

    def fwd():
        with torch.no_grad():
            f(h, K1, b1, K2)

    hv, K1v, b1v, K2v = (x.clone().requires_grad_(True) for x in (h, K1, b1, K2))

    def vjp():
        out = f(hv, K1v, b1v, K2v)
        return torch.autograd.grad((out * a).sum(), (hv, K1v, b1v, K2v))

    tf, tv = [], []
    for _ in range(rounds):  # interleaved, so drift hits both alike
        tf.append(per_call(fwd))
        tv.append(per_call(vjp))
    name = str(dtype).replace("torch.", "")
    emit(case="conv_rhs", dtype=name, seconds=statistics.median(tf), batch=B, channels=C, size=S)
    emit(case="conv_vjp", dtype=name, seconds=statistics.median(tv), batch=B, channels=C, size=S)


def load_digits(path):
    if path and os.path.exists(path):
        with open(path) as fh:
            rows = list(csv.reader(fh))
        head, body = rows[0], rows[1:]
        li = head.index("label")
        xs = [i for i, name in enumerate(head) if name.startswith("x[")]
        x = torch.tensor([[float(r[i]) for i in xs] for r in body]).reshape(-1, 1, 8, 8)
        y = torch.tensor([int(float(r[li])) for r in body])
        return x, y, "csv"
    g = torch.Generator().manual_seed(1)
    return torch.rand(1437, 1, 8, 8, generator=g), torch.randint(0, 10, (1437,), generator=g), "random"


class OdeNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.down = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.K1 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.K2 = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.read = torch.nn.Linear(256, 10)
        for m in (self.down, self.K1, self.K2, self.read):
            torch.nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        self.nfe = 0

    def f(self, t, h):
        self.nfe += 1
        return self.K2(torch.tanh(self.K1(h)))

    def forward(self, x):
        h = F.max_pool2d(torch.relu(self.down(x)), 2)
        t, dt = 0.0, 0.25
        for _ in range(4):  # classic RK4, as torchdiffeq's fixed-grid 'rk4' (3/8 rule aside)
            k1 = self.f(t, h)
            k2 = self.f(t + dt / 2, h + dt / 2 * k1)
            k3 = self.f(t + dt / 2, h + dt / 2 * k2)
            k4 = self.f(t + dt, h + dt * k3)
            h = h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            t += dt
        return self.read(h.flatten(1))


def bench_train(iters, path, dtype):
    torch.set_default_dtype(dtype)
    torch.manual_seed(1)
    x, y, source = load_digits(path)
    x = x.to(dtype)
    net = OdeNet()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.05)
    g = torch.Generator().manual_seed(2)
    times, losses = [], []
    for _ in range(iters):
        t0 = time.perf_counter()
        idx = torch.randint(0, x.shape[0], (128,), generator=g)
        opt.zero_grad()
        loss = F.cross_entropy(net(x[idx]), y[idx])
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    emit(case="digits_iter", dtype=str(dtype).replace("torch.", ""), seconds=statistics.median(times[2:]), iters=iters,
         data=source, first_loss=losses[0], last_loss=losses[-1])
    torch.set_default_dtype(torch.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--iters", type=int, default=40)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--digits", default=os.path.join(here, "..", "examples", "digits_train.csv"))
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    emit(case="info", torch=torch.__version__, threads=torch.get_num_threads())
    for dtype in (torch.float64, torch.float32):
        bench_rhs(dtype, args.rounds)
    if not args.skip_train:
        for dtype in (torch.float64, torch.float32):
            bench_train(args.iters, args.digits, dtype)


if __name__ == "__main__":
    sys.exit(main())
