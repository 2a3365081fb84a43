#!/usr/bin/env python3
"""Single precision (`option precision = f32`, docs/precision.md) end to end, each check
against an independent truth or the same program in double:

1. solves with every solver against exact solutions: the f32 error within single
   precision's reach (a few 1e-6 relative), f64's far below it, so the test cannot pass
   by running double twice; the f32 CSV prints 9 significant digits (a float's);
2. the conformance suite (../shared/conformance, when it is there) in f32, each file
   rewritten with `option precision = f32` and every `expect:` tolerance widened to single
   precision's (max(TOL, 5e-5 max(1, |VALUE|))), checked by the suite's own runner;
3. training: a small regression in both precisions with each gradient path, losses that
   agree to single precision's rounding over the first steps, and --check-gradient's
   relative error in f32 at the level central differences in floats reach; the `save`
   file holds dtype F32 (read with Python's struct/json), `nodec params` says so, and an
   f32 run loads an f64 file and the other way round;
4. emit-llvm --precision f32: float kernels (no double in a kernel's signature), and
   --precision overriding the file's option in both directions.

Usage: precision.py NODEC [CONFORMANCE_DIR]"""
import json, math, os, re, shutil, struct, subprocess, sys, tempfile

NODEC = os.path.abspath(sys.argv[1])
CONFORMANCE = sys.argv[2] if len(sys.argv) > 2 else None
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def run(folder, command, *args, text=None, name="m.node"):
    """nodec COMMAND NAME ARGS in folder, NAME holding text when given."""
    if text is not None:
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    return subprocess.run([NODEC, command, name, *args], cwd=folder, capture_output=True,
                          text=True, timeout=600)


def read_csv(path):
    with open(path) as f:
        rows = [line.rstrip("\n").split(",") for line in f if line.strip()]
    return rows[0], [[float(v) for v in r] for r in rows[1:]]


# ---- 1. solves against exact solutions ----

# y' = -y + sin(t) is not autonomous and has the closed form below; the linear oscillator
# x'' = -x (a pair) tests a vector state; both are smooth, so every solver converges.
DECAY = """option precision = {prec}
model M {{ state y = 1; dy/dt = -y + sin(t) }}
solve M {{ t = linspace(0, 5, 6); solver = {solver}; output = "out.csv" }}
"""


def decay_exact(t):
    return 1.5 * math.exp(-t) + 0.5 * (math.sin(t) - math.cos(t))


SOLVERS = {
    "euler": "euler(h = 1e-4)", "midpoint": "midpoint(h = 1e-3)", "heun": "heun(h = 1e-3)",
    "rk4": "rk4(h = 0.01)", "bosh3": "bosh3(rtol = 1e-6, atol = 1e-8)",
    "dopri5": "dopri5(rtol = 1e-6, atol = 1e-8)", "tsit5": "tsit5(rtol = 1e-6, atol = 1e-8)",
    "dop853": "dop853(rtol = 1e-6, atol = 1e-8)", "bdf": "bdf(rtol = 1e-6, atol = 1e-8)",
    "rodas4": "rodas4(rtol = 1e-6, atol = 1e-8)", "kvaerno5": "kvaerno5(rtol = 1e-6, atol = 1e-8)",
}
# each method's own error at these settings bounds both runs; f32 adds its rounding
ALLOWED = {"euler": 5e-5, "midpoint": 1e-5, "heun": 1e-5, "bdf": 2e-5}


def solve_errors(folder, method):
    errs = {}
    for prec in ("f64", "f32"):
        r = run(folder, "run", text=DECAY.format(prec=prec, solver=SOLVERS[method]))
        if r.returncode != 0:
            check(False, f"{method} {prec} solve ran: {r.stderr.strip()[:300]}")
            return None
        _, rows = read_csv(os.path.join(folder, "out.csv"))
        errs[prec] = max(abs(y - decay_exact(t)) for t, y in rows)
        with open(os.path.join(folder, "out.csv")) as f:
            digits = max(len(re.sub(r"[-.]|e.*", "", v).lstrip("0")) for v in f.read().split()[-1].split(","))
        errs[prec + "_digits"] = digits
    return errs


def test_solves(folder):
    for method in SOLVERS:
        e = solve_errors(folder, method)
        if not e:
            continue
        allowed = ALLOWED.get(method, 5e-6)
        check(e["f32"] <= allowed + 2e-6,
              f"{method}: f32 max error {e['f32']:.2e} <= {allowed + 2e-6:.1e} (f64 {e['f64']:.2e})")
        check(e["f32_digits"] <= 9 and e["f64_digits"] > 9,
              f"{method}: f32 CSV prints a float's 9 digits ({e['f32_digits']}), f64 more ({e['f64_digits']})")
    # rk4 at h = 0.01 errs by ~1e-10 in double: f32's rounding must show above that
    e = solve_errors(folder, "rk4")
    if e:
        check(e["f64"] < 1e-8 < e["f32"], f"rk4: f32 differs from f64 ({e['f32']:.1e} vs {e['f64']:.1e}): "
              "the single run really is single")


