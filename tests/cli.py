#!/usr/bin/env python3
"""Command-line behaviour of nodec: help, version, usage errors (exit 2), files that
cannot be read (exit 1 with one clear message), check's silence on a good file,
dumps and emit-llvm. Usage: cli.py NODEC EXAMPLES_DIR"""
import os, random, subprocess, sys, tempfile

nodec, examples = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
seed = os.path.join(examples, "seed.node")
failures = []
checks = 0

def run(*args, cwd=None):
    return subprocess.run([nodec, *args], capture_output=True, text=True, timeout=60, cwd=cwd)

def expect(name, p, code, out=None, err=None, empty_out=False, empty_err=False):
    global checks
    checks += 1
    msgs = []
    if p.returncode != code:
        msgs.append(f"exit {p.returncode}, want {code}")
    if out and out not in p.stdout:
        msgs.append(f"stdout lacks {out!r}")
    if err and err not in p.stderr:
        msgs.append(f"stderr lacks {err!r}: {p.stderr[:300]!r}")
    if empty_out and p.stdout:
        msgs.append(f"stdout not empty: {p.stdout[:200]!r}")
    if empty_err and p.stderr:
        msgs.append(f"stderr not empty: {p.stderr[:200]!r}")
    print(("FAIL " if msgs else "ok   ") + name + (": " + "; ".join(msgs) if msgs else ""))
    if msgs:
        failures.append(name)

expect("help", run("--help"), 0, out="usage: nodec COMMAND")
expect("no arguments", run(), 2, err="usage: nodec COMMAND")
expect("version", run("--version"), 0, out="nodec ")
expect("help lists params", run("--help"), 0, out="params FILE.params")
for cmd in ("run", "check", "adjoint", "emit-llvm", "params"):
    expect(f"{cmd} --help", run(cmd, "--help"), 0, out=f"usage: nodec {cmd}")
expect("unknown command", run("fly", seed), 2, err="unknown command 'fly'")
expect("unknown option", run("run", seed, "--fast"), 2, err="unknown option '--fast'")
expect("unknown short option", run("run", seed, "-x"), 2, err="unknown option '-x'")
expect("a value an option does not take", run("run", seed, "--stats=1"), 2, err="'--stats=1'")
expect("version names LLVM", run("--version"), 0, out="(LLVM ")
checks += 1
if __import__("re").search(r"\(LLVM \d+\.\d+", run("--version").stdout):
    print("ok   version names LLVM's version number")
else:
    print("FAIL version names LLVM's version number"); failures.append("LLVM version number")
expect("options before the command", run("--quiet", "run", seed), 0, out="2.75", empty_err=True)
p1, p2 = run("run", seed, "--seed=3", "-q"), run("run", seed, "--seed", "3", "-q")
expect("--seed=3 works like --seed 3", p1, 0, out=p2.stdout or "(no output)")
expect("--output= for emit-llvm", run("emit-llvm", seed, "--output=/dev/null"), 0, empty_out=True)
expect("bad dump stage", run("run", seed, "--dump=bytes"), 2, err="unknown stage 'bytes'")
expect("missing file argument", run("check"), 2, err="check needs a .node file")
expect("missing file", run("check", "/no/such/file.node"), 1,
       err="cannot read '/no/such/file.node': No such file or directory")
expect("a directory", run("check", examples), 1, err="Is a directory")
expect("-o with run", run("run", seed, "-o", "x.csv"), 2, err="-o is for emit-llvm and emit-c")
with tempfile.TemporaryDirectory() as wd:
    big = os.path.join(wd, "big.node")
    with open(big, "wb") as f: # sparse: the size is refused before anything is read
        f.truncate((32 << 20) + 1)
    expect("a file past the size limit", run("check", big), 1,
           err="it has 33554433 bytes, more than the limit of 33554432 (32 MiB)")
