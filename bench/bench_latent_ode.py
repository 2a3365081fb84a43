#!/usr/bin/env python3
"""Issue 17 part 6's latent ODE benchmark, side by side in one run: one training
iteration of bench/latent_ode_bench.node through `nodec run` (f64, backprop through the
ODE-RNN encoder and the decoder, batch 50 x 100 times) against the same model in
PyTorch, bench/torch_latent_ode.py (the paper's code's way: Python loops over the time
points and the RK4 steps, autograd; one thread), alternating, a few repeats, then a
table of milliseconds per iteration with ratio = torch / nodec (the target: >= 20).

The data (written here, read by both): 50 trajectories at one shared irregular grid of
100 times in [0, 5] (sorted, the first 0), x = a sin(w t + phi) exp(-0.1 t) + N(0, 0.01^2),
a ~ U(0.5, 1.5), w ~ U(1, 3), phi ~ U(0, 2 pi), numpy's default_rng(DATA_SEED).

nodec's time per iteration comes from the train's history (log_every = 1: each row's
`seconds` since the loop began, to the microsecond; `--quiet` drops the `done:` summary,
whose seconds have two decimals): the differences of consecutive rows after the first
--skip steps (JIT compilation, data loading and the first steps' page faults left out).
torch's is timed around each iteration after --warmup ones.

Usage (from the repository root, after `cmake --build build --target nodec`):
    /usr/bin/python3 bench/bench_latent_ode.py build/nodec [--repeat 3] [--steps 20]
        [--skip 2] [--iters STEPS-3] [--warmup 3] [--no-f32] [--check] [--json] [--keep DIR]
        [--node FILE]
    /usr/bin/python3 bench/bench_latent_ode.py - --write-data latent_sines.csv   (the data only)
--check also compares the two sides' loss at the same parameters with eps = 0 (nodec's
`evaluate` against torch_latent_ode.py --check). If nodec fails (an encoder the build
does not have yet), its error is printed, the torch figures still are, and the exit
status is 1.
"""
import argparse, csv, json, math, os, re, shutil, statistics, subprocess, sys, tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_FILE = os.path.join(HERE, "latent_ode_bench.node")
TORCH = os.path.join(HERE, "torch_latent_ode.py")
PYTHON = os.environ.get("NODEC_PYTHON", "/usr/bin/python3")  # Debian's, with torch
DATA = "latent_sines.csv"
HISTORY = "latent_history.csv"
DATA_SEED = 2019
N_TRAJ, N_TIMES, T_END = 50, 100, 5.0
TARGET = 20.0


def write_data(path):
    rng = np.random.default_rng(DATA_SEED)
    t = np.concatenate([[0.0], np.sort(rng.uniform(0.0, T_END, N_TIMES - 1))])
    a = rng.uniform(0.5, 1.5, N_TRAJ)
    w = rng.uniform(1.0, 3.0, N_TRAJ)
    phi = rng.uniform(0.0, 2 * np.pi, N_TRAJ)
    x = a[:, None] * np.sin(w[:, None] * t[None, :] + phi[:, None]) * np.exp(-0.1 * t[None, :])
    x += rng.normal(0.0, 0.01, x.shape)
    with open(path, "w") as fh:
        fh.write("id,t,x\n")
        for i in range(N_TRAJ):
            for k in range(N_TIMES):
                fh.write(f"{i},{float(t[k])!r},{float(x[i, k])!r}\n")


def node_text(node, steps):
    text = open(node).read()
    text, n = re.subn(r"^(\s*steps\s*=\s*)\d+", rf"\g<1>{steps}", text, flags=re.M)
    if n != 1:
        raise SystemExit(f"{node}: expected one 'steps = N' line, found {n}")
    return text


def run_nodec(nodec, node, wd, steps, skip):
    """{ms_min, ms_median, final_loss, ...}, or {error: text} when nodec fails."""
    path = os.path.join(wd, "latent_ode_bench.node")
    with open(path, "w") as fh:
        fh.write(node_text(node, steps))
    hist = os.path.join(wd, HISTORY)
    if os.path.exists(hist):
        os.remove(hist)
    try:
        r = subprocess.run([nodec, "run", "--precision", "f64", "--quiet", path], cwd=wd,
                           capture_output=True, text=True)
    except OSError as e:
        return {"error": f"cannot run {nodec}: {e}"}
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip() or f"exit status {r.returncode}"}
    rows = list(csv.DictReader(open(hist)))
    if len(rows) < skip + 2:
        return {"error": f"{HISTORY} has {len(rows)} rows, need more than skip + 1 = {skip + 1}"}
    secs = [float(row["seconds"]) for row in rows]
    per = [b - a for a, b in zip(secs[skip:], secs[skip + 1:])]
    return {"ms_min": 1e3 * min(per), "ms_median": 1e3 * statistics.median(per),
            "final_loss": float(rows[-1]["loss"]), "first_loss": float(rows[0]["loss"]),
            "nfe": (int(rows[-1]["nfe_forward"]), int(rows[-1]["nfe_backward"])),
            "train_s": secs[-1], "timed": len(per)}


