#!/usr/bin/env python3
"""PyTorch side of bench_latent_ode.py (issue 17 part 6): one training iteration of the
latent ODE of bench/latent_ode_bench.node, written as the latent-ODE paper's code is
(Rubanova, Chen and Duvenaud 2019, github.com/YuliaRubanova/latent_ode: `run_odernn`'s
Python loop over the time points, backwards, with an ODE solve between them and a GRU
update at each; the decoder's solve through every time), here with classical RK4 as a
Python loop of tensor operations and the gradient by autograd through every step.

The model (the same arithmetic as the .node file, nodec's stdlib conventions):
  rec = Linear(16,32) tanh Linear(32,16)   dh/dt = rec(h), the ODE-RNN's between-obs flow
  cell = GRUCell(1, 16)                    h = cell(x_k, h) at each observation
  head = Linear(16, 8)                     [mu; logvar] = head(h at t_0)
  dyn = Linear(4,32) tanh Linear(32,4)     dz/dt = dyn(z), the decoder
  out = Linear(4, 1)                       x_hat = out(z(t_k))
  z0 = mu + exp(0.5 logvar) eps, eps ~ N(0, I) fresh each iteration
  L = mean over (sample, time) of (x - x_hat)^2 + mean over samples of 0.01 KL(q || N(0, I))
  Adam(lr = 0.01)
Fixed steps as nodec's runtime takes them (nd_solver.c, fixed_solve_interval): over an
interval [t0, t1] n = max(1, ceil(r - 1e-9 r)) steps, r = |t1 - t0| / h, at the times
t0 + k h (toward t1) for k < n, the last one landing on t1.
RK4: k1 = f(y), k2 = f(y + dt/2 k1), k3 = f(y + dt/2 k2), k4 = f(y + dt k3),
y += dt/6 (k1 + 2 k2 + 2 k3 + k4) (GSL rk4.c; the model is autonomous, so t is not read).

Prints wall-clock ms per iteration (min, median) and the process's CPU time per iteration
(median: less moved by other processes on shared cores), and the first and last loss.

Usage: torch_latent_ode.py DATA.csv [--dtype float64|float32] [--threads 1] [--warmup 3]
                           [--iters 10] [--seed 0] [--json]
       torch_latent_ode.py DATA.csv --check PARAMS.safetensors
           the loss of one forward pass with eps = 0 (z0 = mu) from nodec's parameters
       torch_latent_ode.py DATA.csv --save-params PARAMS.safetensors
           write this side's initial parameters under nodec's names (for nodec's `load`)
"""
import argparse, csv, json, math, statistics, struct, sys, time

import torch

H_STEP = 0.05      # rk4(h = 0.05), both solves
KL_WEIGHT = 0.01
STEP_SLACK = 1e-9  # nd_solver.c's ND_STEP_COUNT_SLACK in double


def load_data(path):
    """X [B, T] and the shared times [T] (a list of floats) of an id,t,x CSV."""
    series = {}
    with open(path) as fh:
        for r in csv.DictReader(fh):
            series.setdefault(int(float(r["id"])), []).append((float(r["t"]), float(r["x"])))
    ids = sorted(series)
    times = [t for t, _ in series[ids[0]]]
    for i in ids:
        if [t for t, _ in series[i]] != times:
            raise SystemExit(f"{path}: trajectory {i} is not on trajectory {ids[0]}'s times")
    X = torch.tensor([[x for _, x in series[i]] for i in ids])
    return X, times


def fixed_steps(t0, t1, h=H_STEP):
    """The signed step sizes nodec takes from t0 to t1 (never accumulated)."""
    span = abs(t1 - t0)
    r = span / h
    n = max(1, math.ceil(r - STEP_SLACK * r))
    hd = h if t1 > t0 else -h
    ts = [t0 + k * hd for k in range(n)] + [t1]
    return [b - a for a, b in zip(ts, ts[1:])]


def rk4(f, y, t0, t1):
    for dt in fixed_steps(t0, t1):
        k1 = f(y)
        k2 = f(y + dt / 2 * k1)
        k3 = f(y + dt / 2 * k2)
        k4 = f(y + dt * k3)
        y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


class LatentODE(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rec = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 16))
        self.cell = torch.nn.GRUCell(1, 16)
        self.head = torch.nn.Linear(16, 8)
        self.dyn = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
        self.out = torch.nn.Linear(4, 1)

    def encode(self, X, times):
        """The ODE-RNN backwards in time: h(t_{T-1}) = 0, a GRU update at every
        observation, dh/dt = rec(h) between them."""
        B, T = X.shape
        h = X.new_zeros(B, 16)
        for k in range(T - 1, -1, -1):
            if k < T - 1:
                h = rk4(self.rec, h, times[k + 1], times[k])
            h = self.cell(X[:, k:k + 1], h)
        return h

    def decode(self, z0, times):
        """z at every time, [T, B, 4]."""
        zs = [z0]
        for k in range(1, len(times)):
            zs.append(rk4(self.dyn, zs[-1], times[k - 1], times[k]))
        return torch.stack(zs)

    def loss(self, X, times, eps):
        mu_lv = self.head(self.encode(X, times))
        mu, logvar = mu_lv[:, :4], mu_lv[:, 4:]
        z0 = mu + torch.exp(0.5 * logvar) * eps
        pred = self.out(self.decode(z0, times))[..., 0].t()          # [B, T]
        kl = 0.5 * torch.sum(torch.exp(logvar) + mu ** 2 - 1 - logvar, dim=1)
        return torch.mean((X - pred) ** 2) + torch.mean(KL_WEIGHT * kl)


# ---- parameters under nodec's names (stdlib/prelude.node Dense, MLP; stdlib/nn.node GRU) ----