expect("check is silent", run("check", seed), 0, empty_out=True, empty_err=True)
expect("unknown model", run("emit-llvm", seed, "--model", "Nope"), 1, err="no model named 'Nope'")
expect("dump tokens", run("check", seed, "--dump=tokens"), 0, out="model")
expect("dump ast", run("check", seed, "--dump=ast"), 0, out="MODEL Linear")
expect("dump ir", run("check", seed, "--dump=ir", "--model", "Growth"), 0, out="dx/dt")
expect("dump grad", run("check", seed, "--dump=grad"), 0, out="kernels of model Growth: rhs (for jit)")
lv = os.path.join(examples, "lotka_volterra.node")
with tempfile.TemporaryDirectory() as wd:
    p = run("run", lv, "--dump=grad", cwd=wd)
    # the train's derived kernels, each output named by the slot it fills, and no run
    for want in ("kernels of train at", "vjp x = %", "vjp alpha = %", "loss_grad x = %",
                 "init_vjp alpha = %", "dx/dt = %"):
        expect(f"dump grad: {want}", p, 0, out=want)
    expect("dump grad runs nothing", p, 0, empty_err=True)
    if os.listdir(wd):
        print("FAIL dump grad wrote files"); failures.append("dump grad wrote files")
expect("dump grad: jac for bdf", run("check", os.path.join(examples, "robertson.node"), "--dump=grad"),
       0, out=", jac")
expect("dump grad: adjoint's initial-value terms",
       run("adjoint", os.path.join(examples, "anodev2.node"), "--dump=grad"), 0, out="init W0 via W = %")
expect("emit-llvm", run("emit-llvm", seed, "--model", "Growth"), 0, out="define")
expect("adjoint", run("adjoint", seed, "--model", "Growth"), 0, out="da_x/dt")
with tempfile.TemporaryDirectory() as wd:
    out = os.path.join(wd, "g.ll")
    expect("emit-llvm -o", run("emit-llvm", seed, "-o", out), 0, empty_out=True)
    if not os.path.exists(out) or "define" not in open(out).read():
        print("FAIL emit-llvm -o wrote nothing"); failures.append("emit-llvm -o wrote")
    p = run("run", seed, "--stats", cwd=wd)
    expect("run --stats", p, 0, out="2.75", err="right-hand-side evaluations")
    expect("run --quiet", run("run", seed, "--quiet", cwd=wd), 0, empty_err=True)
    bad = os.path.join(wd, "bad.bin")
    with open(bad, "wb") as f:
        f.write(bytes(range(256)) * 4)
    p = run("check", bad)
    expect("binary garbage", p, 1, err="error")
    checks += 1
    if any(ch < " " and ch not in "\n\t" or ch == "\x7f" for ch in p.stderr):
        print("FAIL binary garbage: raw control bytes reach the terminal"); failures.append("raw bytes")
    else:
        print("ok   binary garbage: control bytes are escaped")
    expect("binary garbage escaped", p, 1, err="| \\x00\\x01\\x02")
    # 70 imports: one located error at the first import past the file table
    for i in range(70):
        with open(os.path.join(wd, f"m{i}.node"), "w") as f:
            f.write(f"const c{i} = {i}\n")
    many = os.path.join(wd, "many.node")
    with open(many, "w") as f:
        f.write("".join(f'import "m{i}"\n' for i in range(70)))
    p = run("check", many)
    expect("too many files", p, 1, err='many.node:63:1: error: too many files: importing \'m62\'')
    checks += 1
    if p.stderr.count("error") != 1:
        print("FAIL too many files: reported more than once"); failures.append("too many files once")
    else:
        print("ok   too many files: reported once")
    expect("emit-c -o into a missing folder", run("emit-c", seed, "-o", "/no/such/dir/out.c"), 1,
           err="nodec: error: emit-c -o /no/such/dir/out.c: cannot write into '/no/such/dir': No such file or directory")