def run_torch(data, dtype, iters, warmup):
    cmd = [PYTHON, TORCH, data, "--json", "--dtype", dtype, "--threads", "1",
           "--iters", str(iters), "--warmup", str(warmup)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip()}
    return json.loads(r.stdout.strip().splitlines()[-1])


CHECK_TEXT = """import "nn"
option seed = 1
data obs = csv("{data}")
{model}
train Latent {{
  data = obs
  {encoder}
  init = {{ z = head(h)[0:4] }}
  loss = (obs.x - out(z)[0])^2
  final_loss = 0.01 * kl_normal(head(h)[0:4], head(h)[4:8])
  solver = rk4(h = 0.05)
  gradient = backprop
  optimizer = adam(lr = 0.01)
  steps = 0
  save = "latent_check.params"
}}
evaluate Latent {{
  data = obs
  {encoder}
  init = {{ z = head(h)[0:4] }}
  loss = (obs.x - out(z)[0])^2
  final_loss = 0.01 * kl_normal(head(h)[0:4], head(h)[4:8])
  solver = rk4(h = 0.05)
  output = "latent_check_scores.csv"
}}
"""


def compare_check(nodec, node, wd, data, rtol=1e-9):
    """The loss of one forward pass at nodec's initial parameters with eps = 0 (z0 = mu)
    by nodec's evaluate and by torch_latent_ode.py --check on the parameters nodec saved;
    (nodec's, torch's, ok) or an error text. Both do the same float64 arithmetic but sum
    in their own orders: they agree to rounding, hence rtol."""
    text = open(node).read()
    model = re.search(r"^model Latent \{.*?^\}", text, flags=re.S | re.M)
    encoder = re.search(r"^\s*(encoder h.*)$", text, flags=re.M)
    if not model or not encoder:
        return f"{node} has no 'model Latent {{ ... }}' or no one-line 'encoder h...' to copy"
    model, encoder = model.group(0), encoder.group(1)
    path = os.path.join(wd, "latent_check.node")
    with open(path, "w") as fh:
        fh.write(CHECK_TEXT.format(data=os.path.basename(data), model=model, encoder=encoder))
    try:
        r = subprocess.run([nodec, "run", "--precision", "f64", "--quiet", path], cwd=wd,
                           capture_output=True, text=True)
    except OSError as e:
        return f"cannot run {nodec}: {e}"
    if r.returncode != 0:
        return f"nodec: {(r.stderr or r.stdout).strip()}"
    nodec_loss = float(next(csv.DictReader(open(os.path.join(wd, "latent_check_scores.csv"))))["loss"])
    t = subprocess.run([PYTHON, TORCH, data, "--json", "--check",
                        os.path.join(wd, "latent_check.params")], capture_output=True, text=True)
    if t.returncode != 0:
        return f"torch: {t.stderr.strip()}"
    torch_loss = json.loads(t.stdout.strip().splitlines()[-1])["loss"]
    return nodec_loss, torch_loss, abs(nodec_loss - torch_loss) <= rtol * abs(torch_loss)


def med(runs, key):
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else None