def nodec_names(model):
    """nodec's dotted name -> this model's tensor, in the .node file's declaration order."""
    mlp = lambda name, seq: {f"{name}.l1.W": seq[0].weight, f"{name}.l1.b": seq[0].bias,
                             f"{name}.l2.W": seq[2].weight, f"{name}.l2.b": seq[2].bias}
    dense = lambda name, lin: {f"{name}.W": lin.weight, f"{name}.b": lin.bias}
    names = {}
    names.update(mlp("dyn", model.dyn))
    names.update(dense("out", model.out))
    names.update(mlp("rec", model.rec))
    c = model.cell
    names.update({"cell.W_ih": c.weight_ih, "cell.W_hh": c.weight_hh,
                  "cell.b_ih": c.bias_ih, "cell.b_hh": c.bias_hh})
    names.update(dense("head", model.head))
    return names


SAFETENSORS_DTYPES = {"F64": ("d", 8), "F32": ("f", 4)}


def read_safetensors(path):
    """{name: (shape, list of floats)} of a safetensors file, parsed by hand: 8 bytes of
    header length N (little-endian u64), N bytes of JSON {name: {dtype, shape,
    data_offsets}} (and __metadata__), then the data, offsets counted from its start."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than its header length)")
    n = struct.unpack("<Q", raw[:8])[0]
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if spec["dtype"] not in SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: tensor '{name}' has dtype {spec['dtype']}, expected F64 or F32")
        code, size = SAFETENSORS_DTYPES[spec["dtype"]]
        a, b = spec["data_offsets"]
        count = math.prod(spec["shape"])
        if b > len(data) or b - a != count * size:
            raise ValueError(f"{path}: tensor '{name}': offsets [{a}, {b}] do not hold {count} values")
        out[name] = (list(spec["shape"]), list(struct.unpack(f"<{count}{code}", data[a:b])))
    return out


def write_safetensors(path, tensors, metadata):
    """tensors: {name: torch tensor}, written F64 row-major in the given order."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        flat = t.detach().to(torch.float64).reshape(-1).tolist()
        blob = struct.pack(f"<{len(flat)}d", *flat)
        header[name] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-(len(text)) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text.encode() + b"".join(blobs))


def load_nodec_params(model, path):
    """Every parameter from the file, which must hold each of them with its shape
    (nodec's optimizer moments, `__optim.*`, are skipped)."""
    tensors = read_safetensors(path)
    names = nodec_names(model)
    missing = [n for n in names if n not in tensors]
    extra = [n for n in tensors if n not in names and not n.startswith("__optim.")]
    if missing or extra:
        raise ValueError(f"{path}: missing {missing}, unexpected {extra}")
    with torch.no_grad():
        for name, p in names.items():
            shape, values = tensors[name]
            if list(p.shape) != shape:
                raise ValueError(f"{path}: '{name}' has shape {shape}, the model's is {list(p.shape)}")
            p.copy_(torch.tensor(values, dtype=p.dtype).reshape(p.shape))


def check_loss(X, times, path):
    """The loss at nodec's parameters with eps = 0 (z0 = mu): what nodec's `evaluate`
    of the same model with init = { z = head(h)[0:4] } reports."""
    model = LatentODE()
    load_nodec_params(model, path)
    with torch.no_grad():
        return float(model.loss(X, times, torch.zeros(X.shape[0], 4)))


def train(X, times, warmup, iters):
    model = LatentODE()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    times_s, cpu_s, losses = [], [], []
    for it in range(warmup + iters):
        start, cpu = time.perf_counter(), time.process_time()
        opt.zero_grad()
        eps = torch.randn(X.shape[0], 4)
        loss = model.loss(X, times, eps)
        loss.backward()
        opt.step()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        losses.append(loss.item())
        if it >= warmup:
            times_s.append(elapsed)
            cpu_s.append(cpu)
    return times_s, cpu_s, losses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", metavar="PARAMS", help="loss at nodec's parameters, eps = 0")
    ap.add_argument("--save-params", metavar="PARAMS", help="write the initial parameters")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(getattr(torch, args.dtype))
    torch.manual_seed(args.seed)
    X, times = load_data(args.data)
    X = X.to(torch.get_default_dtype())
    if args.check:
        print(json.dumps({"case": "check", "loss": check_loss(X, times, args.check)})
              if args.json else f"loss = {check_loss(X, times, args.check):.17g}")
        return 0
    if args.save_params:
        write_safetensors(args.save_params, nodec_names(LatentODE()),
                          {"format": "nodec", "model": "Latent", "step": "0"})
        return 0
    secs, cpu, losses = train(X, times, args.warmup, args.iters)
    steps = sum(len(fixed_steps(a, b)) for a, b in zip(times, times[1:]))
    res = {"case": "latent_iter", "dtype": args.dtype, "threads": torch.get_num_threads(),
           "torch": torch.__version__, "ms_min": 1e3 * min(secs), "ms_median": 1e3 * statistics.median(secs),
           "cpu_ms_median": 1e3 * statistics.median(cpu),
           "iters": args.iters, "warmup": args.warmup, "first_loss": losses[0], "final_loss": losses[-1],
           "rk4_steps_per_solve": steps, "batch": X.shape[0], "times": X.shape[1]}
    if args.json:
        print(json.dumps(res), flush=True)
    else:
        print(f"torch {res['torch']} ({res['threads']} thread(s), {args.dtype}), latent ODE, batch "
              f"{res['batch']} x {res['times']} times, {steps} RK4 steps per solve: "
              f"{res['ms_min']:.1f} ms min, {res['ms_median']:.1f} ms median per iteration "
              f"(CPU time {res['cpu_ms_median']:.1f} ms) "
              f"({args.iters} after {args.warmup}); loss {losses[0]:.6g} -> {losses[-1]:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