# --check-gradient: the chosen gradient against central differences at step 1, per
# parameter. A tight solve agrees to ~1e-8; a loose adjoint's error shows (2.9e-3 measured).
CHECK_GRADIENT = """model Truth { state x = 1; dx/dt = -0.5 * x * (1 + sin(3 * t)) }
model Decay { state x = 1; param k = 0.2; dx/dt = -k * x * (1 + sin(3 * t)) }
data obs = simulate(Truth, t = linspace(0, 4, 21), solver = rk4(h = 0.01))
train Decay {
  data = obs
  loss = (x - obs.x)^2
  solver = dopri5(rtol = RTOL, atol = RTOL)
  gradient = adjoint
  optimizer = adam(lr = 1e-2)
  steps = 2
}
"""
import re
with tempfile.TemporaryDirectory() as wd:
    errors = {}
    for rtol in ("1e-3", "1e-10"):
        path = os.path.join(wd, f"gc_{rtol}.node")
        with open(path, "w") as f:
            f.write(CHECK_GRADIENT.replace("RTOL", rtol))
        p = run("run", path, "--check-gradient", "-q", cwd=wd)
        expect(f"--check-gradient at rtol {rtol}", p, 0, err="adjoint gradient against central differences")
        m = re.search(r"^  k +relative error (\S+)", p.stderr, re.M)
        errors[rtol] = float(m.group(1)) if m else None
    ok = errors["1e-10"] is not None and errors["1e-10"] < 1e-6 and errors["1e-3"] is not None \
        and errors["1e-3"] > 1e-4
    checks += 1
    print(("ok   " if ok else "FAIL ") + f"--check-gradient tells a tight gradient from a loose one: {errors}")
    if not ok:
        failures.append("check-gradient errors")

# --check-gradient with per-sample step control: each path's gradient over a batch of
# pendulums, one near upright (theta0 = 3.1), against central differences of the same loss.
PER_SAMPLE_GRADIENT = """data rows = csv("rows.csv")
model Pend { state theta; state omega = 0; param g = 1; param c = 0.05
  dtheta/dt = omega
  domega/dt = -g * sin(theta) - c * omega }
train Pend { data = rows; init = { theta = rows.theta }; t = [0, 4]; final_loss = (theta - 0.5)^2
  solver = SOLVER; gradient = PATH; optimizer = sgd(lr = 1e-3); steps = 1 }
"""
with tempfile.TemporaryDirectory() as wd:
    with open(os.path.join(wd, "rows.csv"), "w") as f:
        f.write("theta\n0.1\n3.1\n-0.4\n")
    for path_name, solver in (("adjoint", "dopri5"), ("backprop", "tsit5"), ("checkpoint", "dopri5"),
                              ("adjoint", "bdf"), ("backprop", "bdf")):
        src = os.path.join(wd, f"ps_{path_name}_{solver}.node")
        with open(src, "w") as f:
            f.write(PER_SAMPLE_GRADIENT.replace("PATH", path_name).replace(
                "SOLVER", f"{solver}(rtol = 1e-10, atol = 1e-12, step_control = per_sample)"))
        p = run("run", src, "--check-gradient", "-q", cwd=wd)
        expect(f"--check-gradient per_sample {path_name} {solver}", p, 0,
               err=f"{path_name} gradient against central differences")
        errs = [float(e) for e in re.findall(r"relative error (\S+)", p.stderr)]
        checks += 1
        ok = len(errs) == 2 and max(errs) < 1e-6
        print(("ok   " if ok else "FAIL ") + f"per_sample {path_name} {solver} gradient: {errs}")
        if not ok:
            failures.append(f"per_sample {path_name} {solver} gradient")

# One --check-gradient run of text (a train of n_params parameters) by path_name: it
# must say so and every parameter's relative error be below 1e-6.
def gradient_check(wd, name, text, label, path_name, n_params, what):
    global checks
    src = os.path.join(wd, name)
    with open(src, "w") as f:
        f.write(text)
    p = run("run", src, "--check-gradient", "-q", cwd=wd)
    expect(f"--check-gradient {label}", p, 0, err=f"{path_name} gradient against central differences")
    errs = [float(e) for e in re.findall(r"relative error (\S+)", p.stderr)]
    checks += 1
    ok = len(errs) == n_params and max(errs) < 1e-6
    print(("ok   " if ok else "FAIL ") + f"{label} {what}: {errs}")
    if not ok:
        failures.append(f"{label} gradient")