# ---- 2. the conformance suite in f32 ----

def widen(line):
    """An `expect:` line with its tolerance at least single precision's."""
    m = re.match(r"(# expect: .* = )(\S+) ± (\S+)\s*$", line)
    if not m:
        return line
    value, tol = float(m.group(2)), float(m.group(3))
    return f"{m.group(1)}{m.group(2)} ± {max(tol, 5e-5 * max(1.0, abs(value))):.3g}\n"


def test_conformance(folder):
    if not CONFORMANCE or not os.path.isdir(CONFORMANCE):
        print("skip the conformance suite in f32 (no ../shared/conformance)")
        return
    suite = os.path.join(folder, "conformance")
    shutil.copytree(CONFORMANCE, suite)
    for name in os.listdir(suite):
        if not name.endswith(".node"):
            continue
        path = os.path.join(suite, name)
        with open(path) as f:
            lines = f.readlines()
        with open(path, "w") as f:
            f.write("option precision = f32\n")
            f.writelines(widen(l) for l in lines)
    # the option line moves every line down one: the error files' locations must not
    # move, so they run as they are (precision does not reach an error at check time)
    for name in os.listdir(CONFORMANCE):
        if re.match(r"\d+-error-", name):
            shutil.copy(os.path.join(CONFORMANCE, name), os.path.join(suite, name))
    r = subprocess.run([sys.executable, os.path.join(suite, "run.py"), NODEC, suite],
                       capture_output=True, text=True, timeout=3000)
    tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-300:]
    if r.returncode != 0:
        print(r.stdout)
    check(r.returncode == 0 and " 0 failed" in tail, f"the conformance suite in f32: {tail}")


# ---- 3. training ----

TRAIN = """option seed = 2
option precision = {prec}
model True {{ state y[2] = [1, 0]; dy/dt = [y[1], -y[0] - 0.2 * y[1]] }}
data obs = simulate(True, t = linspace(0, 2, 21), solver = dopri5(rtol = 1e-9, atol = 1e-12))
model Fit {{
  state y[2]
  net f = MLP(2, 16, 2, tanh)
  dy/dt = f(y)
}}
train Fit {{
  data      = obs
  init      = {{ y = [1, 0] }}
  loss      = mean((y - obs.y)^2)
  solver    = {solver}
  gradient  = {gradient}
  optimizer = adam(lr = 1e-2)
  steps     = {steps}
  log_every = 1
  history   = "h.csv"
  save      = "fit.params"
}}
"""


def losses(folder, prec, solver, gradient, steps=5, extra=()):
    r = run(folder, "run", "-q", *extra,
            text=TRAIN.format(prec=prec, solver=solver, gradient=gradient, steps=steps))
    if r.returncode != 0:
        check(False, f"train {prec} {solver} {gradient} ran: {r.stderr.strip()[:300]}")
        return None, r
    header, rows = read_csv(os.path.join(folder, "h.csv"))
    return [row[header.index("loss")] for row in rows], r


WINDOWS = """option seed = 5
option precision = {prec}
model True {{ state y[2] = [2, 0]; dy/dt = [-0.1 * y[0]^3 + 2 * y[1]^3, -2 * y[0]^3 - 0.1 * y[1]^3] }}
data obs = simulate(True, t = linspace(0, 25, 1000), solver = dopri5(rtol = 1e-7, atol = 1e-9))
model Fit {{ state y[2]; net f = MLP(2, 50, 2, tanh); dy/dt = f(y^3) }}
train Fit {{
  data = obs; loss = mean(abs(y - obs.y)); batch = windows(length = 10, count = 20)
  solver = dopri5(rtol = 1e-6, atol = 1e-9); gradient = backprop; optimizer = rmsprop(lr = 1e-3)
  steps = 3; log_every = 1; history = "h.csv"
}}
"""


def test_windows(folder):
    """The demo's windows on a uniform grid are one batch in f32 too: times whose float
    steps differ by an ulp are still one grid (decided on the data's doubles), so the
    forward solve takes about f64's evaluations, not one stop per window's time."""
    nfe = {}
    for prec in ("f64", "f32"):
        r = run(folder, "run", "-q", text=WINDOWS.format(prec=prec))
        if r.returncode != 0:
            check(False, f"windows {prec}: {r.stderr.strip()[:300]}")
            return
        header, rows = read_csv(os.path.join(folder, "h.csv"))
        nfe[prec] = max(row[header.index("nfe_forward")] for row in rows)
    check(nfe["f32"] <= 2 * nfe["f64"], f"windows: f32 forward evaluations {nfe['f32']:.0f} "
          f"within 2x f64's {nfe['f64']:.0f}")