def spread(runs, key):
    vals = [r[key] for r in runs if key in r]
    return f"{min(vals):.1f}-{max(vals):.1f}" if vals else "-"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nodec")
    ap.add_argument("--repeat", type=int, default=3, help="alternate the sides this many times")
    ap.add_argument("--steps", type=int, default=20, help="nodec's training steps")
    ap.add_argument("--skip", type=int, default=2, help="nodec's first steps left out of the timing")
    ap.add_argument("--iters", type=int, default=None,
                    help="torch's timed iterations (default: steps - warmup, so both sides take "
                    "the same number of steps and their final losses are of the same step)")
    ap.add_argument("--warmup", type=int, default=3, help="torch's untimed first iterations")
    ap.add_argument("--no-f32", action="store_true", help="leave out the torch float32 row")
    ap.add_argument("--check", action="store_true", help="also compare the losses at equal parameters")
    ap.add_argument("--json", action="store_true", help="also print every run as JSON")
    ap.add_argument("--node", default=NODE_FILE, help="the .node file (steps substituted; "
                    "it must write its history to " + HISTORY + " with log_every = 1)")
    ap.add_argument("--write-data", metavar="CSV", help="only write the data set to CSV")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR (kept) instead of a temporary folder")
    args = ap.parse_args()
    if args.iters is None:
        args.iters = max(1, args.steps - args.warmup)
    if args.write_data:
        write_data(args.write_data)
        return 0
    args.nodec = os.path.abspath(args.nodec)  # nodec runs in the work folder
    os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    wd = args.keep or tempfile.mkdtemp(prefix="latent_bench_")
    os.makedirs(wd, exist_ok=True)
    data = os.path.join(wd, DATA)
    write_data(data)
    dtypes = ["float64"] + ([] if args.no_f32 else ["float32"])
    runs = {"nodec": [], **{d: [] for d in dtypes}}
    nodec_error = None
    for rep in range(max(1, args.repeat)):  # alternating, so a change of load hits every side
        if nodec_error is None:
            r = run_nodec(args.nodec, args.node, wd, args.steps, args.skip)
            if "error" in r:
                nodec_error = r["error"]
            else:
                runs["nodec"].append(r)
        for d in dtypes:
            r = run_torch(data, d, args.iters, args.warmup)
            if "error" in r:
                raise SystemExit(f"torch_latent_ode.py failed:\n{r['error']}")
            runs[d].append(r)
        if args.json:
            print(json.dumps({"repeat": rep, **{k: v[-1] for k, v in runs.items() if v}}), flush=True)

    t_steps = runs["float64"][0]["rk4_steps_per_solve"]
    print(f"latent ODE, one training iteration: batch {N_TRAJ} x {N_TIMES} times in [0, {T_END:g}], "
          f"rk4 h = 0.05 ({t_steps} steps per solve, each way), backprop, adam; one core; "
          f"medians over {len(runs['float64'])} runs")
    if nodec_error:
        print(f"\nnodec failed, so its row is empty:\n{nodec_error}\n")
    nm = med(runs["nodec"], "ms_median")
    print("| side | ms/iter (min) | ms/iter (median) | range of medians | torch / nodec | final loss |")
    print("|---|---|---|---|---|---|")
    if nm:
        print(f"| nodec f64 | {med(runs['nodec'], 'ms_min'):.2f} | **{nm:.2f}** | "
              f"{spread(runs['nodec'], 'ms_median')} | 1 | {med(runs['nodec'], 'final_loss'):.5g} |")
    else:
        print("| nodec f64 | - | - | - | - | - |")
    for d in dtypes:
        tm = med(runs[d], "ms_median")
        ratio = f"**{tm / nm:.1f}**" if nm and d == "float64" else (f"{tm / nm:.1f}" if nm else "-")
        print(f"| torch {d} | {med(runs[d], 'ms_min'):.1f} | {tm:.1f} | {spread(runs[d], 'ms_median')} | "
              f"{ratio} | {med(runs[d], 'final_loss'):.5g} |")
    print(f"(nodec: {args.steps} steps, the last {args.steps - args.skip - 1} step times of its history; "
          f"torch {runs['float64'][0]['torch']}: {args.iters} iterations after {args.warmup}; "
          f"final loss: the last step's, a one-draw estimate)")
    if nm:
        ratio = med(runs["float64"], "ms_median") / nm
        print(f"target torch f64 / nodec >= {TARGET:g}: {'met' if ratio >= TARGET else 'NOT met'} ({ratio:.1f})")
    if args.check:
        res = compare_check(args.nodec, args.node, wd, data)
        if isinstance(res, str):
            print(f"check: could not compare: {res}")
        else:
            print(f"check, loss at nodec's initial parameters, eps = 0: nodec {res[0]:.17g}, torch "
                  f"{res[1]:.17g}, relative difference {abs(res[0] - res[1]) / abs(res[1]):.2e} "
                  f"({'ok' if res[2] else 'MISMATCH'})")
            if not res[2]:
                nodec_error = nodec_error or "check mismatch"
    if not args.keep:
        shutil.rmtree(wd, ignore_errors=True)
    return 1 if nodec_error else 0


if __name__ == "__main__":
    sys.exit(main())