# --check-gradient through event times (issue 15): the bouncing ball's height after three
# bounces (at t = 6; the bounces at 1.43, 3.71, 5.54), its gradient in h0 and e by the
# adjoint and by backprop against central differences of the same loss.
BALL_GRADIENT = """model Ball { param h0 = 10; param e = 0.8; state h = h0; state v = 0
  dh/dt = v; dv/dt = -9.81; when h < 0 { v = -e * v } }
train Ball { t = [0, 6]; final_loss = h^2; solver = SOLVER; gradient = PATH
  optimizer = sgd(lr = 1e-4); steps = 1 }
"""
with tempfile.TemporaryDirectory() as wd:
    for path_name, solver in (("adjoint", "dopri5(rtol = 1e-11, atol = 1e-12)"),
                              ("backprop", "tsit5(rtol = 1e-11, atol = 1e-12)"),
                              ("adjoint", "rk4(h = 0.01)"), ("backprop", "rk4(h = 0.01)")):
        gradient_check(wd, "ball.node", BALL_GRADIENT.replace("PATH", path_name).replace("SOLVER", solver),
                       f"ball {path_name} {solver.split('(')[0]}", path_name, 2,
                       "gradient through three bounces")

# --check-gradient through velocity Verlet (issue 17 part 1): backprop and checkpoint of the
# kick-drift-kick steps against central differences of the same discrete solve: a
# trainable frequency and nonlinear term fitted to a series (its states start from the
# data), and without data an initial velocity v0 under a final loss.
VERLET_GRADIENT = """model Truth { state x[2] = [1, 0]; state dx/dt = [0, 2]; d2x/dt2 = -4 * x + 0.5 * sin(x) }
model Osc { param w = 1.8; param c = 0.3; param v0 = 1.5
  state x[2] = [1, 0]; state dx/dt = [0, v0]
  d2x/dt2 = -w^2 * x + c * sin(x) }
data obs = simulate(Truth, t = linspace(0, 2, 9), solver = rk4(h = 0.01))
train Osc { data = obs; loss = sum((x - obs.x)^2); solver = verlet(h = 0.01)
  gradient = PATH; optimizer = sgd(lr = 1e-3); steps = 2 }
train Osc { t = [0, 1.3]; final_loss = (x[1] - 0.2)^2 + (dx/dt[0] + 0.5)^2
  solver = verlet(h = 0.02); gradient = PATH; optimizer = sgd(lr = 1e-3); steps = 1 }
"""
with tempfile.TemporaryDirectory() as wd:
    for path_name in ("backprop", "checkpoint"):
        gradient_check(wd, "verlet.node", VERLET_GRADIENT.replace("PATH", path_name),
                       f"verlet {path_name}", path_name, 6, "gradient through kick-drift-kick")

