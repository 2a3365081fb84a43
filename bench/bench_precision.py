#!/usr/bin/env python3
"""The spiral demo (examples/spiral.node, LANGUAGE.md 5.3) in single precision against
double: time and fit, side by side in one run (docs/benchmarks.md, "Single precision").

For each seed, `nodec run --seed S --precision f64` and then `--precision f32` (so a
drift of the machine's speed meets both alike), each scored by:
  - the training time nodec reports ("done: N steps in X s": the 2000 iterations, JIT
    compile and data simulation excluded) and the whole process's wall time;
  - the right-hand-side evaluations of the last logged iteration (forward, backward);
  - the fit: the mean absolute error of the trained model's trajectory from y(0) = [2, 0]
    against the truth over [0, 25] (what the conformance suite bounds by 0.5), and the
    final training loss.
The file asks for rtol = 1e-7, which single precision raises to 1e-6 (docs/precision.md);
a third column runs f64 at that rtol too, so the precisions also meet at one tolerance.

  python3 bench/bench_precision.py NODEC [--seeds A:B]
"""
import argparse, csv, os, re, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
SPIRAL = os.path.join(HERE, "..", "examples", "spiral.node")


def rows(path):
    return [(float(r["y[0]"]), float(r["y[1]"])) for r in csv.DictReader(open(path))]


def one_run(nodec, seed, precision, text):
    with tempfile.TemporaryDirectory() as wd:
        path = os.path.join(wd, "spiral.node")
        with open(path, "w") as f:
            f.write(text)
        start = time.perf_counter()
        r = subprocess.run([nodec, "run", "--seed", str(seed), "--precision", precision, path],
                           cwd=wd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        train = float(re.search(r"done: \d+ steps in ([\d.]+) s", r.stderr).group(1))
        fit, truth = rows(os.path.join(wd, "fit.csv")), rows(os.path.join(wd, "truth.csv"))
        hist = list(csv.DictReader(open(os.path.join(wd, "history.csv"))))
    err = sum(abs(a - b) for p, q in zip(fit, truth) for a, b in zip(p, q)) / (2 * len(fit))
    last = hist[-1]
    return {"train": train, "wall": wall, "fit": err, "loss": float(last["loss"]),
            "nfe": (int(last["nfe_forward"]), int(last["nfe_backward"]))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nodec")
    ap.add_argument("--seeds", default="1:8")
    args = ap.parse_args()
    a, b = (int(x) for x in args.seeds.split(":"))
    text = open(SPIRAL).read()
    # no pictures: PLplot's time is not the precision's
    text = re.sub(r'^plot "[^"]*" \{.*?^\}\n', "", text, flags=re.S | re.M)
    text = re.sub(r'^plot "[^"]*" \{[^\n]*\}\n', "", text, flags=re.M)
    loose = text.replace("rtol = 1e-7", "rtol = 1e-6")
    configs = [("f64, rtol 1e-7 (the file)", "f64", text), ("f32 (rtol raised to 1e-6)", "f32", text),
               ("f64, rtol 1e-6", "f64", loose)]
    results = {name: [] for name, _, _ in configs}
    for seed in range(a, b + 1):
        for name, prec, t in configs:
            r = one_run(args.nodec, seed, prec, t)
            results[name].append(r)
            print(f"seed {seed:2d} {name:28s} train {r['train']:.3f} s  fit {r['fit']:.3f}  "
                  f"loss {r['loss']:.4f}  nfe {r['nfe'][0]}/{r['nfe'][1]}", flush=True)
    med = lambda name, key: statistics.median(r[key] for r in results[name])
    print(f"\nspiral demo, 2000 iterations, seeds {a}-{b}: medians")
    print(f"| precision | train s | per iteration µs | wall s | fit error | seeds >= 0.5 | final loss |")
    print("|---|---|---|---|---|---|---|")
    for name, _, _ in configs:
        bad = sum(r["fit"] >= 0.5 for r in results[name])
        print(f"| {name} | {med(name, 'train'):.3f} | {1e6 * med(name, 'train') / 2000:.0f} | "
              f"{med(name, 'wall'):.2f} | {med(name, 'fit'):.3f} | {bad} of {len(results[name])} | "
              f"{med(name, 'loss'):.4f} |")
    base = configs[0][0]
    for name, _, _ in configs[1:]:
        ratios = [x["train"] / y["train"] for x, y in zip(results[base], results[name])]
        print(f"{base} / {name}: train time ratio, median over seeds {statistics.median(ratios):.2f} "
              f"(range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    sys.exit(main())
