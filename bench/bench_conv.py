#!/usr/bin/env python3
"""Issue 16's image ODE-Net benchmark, side by side in one run: build/bench_conv (nodec:
the JIT's conv rhs and vjp at B = 128, 16 channels, 8x8, in f64 and f32, and the digits
ODE-Net's training iteration through `nodec run`, in both precisions) and bench/torch_conv.py (the same in PyTorch on
one thread), one after the other (never at once: the machine's cores are shared), then
a table of seconds with ratio = torch / nodec (above 1: nodec is faster).

Usage (from the repository root, after `cmake --build build --target bench_conv nodec`):
    /usr/bin/python3 bench/bench_conv.py [--build build] [--rounds 9] [--steps 40] [--iters 40]
                                         [--repeat 3] [--json]
"""
import argparse, json, os, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def json_lines(cmd, env):
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    rows = {}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            rows[(r["case"], r.get("dtype", ""))] = r
    return rows


def fmt(s):
    if s is None:
        return "-"
    return f"{s * 1e3:.3f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} us"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=40, help="nodec's training steps (timed: the last 3/4)")
    ap.add_argument("--iters", type=int, default=40, help="torch's training iterations")
    ap.add_argument("--repeat", type=int, default=3,
                    help="alternate the two sides this many times; every cell the median over them")
    ap.add_argument("--json", action="store_true", help="also print every measurement as JSON")
    args = ap.parse_args()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    nodec_cmd = [os.path.join(args.build, "bench_conv"), "--json", "--rounds", str(args.rounds),
                 "--steps", str(args.steps), "--nodec", os.path.join(args.build, "nodec"),
                 "--examples", os.path.join(ROOT, "examples")]
    torch_cmd = ["/usr/bin/python3", os.path.join(HERE, "torch_conv.py"), "--threads", "1",
                 "--rounds", str(args.rounds), "--iters", str(args.iters)]
    runs_n, runs_t = [], []
    for _ in range(max(1, args.repeat)):  # alternating, so a change of load hits both sides
        runs_n.append(json_lines(nodec_cmd, env))
        runs_t.append(json_lines(torch_cmd, env))

    def merge(runs):
        """Each case's row from the first run, its seconds the median over the runs
        (and the spread kept as seconds_runs)."""
        out = {}
        for key, row in runs[0].items():
            if "seconds" in row:
                ss = [r[key]["seconds"] for r in runs if key in r]
                row = dict(row, seconds=statistics.median(ss), seconds_runs=ss)
            out[key] = row
        return out

    nodec, torch = merge(runs_n), merge(runs_t)
    def sec(rows, case, dtype):
        r = rows.get((case, dtype))
        return r["seconds"] if r else None

    rows = [("conv rhs (B 128, 16x8x8)", "conv_rhs"), ("conv vjp (B 128, 16x8x8)", "conv_vjp"),
            ("digits training iteration", "digits_iter")]
    print(f"{'':28s} {'nodec f64':>12s} {'torch f64':>12s} {'ratio':>7s} {'nodec f32':>12s} "
          f"{'torch f32':>12s} {'ratio f32':>9s}")
    for label, case in rows:
        n, t64 = sec(nodec, case, "float64"), sec(torch, case, "float64")
        n32, t32 = sec(nodec, case, "float32"), sec(torch, case, "float32")
        r64 = f"{t64 / n:.2f}" if n and t64 else "-"
        r32 = f"{t32 / n32:.2f}" if n32 and t32 else "-"
        print(f"{label:28s} {fmt(n):>12s} {fmt(t64):>12s} {r64:>7s} {fmt(n32):>12s} {fmt(t32):>12s} "
              f"{r32:>9s}")
    print(f"(ratio = torch / nodec in the same precision: above 1, nodec is faster; one thread each; medians of "
          f"{args.rounds} rounds, then over {max(1, args.repeat)} alternating runs)")
    spread = []
    for label, case in rows:
        for side, rs in (("nodec", nodec), ("torch f64", torch)):
            r = rs.get((case, "float64"))
            if r and len(r.get("seconds_runs", [])) > 1:
                spread.append(f"{case} {side} {fmt(min(r['seconds_runs']))}-{fmt(max(r['seconds_runs']))}")
    if spread:
        print("range over the runs: " + "; ".join(spread))
    print("\nwhere nodec's time goes (f64, B = 128, per call over the batch):")
    for case, what in [("hand_c_rhs", "hand-written C rhs: im2col + cblas_dgemm, 8 samples a chunk"),
                       ("hand_c_vjp", "hand-written C vjp: the forward again, 4 cblas_dgemm, col2im"),
                       ("part_conv1", "JIT: one conv (reshape, im2col, matmul)"),
                       ("part_conv1_vjp", "JIT: vjp of one conv"),
                       ("part_im2col", "JIT: im2col [16,8,8] -> [144,64]"),
                       ("hand_im2col", "hand C: the same im2col"),
                       ("part_col2im", "JIT: col2im [144,64] -> [16,8,8]"),
                       ("hand_col2im", "hand C: the same col2im"),
                       ("part_matmul", "JIT: K [16,144] @ u [144,64] (a conv's product)"),
                       ("part_transpose", "JIT: transpose(u) [144,64] -> [64,144]"),
                       ("part_matmul_t", "JIT: w [16,64] @ transpose(u) (a filter's gradient, per sample)")]:
        s = sec(nodec, case, "float64")
        if s is not None:
            print(f"  {fmt(s):>12s}  {what}")
    d = nodec.get(("digits_iter", "float64"))
    if d:
        print(f"\nnodec run: {d['timed_steps']} steps timed from the history file, "
              f"loss {d['loss_at_first_row']:.3f} -> {d['last_loss']:.3f}, whole run {d['whole_run_s']:.1f} s")
    t = torch.get(("digits_iter", "float64"))
    if t:
        print(f"torch: median of {t['iters']} iterations on {t['data']} data, "
              f"loss {t['first_loss']:.3f} -> {t['last_loss']:.3f}")
    d32 = nodec.get(("digits_iter", "float32"))
    if d32:
        print(f"nodec run --precision f32: loss {d32['loss_at_first_row']:.3f} -> {d32['last_loss']:.3f}")
    c32 = nodec.get(("conv_rhs", "float32"))
    if c32:
        print(f"f32 kernels against f64: rhs max |diff| / max |f64| {c32.get('max_diff_vs_f64_over_max')}, "
              f"vjp {nodec[('conv_vjp', 'float32')].get('max_diff_vs_f64_over_max')}")
    c = nodec.get(("conv_rhs", "float64"))
    if c:
        print(f"checks: JIT rhs vs hand C max rel diff {c.get('max_rel_diff_vs_hand_c')}, "
              f"vjp vs central difference {nodec[('conv_vjp', 'float64')].get('rel_err_vs_central_diff')}")
    if args.json:
        for r in list(nodec.values()) + list(torch.values()):
            print(json.dumps(dict(r, side="nodec" if r in nodec.values() else "torch")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