# Second-order equations (issue 17): `nodec adjoint` prints the first-order pair that
# d2x/dt2 lowers to, and --check-gradient of a train that learns an oscillator's w and
# damping c from simulated data (its loss reads the velocity dx/dt) agrees with central
# differences by the adjoint and by backprop, adaptive and fixed step.
SECOND_ORDER = """model TrueOsc { state x = 1; state dx/dt = 0; d2x/dt2 = -4 * x }
data obs = simulate(TrueOsc, t = linspace(0, 3, 31), solver = dop853(rtol = 1e-12, atol = 1e-12))
model Osc {
  state x = 1
  state dx/dt = 0
  param w = 1.5
  param c = 0.1
  d2x/dt2 = -w^2 * x - c * dx/dt
}
train Osc { data = obs; loss = (x - obs.x)^2 + 0.1 * (dx/dt)^2; solver = SOLVER; gradient = PATH
  optimizer = sgd(lr = 1e-4); steps = 1 }
"""
with tempfile.TemporaryDirectory() as wd:
    src = os.path.join(wd, "osc.node")
    with open(src, "w") as f:
        f.write(SECOND_ORDER.split("train Osc")[0])
    p = run("adjoint", src, "--model", "Osc")
    expect("adjoint of a second-order model", p, 0, out="  dx/dt = dx/dt\n  d2x/dt2 = -(w ^ 2 * x) - dx/dt * c\n")
    expect("adjoint of a second-order model's velocity", p, 0, out="  d(a_dx/dt)/dt = ")
    for path_name, solver in (("adjoint", "dopri5(rtol = 1e-11, atol = 1e-12)"),
                              ("backprop", "tsit5(rtol = 1e-11, atol = 1e-12)"),
                              ("adjoint", "rk4(h = 0.01)"), ("backprop", "rk4(h = 0.01)")):
        gradient_check(wd, "osc_train.node", SECOND_ORDER.replace("PATH", path_name).replace("SOLVER", solver),
                       f"second-order {path_name} {solver.split('(')[0]}", path_name, 2,
                       "gradient of w and c")

# --check-gradient through the image ops (issue 16): a small conv ODE-Net on a batch of
# three 1x6x6 images (a strided conv in init, conv + group_norm + max_pool + avg_pool in
# the right-hand side, a readout with cross_entropy), its five parameters by each path against
# central differences of the same loss.
CONV_GRADIENT = """data imgs = csv("imgs.csv")
model Net {
  state h[2, 3, 3]
  param K0[2, 1, 3, 3] ~ normal(0, 0.5)
  param b0[2, 1, 1] ~ normal(0, 0.1)
  param K1[2, 2, 3, 3] ~ normal(0, 0.3)
  param g[2, 1, 1] ~ normal(1, 0.1)
  param W[3, 2] ~ normal(0, 0.5)
  dh/dt = tanh(g * group_norm(conv2d(K1, h, pad = 1), 1)) + 0.1 * avg_pool(max_pool(h, 2, stride = 1), 2)
}
train Net { data = imgs; init = { h = relu(conv2d(K0, imgs.x, stride = 2, pad = 1) + b0) }
  t = [0, 1]; final_loss = cross_entropy(W @ sum(reshape(h, [2, 9]), 1), imgs.label)
  solver = SOLVER; gradient = PATH; optimizer = sgd(lr = 1e-3); steps = 1 }
"""
with tempfile.TemporaryDirectory() as wd:
    import random
    rng = random.Random(3)
    with open(os.path.join(wd, "imgs.csv"), "w") as f:
        f.write("label," + ",".join(f'"x[0,{i},{j}]"' for i in range(6) for j in range(6)) + "\n")
        for k in range(3):
            f.write(f"{k}," + ",".join(f"{rng.uniform(0, 1):.6f}" for _ in range(36)) + "\n")
    # max_pool's kinks make an adaptive solve's step sequence jump with the parameters, so
    # central differences of a dopri5 loss are only as good as its tolerance there (adjoint
    # and backprop agree with each other, 2e-4 from them at rtol 1e-11, 2e-6 at 1e-13): the
    # adaptive check uses avg_pool in its place, the fixed-step ones max_pool.
    for path_name, solver in (("adjoint", "dopri5(rtol = 1e-11, atol = 1e-12)"),
                              ("backprop", "rk4(h = 0.1)"), ("checkpoint", "rk4(h = 0.1)")):
        text = CONV_GRADIENT.replace("PATH", path_name).replace("SOLVER", solver)
        if path_name == "adjoint":
            text = text.replace("max_pool(h, 2, stride = 1)", "avg_pool(h, 2, stride = 1)")
        gradient_check(wd, "net.node", text, f"conv net {path_name} {solver.split('(')[0]}", path_name, 5,
                       "gradient of every image op")