def safetensors_dtypes(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


def test_training(folder):
    for solver, gradient in [("rk4(h = 0.05)", "backprop"), ("dopri5(rtol = 1e-5, atol = 1e-7)", "adjoint"),
                             ("rk4(h = 0.05)", "adjoint")]:
        l64, _ = losses(folder, "f64", solver, gradient)
        l32, _ = losses(folder, "f32", solver, gradient)
        if l64 and l32:
            worst = max(abs(a - b) / abs(b) for a, b in zip(l32, l64))
            check(worst < 1e-3 and l32 != l64,
                  f"train {gradient} {solver}: f32 losses within {worst:.1e} of f64's over 5 steps")
    _, r = losses(folder, "f32", "rk4(h = 0.05)", "adjoint", steps=1, extra=("--check-gradient",))
    errs = [float(x) for x in re.findall(r"relative error (\S+)", r.stderr)]
    check(errs and max(errs) < 2e-2, f"--check-gradient in f32: relative errors {errs} < 2e-2")
    params = os.path.join(folder, "fit.params")
    check(safetensors_dtypes(params) == {"F32"}, "an f32 train saves dtype F32")
    shown = subprocess.run([NODEC, "params", params], capture_output=True, text=True)
    check(shown.returncode == 0 and "F32" in shown.stdout and "F64" not in shown.stdout,
          "nodec params shows F32")
    test_cross_load(folder)
    test_windows(folder)


LOAD = """option precision = {prec}
model Fit {{ state y[2]; net f = MLP(2, 16, 2, tanh); dy/dt = f(y) }}
solve Fit {{ load = "{file}"; init = {{ y = [1, 0] }}; t = [0, 1]; solver = rk4(h = 0.1); output = "l.csv" }}
"""


def test_cross_load(folder):
    """The file of one precision loads in the other: the same solve to float rounding."""
    shutil.copy(os.path.join(folder, "fit.params"), os.path.join(folder, "f32.params"))
    losses(folder, "f64", "rk4(h = 0.05)", "backprop", steps=1)
    check(safetensors_dtypes(os.path.join(folder, "fit.params")) == {"F64"}, "an f64 train saves dtype F64")
    shutil.copy(os.path.join(folder, "fit.params"), os.path.join(folder, "f64.params"))
    finals = {}
    for prec, file in [("f32", "f64.params"), ("f64", "f32.params"), ("f64", "f64.params")]:
        r = run(folder, "run", text=LOAD.format(prec=prec, file=file))
        check(r.returncode == 0, f"an {prec} solve loads {file}: {r.stderr.strip()[:200]}")
        if r.returncode == 0:
            finals[prec, file] = read_csv(os.path.join(folder, "l.csv"))[1][-1][1:]
    a, b = finals.get(("f32", "f64.params")), finals.get(("f64", "f64.params"))
    if a and b:
        check(max(abs(x - y) for x, y in zip(a, b)) < 1e-5, "f32 from an F64 file: the f64 solve to 1e-5")
    # the F32 file holds the f32 train's parameters, within float rounding of the f64 train's
    a = finals.get(("f64", "f32.params"))
    if a and b:
        check(max(abs(x - y) for x, y in zip(a, b)) < 1e-4, "f64 from an F32 file: the f64 solve to 1e-4")


# ---- 4. the kernels and the flag ----

def test_llvm(folder):
    text = "model M { state y[2] = [1, 2]; net f = MLP(2, 8, 2, tanh); dy/dt = f(y) }\n"
    r = run(folder, "emit-llvm", "--precision", "f32", text=text)
    sigs = re.findall(r"^define .*$", r.stdout, re.M)
    check(r.returncode == 0 and sigs and all("double" not in s for s in sigs) and
          any("float" in s for s in sigs), f"emit-llvm --precision f32: {len(sigs)} float kernels")
    r = run(folder, "emit-llvm", text="option precision = f32\n" + text)
    r64 = run(folder, "emit-llvm", "--precision", "f64")
    check("float" in r.stdout and re.search(r"^define .*double", r64.stdout, re.M) is not None,
          "--precision f64 overrides the file's option precision = f32")


def main():
    folder = tempfile.mkdtemp(prefix="nodec_precision_")
    try:
        test_llvm(folder)
        test_solves(folder)
        test_training(folder)
        test_conformance(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{len(failures)} failed" if failures else "all passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