# --check-gradient through the recurrent cells and the closed forms (issue 17): a GRU in
# the right-hand side, an LSTM readout in the final loss, kl_normal, normal_loglik and
# bernoulli_loglik of the state, by each path against central differences.
CELLS_GRADIENT = """import "nn"
model Rec {
  state h[3] = [0.1, -0.2, 0.3]
  net gru = GRU(2, 3)
  net lstm = LSTM(3, 2)
  param lv[3] ~ normal(0, 0.3)
  dh/dt = gru([sin(t), cos(t)], h) - h
}
train Rec { t = [0, 1]
  final_loss = sum(lstm(h, [0.1, 0.2, -0.1, 0.3])^2) + kl_normal(h, lv) - normal_loglik([0.2, 0.1, 0], h, lv) - bernoulli_loglik([1, 0, 1], 3 * h)
  solver = SOLVER; gradient = PATH; optimizer = sgd(lr = 1e-3); steps = 1 }
"""
with tempfile.TemporaryDirectory() as wd:
    for path_name, solver in (("adjoint", "dopri5(rtol = 1e-11, atol = 1e-12)"),
                              ("backprop", "rk4(h = 0.05)")):
        gradient_check(wd, "cells.node", CELLS_GRADIENT.replace("PATH", path_name).replace("SOLVER", solver),
                       f"cells {path_name} {solver.split('(')[0]}", path_name, 9,
                       "gradient through GRU, LSTM and the closed forms")

# The ODE-RNN encoder (issue 17): a latent ODE's gradient, through the decoder, the
# reparameterised draw from the encoding, the cell's jumps and the encoder's intervals,
# against central differences, by each path. Six trajectories on subsets of one grid (one
# batch on the union of their times) with a mask, then four with their own starts and
# spacings (each its own batch).
LATENT = """import "nn"
option seed = 3
data obs = csv("series.csv")
model Latent {
  state z[2]
  net dyn = MLP(2, 4, 2, tanh)
  net out = Dense(2, 1)
  net rec = MLP(3, 4, 3, tanh)
  net cell = GRU(2, 3)
  net head = Dense(3, 4)
  dz/dt = dyn(z)
}
train Latent {
  data = obs
  encoder h[3] { dh/dt = rec(h); h = cell([obs.x, obs.m], h); mask = obs.m; solver = ENC }
  sample z0 ~ normal(head(h)[0:2], exp(0.5 * head(h)[2:4]))
  init = { z = z0 }
  loss = obs.m * (obs.x - out(z)[0])^2
  final_loss = 0.1 * kl_normal(head(h)[0:2], head(h)[2:4])
  solver = SOLVER; gradient = PATH; optimizer = adam(lr = 0.01); steps = 1 }
"""
def write_series(wd, rows):
    with open(os.path.join(wd, "series.csv"), "w") as f:
        f.write("id,t,x,m\n" + "".join(f"{i},{t},{x},{m}\n" for i, t, x, m in rows))
with tempfile.TemporaryDirectory() as wd:
    rnd = random.Random(5)
    grid = [round(0.1 * k, 1) for k in range(8)]
    union = [(i, grid[k], round(rnd.uniform(-1, 1), 3), int(rnd.random() < 0.8))
             for i in range(6) for k in [0] + sorted(rnd.sample(range(1, 8), 5))]
    apart = [(i, round(i * 0.3 + 0.15 * k * (1 + i), 3), round(rnd.uniform(-1, 1), 3), 1)
             for i in range(4) for k in range(3 + i)]
    for rows, how in ((union, "union"), (apart, "apart")):
        write_series(wd, rows)
        for path_name, solver, enc in (
                ("adjoint", "dopri5(rtol = 1e-11, atol = 1e-12)", "dopri5(rtol = 1e-11, atol = 1e-12)"),
                ("backprop", "rk4(h = 0.05)", "rk4(h = 0.05)"),
                ("checkpoint", "rk4(h = 0.05)", "tsit5(rtol = 1e-10, atol = 1e-12)")):
            text = LATENT.replace("PATH", path_name).replace("SOLVER", solver).replace("ENC", enc)
            gradient_check(wd, "latent.node", text, f"encoder {how} {path_name}", path_name, 16,
                           "gradient through an ODE-RNN encoder, sample and decoder")
    # nothing allocated in a training step with an encoder either (the union batch), its
    # validation set scored through an encoder of its own
    write_series(wd, union)
    for path_name, solver, enc in (("adjoint", "dopri5(rtol = 1e-7, atol = 1e-9)", "rk4(h = 0.05)"),
                                   ("backprop", "rk4(h = 0.05)", "dopri5(rtol = 1e-7, atol = 1e-9)")):
        src = os.path.join(wd, "latent.node")
        with open(src, "w") as f:
            f.write(LATENT.replace("PATH", path_name).replace("SOLVER", solver).replace("ENC", enc)
                    .replace("steps = 1", "steps = 10; validation = obs; log_every = 5"))
        p = subprocess.run([nodec, "run", "-q", src], capture_output=True, text=True, timeout=60,
                           cwd=wd, env=dict(os.environ, NODEC_ALLOC_CHECK="1"))
        expect(f"encoder allocation check {path_name}", p, 0,
               err="allocation check: the heap changed in 0 of 9 iterations")

# `sample z ~ normal(mu, sigma)` (issue 17): the gradient at the step's fixed noise against
# central differences, by each path; the same seed gives the same history, another seed
# another one.
VAE = """import "nn"
option seed = SEED
data pts = csv("pts.csv")
model Vae { state h[2]; net enc = Dense(2, 2); net dec = MLP(2, 4, 2, tanh); param lv = -1
  dh/dt = dec(h) - h }
train Vae { data = pts; sample z ~ normal(enc(pts.x)[0:1], exp(0.5 * enc(pts.x)[1]))
  init = { h = concat(z, 0) }; t = [0, 1]; batch = 3
  final_loss = -normal_loglik(pts.x, h, [lv, lv]) + kl_normal(enc(pts.x)[0:1], enc(pts.x)[1:2])
  solver = SOLVER; gradient = PATH; optimizer = adam(lr = 0.02); steps = STEPS; history = "h.csv" }
"""
with tempfile.TemporaryDirectory() as wd:
    with open(os.path.join(wd, "pts.csv"), "w") as f:
        f.write("x[0],x[1]\n0.5,-0.3\n-0.2,0.1\n0.8,-0.45\n-0.6,0.35\n0.1,-0.02\n")
    def vae(seed, steps, path="adjoint", solver="rk4(h = 0.05)"):
        return (VAE.replace("SEED", str(seed)).replace("STEPS", str(steps))
                .replace("PATH", path).replace("SOLVER", solver))
    for path_name, solver in (("adjoint", "dopri5(rtol = 1e-11, atol = 1e-12)"),
                              ("backprop", "rk4(h = 0.05)")):
        gradient_check(wd, "vae.node", vae(1, 1, path_name, solver), f"sample {path_name}",
                       path_name, 7, "gradient through sample at the step's noise")
    losses = []
    for vae_seed in (1, 1, 2):
        src = os.path.join(wd, "vae.node")
        with open(src, "w") as f:
            f.write(vae(vae_seed, 20))
        p = run("run", src, "-q", cwd=wd)
        expect(f"sample seed {vae_seed}", p, 0)
        with open(os.path.join(wd, "h.csv")) as f:
            losses.append([line.split(",")[1] for line in f.read().splitlines()[1:]])
    checks += 1
    ok = losses[0] == losses[1] and losses[0] != losses[2] and len(losses[0]) == 10
    print(("ok   " if ok else "FAIL ") + "sample: a seed's history repeats, another seed's differs")
    if not ok:
        failures.append("sample seeds")

# Each directive draws from its own stream of the seed: how long a train runs (how
# many batches it draws) changes its parameters, not what a later solve samples.
STREAMS = """option seed = 5
model Truth { state x = 1; dx/dt = -0.5 * x }
data obs = simulate(Truth, t = linspace(0, 2, 21), solver = rk4(h = 0.05))
model Fit { state x; param k ~ normal(0, 1); dx/dt = -k * x }
train Fit { data = obs; loss = (x - obs.x)^2; batch = windows(length = 3, count = 2)
            solver = rk4(h = 0.05); optimizer = sgd(lr = 0.1); steps = STEPS; log_every = STEPS
            history = "history.csv" }
model Cloud { state z[2]; dz/dt = -z }
solve Cloud { t = [0, 1]; init = { z ~ normal(0, 1) }; samples = 4; solver = rk4(h = 0.1); output = "cloud.csv" }
"""
with tempfile.TemporaryDirectory() as wd:
    outputs = []
    for steps in (2, 7):
        path = os.path.join(wd, f"streams{steps}.node")
        with open(path, "w") as f:
            f.write(STREAMS.replace("STEPS", str(steps)))
        expect(f"streams: run with {steps} train steps", run("run", path, "--quiet", cwd=wd), 0)
        outputs.append([open(os.path.join(wd, n)).read() for n in ("cloud.csv", "history.csv")])
    checks += 1
    if outputs[0][0] != outputs[1][0] or outputs[0][1] == outputs[1][1]:
        print("FAIL streams: a solve's samples depend on how long an earlier train ran")
        failures.append("streams")
    else:
        print("ok   streams: a solve's samples do not depend on how long an earlier train ran")
# --seed N stands in for the file's `option seed`.
SEEDED = """option seed = SEED
model Cloud { state z[2]; param w ~ normal(0, 1); dz/dt = -w * z }
solve Cloud { t = [0, 1]; init = { z ~ normal(0, 1) }; samples = 3; solver = rk4(h = 0.1); output = "cloud.csv" }
"""
with tempfile.TemporaryDirectory() as wd:
    def cloud(seed, *flags):
        path = os.path.join(wd, "seeded.node")
        with open(path, "w") as f:
            f.write(SEEDED.replace("SEED", str(seed)))
        expect(f"--seed: file seed {seed} {' '.join(flags)}", run("run", path, "--quiet", *flags, cwd=wd), 0)
        return open(os.path.join(wd, "cloud.csv")).read()
    three, eight, three_as_eight = cloud(3), cloud(8), cloud(3, "--seed", "8")
    checks += 1
    if three_as_eight != eight or three == eight:
        print("FAIL --seed 8 does not give what option seed = 8 gives"); failures.append("--seed")
    else:
        print("ok   --seed 8 gives what option seed = 8 gives")
    for bad in ("x", "-1", "1e3", "99999999999999999999999"):
        expect(f"--seed {bad}", run("run", seed, "--seed", bad), 2, err="--seed needs a whole number")
    expect("--seed without a value", run("run", seed, "--seed"), 2, err="--seed needs a value")
# fn inlining (issue 20): sixteen levels, each calling the one below twice, are a DAG
# of a few dozen nodes (a repeated call reuses its IR); adjoint names what is shared.
DEEP = ["fn f0(x) = sin(x)"] + [f"fn f{i}(x) = f{i-1}(x) + f{i-1}(x) * 0.5" for i in range(1, 17)] + [
    "model Deep { state y = 0.1; param w = 0.3; dy/dt = f16(w * y) }",
    'solve Deep { t = [0, 1]; output = "deep.csv" }']
with tempfile.TemporaryDirectory() as wd:
    path = os.path.join(wd, "deep.node")
    with open(path, "w") as f:
        f.write("\n".join(DEEP) + "\n")
    for cmd in ("adjoint", "run", "emit-llvm"):
        p = subprocess.run([nodec, cmd, "--quiet", path] if cmd == "run" else [nodec, cmd, path],
                           capture_output=True, text=True, timeout=20, cwd=wd)
        expect(f"16 fn levels: {cmd}", p, 0, out="where s1 = " if cmd == "adjoint" else None)
        if cmd == "adjoint" and len(p.stdout) > 4000:
            print(f"FAIL 16 fn levels: adjoint printed {len(p.stdout)} bytes"); failures.append("deep size")
print(f"{checks - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
