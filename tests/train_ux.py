#!/usr/bin/env python3
"""The training loop as a user meets it, end to end through `nodec run`:

  safetensors   files nodec saves pass the checks of the reference reader (written
                here with json and struct only, as `safetensors.numpy` is not
                installed): offsets contiguous from 0 and covering the data, data
                8-byte aligned, shapes from the model; files written here load.
  save paths    save writes through a symlink to its target, refuses a fifo or a
                device node before training starts, and removes a killed save's
                temporary file.
  resume        save keeps the optimizer's step count and moments and load restores
                them: N steps then M equal N + M to the last digit (every optimizer);
                parameters-only files and other optimizers' files load the
                parameters alone, with a note.
  kill          a SIGKILL in the middle of a save leaves the previous file whole
  ctrl-c        a SIGINT during training stops after the iteration, saves the
                parameters and the history, says so and exits with status 130,
                leaving no temporary file.
  allocation    NODEC_ALLOC_CHECK=1: no training iteration after the first
                changes the heap (adjoint, backprop, checkpoint; compiled model; adamw
                with a cosine schedule and clipping; lbfgs).

Usage: train_ux.py NODEC
"""
import json, math, os, signal, stat, struct, subprocess, sys, tempfile, time

DTYPES = {"F64": ("d", 8), "F32": ("f", 4)}


def read_safetensors(path):
    """(metadata, {name: (dtype, shape, values)}), checked as the reference reader does."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    assert 8 + n <= len(data), "header runs past the end"
    raw = data[8:8 + n]
    assert raw[:1] == b"{", "header must start with '{'"
    assert n % 8 == 0, "the data must start 8-byte aligned (header padded with spaces)"
    assert raw.rstrip(b" ").endswith(b"}"), "only spaces may follow the JSON"
    header = json.loads(raw.decode("utf-8"))
    meta = header.pop("__metadata__", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    body = data[8 + n:]
    tensors, end = {}, 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, e = info["data_offsets"]
        assert b == end, f"{name}: offsets not contiguous"
        code, size = DTYPES[info["dtype"]]
        count = math.prod(info["shape"])
        assert e - b == count * size, f"{name}: {e - b} bytes for {count} elements"
        tensors[name] = (info["dtype"], info["shape"],
                         list(struct.unpack(f"<{count}{code}", body[b:e])))
        end = e
    assert end == len(body), "data not covered exactly"
    return meta, tensors


def write_safetensors(path, tensors, meta=None, dtype="F64"):
    code, size = DTYPES[dtype]
    header, blob = {}, b""
    if meta:
        header["__metadata__"] = meta
    for name, (shape, values) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(blob), len(blob) + size * len(values)]}
        blob += struct.pack(f"<{len(values)}{code}", *values)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob)


def run(nodec, workdir, source, env=None, name="model.node"):
    with open(os.path.join(workdir, name), "w") as f:
        f.write(source)
    return subprocess.run([nodec, "run", name], cwd=workdir, capture_output=True, text=True,
                          timeout=120, env=env)


def last_row(path):
    lines = open(path).read().splitlines()
    head = lines[0].split(",")
    return dict(zip(head, (float(x) for x in lines[-1].split(","))))


# k, a scalar, and W, a matrix whose element [0, 1] is the one used: a file read
# in the wrong order would give another rate.
DECAY = """
model Decay {
  state x = 1
  param k = 0.1
  param W[2, 3] = 0
  dx/dt = -(k + W[0, 1]) * x
}
train Decay {
  t = [0, 1]
  final_loss = x^2
  solver = rk4(h = 0.1)
  optimizer = sgd(lr = 1e-300)  # moves nothing: 1e-300 * O(1) is below half an ulp
  steps = %(steps)s
  log_every = 1
  history = "history.csv"
  %(load)s
  save = "out.safetensors"
}
solve Decay { t = [0, 1]; solver = dopri5(rtol = 1e-10, atol = 1e-12); output = "decay.csv" }
"""


def test_safetensors(nodec, tmp):
    write_safetensors(os.path.join(tmp, "in.safetensors"),
                      {"W": ([2, 3], [5, 0.3, 5, 5, 5, 5]), "k": ([], [0.7])}, {"from": "python"})
    p = run(nodec, tmp, DECAY % {"steps": 1, "load": 'load = "in.safetensors"'})
    assert p.returncode == 0, p.stderr
    assert abs(last_row(os.path.join(tmp, "decay.csv"))["x"] - math.exp(-1.0)) < 1e-9
    meta, t = read_safetensors(os.path.join(tmp, "out.safetensors"))
    assert meta == {"format": "nodec", "model": "Decay", "step": "1", "optimizer": "sgd"}, meta
    assert t["k"] == ("F64", [], [0.7]), t["k"]
    assert t["W"] == ("F64", [2, 3], [5, 0.3, 5, 5, 5, 5]), t["W"]
    # F32 files load too (converted exactly)
    write_safetensors(os.path.join(tmp, "in.safetensors"),
                      {"k": ([], [0.5]), "W": ([2, 3], [1, 0.25, 1, 1, 1, 1])}, dtype="F32")
    p = run(nodec, tmp, DECAY % {"steps": 1, "load": 'load = "in.safetensors"'})
    assert p.returncode == 0, p.stderr
    assert abs(last_row(os.path.join(tmp, "decay.csv"))["x"] - math.exp(-0.75)) < 1e-9
    # a wrong shape is a located error naming the tensor
    write_safetensors(os.path.join(tmp, "in.safetensors"),
                      {"k": ([], [0.5]), "W": ([3, 2], [1] * 6)})
    p = run(nodec, tmp, DECAY % {"steps": 1, "load": 'load = "in.safetensors"'})
    assert p.returncode == 1, p.stderr
    want = ("model.node:16:10: error: cannot load parameters: in.safetensors: tensor 'W' has "
            "shape [3, 2], the model's parameter has shape [2, 3]")
    assert p.stderr.startswith(want), p.stderr


def test_save_paths(nodec, tmp):
    """save writes through a symlink, refuses what is not a regular file before
    training starts, and removes the temporary file a killed save left."""
    src = DECAY % {"steps": 1, "load": ""}
    store, out = os.path.join(tmp, "store"), os.path.join(tmp, "out.safetensors")
    real = os.path.join(store, "real.safetensors")
    os.mkdir(store)
    os.symlink("store/real.safetensors", out)  # dangling until the first save
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{real}.tmp-{dead.pid}-abcdef"
    live = f"{real}.tmp-{os.getpid()}-ghijkl"  # a save in progress elsewhere: kept
    for path in (stale, live):
        open(path, "wb").close()
    for _ in range(2):  # creating the target, then replacing it
        p = run(nodec, tmp, src)
        assert p.returncode == 0, p.stderr
        assert os.path.islink(out) and os.readlink(out) == "store/real.safetensors"
        assert os.path.isfile(real) and not os.path.islink(real)
        assert read_safetensors(out)[0]["model"] == "Decay"
    assert sorted(os.listdir(store)) == sorted(["real.safetensors", os.path.basename(live)]), \
        os.listdir(store)
    assert not [f for f in os.listdir(tmp) if ".tmp-" in f], os.listdir(tmp)
    os.unlink(live)
    # not a regular file: refused at the value of save, before any directive runs
    specials = [("fifo", lambda path: os.mkfifo(path), stat.S_ISFIFO)]
    if os.geteuid() == 0:  # a copy of /dev/full's node, as root found it replaced
        specials.append(("device", lambda path: os.mknod(path, stat.S_IFCHR | 0o666,
                                                        os.makedev(1, 7)), stat.S_ISCHR))
    for what, make, is_kind in specials:
        for path in (out, os.path.join(tmp, "history.csv"), os.path.join(tmp, "decay.csv")):
            if os.path.lexists(path):
                os.unlink(path)
        make(out)
        p = run(nodec, tmp, src)
        assert p.returncode == 1, (what, p.stderr)
        want = ("model.node:17:10: error: cannot write 'out.safetensors': it is not a regular "
                "file (a save replaces the file at its path)")
        assert p.stderr.startswith(want), (what, p.stderr)
        assert is_kind(os.lstat(out).st_mode), what
        assert not os.path.exists(os.path.join(tmp, "history.csv")), "training started"
        assert not os.path.exists(os.path.join(tmp, "decay.csv")), "the solve ran"
        assert not [f for f in os.listdir(tmp) if ".tmp-" in f], os.listdir(tmp)
    os.unlink(out)
    os.symlink("store", out)  # a link to a folder
    p = run(nodec, tmp, src)
    assert p.returncode == 1 and "cannot write 'out.safetensors': it is a folder" in p.stderr, \
        p.stderr


def test_ctrl_c(nodec, tmp):
    with open(os.path.join(tmp, "model.node"), "w") as f:
        f.write(DECAY % {"steps": 100000000, "load": ""})
    proc = subprocess.Popen([nodec, "run", "model.node"], cwd=tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    hist = os.path.join(tmp, "history.csv")
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(hist) and open(hist).read().count("\n") >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err[-500:])
    note = [l for l in err.splitlines() if "interrupted at step" in l]
    assert len(note) == 1, err[-500:]
    step = int(note[0].split("interrupted at step ")[1].split(";")[0])
    assert "parameters saved to 'out.safetensors'" in note[0], note
    meta, t = read_safetensors(os.path.join(tmp, "out.safetensors"))
    assert meta["step"] == str(step) and t["k"] == ("F64", [], [0.1]), (meta, t["k"])
    rows = open(hist).read().splitlines()
    assert rows[0] == "step,loss,nfe_forward,nfe_backward,seconds", rows[0]
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, step + 1))
    assert all(len(r.split(",")) == 5 for r in rows[1:])
    assert not [f for f in os.listdir(tmp) if ".tmp-" in f], os.listdir(tmp)
    assert not os.path.exists(os.path.join(tmp, "decay.csv")), "the program went on"


# An 18 MB parameter file: its save (write, fsync, rename) takes long enough to be
# killed in the middle.
BIG = """
model Big {
  state x = 1
  param k = 0.5
  param W[1500, 1500] = 0.001
  dx/dt = -(k + 0 * sum(W)) * x
}
train Big {
  t = [0, 1]
  final_loss = x^2
  solver = rk4(h = 0.5)
  optimizer = sgd(lr = %s)
  steps = 1
  save = "big.safetensors"
}
"""


def test_kill_during_save(nodec, tmp):
    """SIGKILL while the parameters are written leaves the previous file whole; the
    next save removes the dead process's temporary file."""
    target = os.path.join(tmp, "big.safetensors")
    p = run(nodec, tmp, BIG % "0.1")
    assert p.returncode == 0, p.stderr
    before = open(target, "rb").read()
    with open(os.path.join(tmp, "model.node"), "w") as f:
        f.write(BIG % "0.2")
    killed = False
    for attempt in range(5):  # the save is a fraction of the run: catch it in the act
        proc = subprocess.Popen([nodec, "run", "--quiet", "model.node"], cwd=tmp,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            if any(".tmp-" in f for f in os.listdir(tmp)):
                proc.kill()
                killed = True
                break
            time.sleep(0.0005)
        proc.wait(timeout=60)
        if killed:
            break
        with open(target, "wb") as f:  # it finished first: put the old file back, again
            f.write(before)
    assert killed, "never caught a save in progress"
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    assert open(target, "rb").read() == before, "the previous parameters were damaged"
    meta, t = read_safetensors(target)
    assert t["W"][1] == [1500, 1500], t["W"][1]
    p = run(nodec, tmp, BIG % "0.2")
    assert p.returncode == 0, p.stderr
    assert open(target, "rb").read() != before, "the next save did not replace the file"
    assert not [f for f in os.listdir(tmp) if ".tmp-" in f], os.listdir(tmp)


SPIRAL = """
option seed = 0
model TrueSpiral {
  state y[2] = [2, 0]
  const A[2, 2] = [[-0.1, 2.0], [-2.0, -0.1]]
  dy/dt = transpose(A) @ y^3
}
data obs = simulate(TrueSpiral, t = linspace(0, 25, 1000), solver = dopri5(rtol = 1e-7, atol = 1e-9))
model Spiral {
  state y[2]
  net f = MLP(2, 50, 2, tanh)
  dy/dt = f(y^3)
}
train Spiral {
  data = obs
  loss = mean(abs(y - obs.y))
  batch = windows(length = 10, count = 20)
  solver = %s
  gradient = %s
  optimizer = rmsprop(lr = 1e-3)
  steps = 30
}
"""


RESUME = """
model Decay {
  state x = 1
  param k = 0.1
  param W[2] = [0.2, -0.3]
  dx/dt = -(k + W[0] * W[1]) * x + W[0]
}
train Decay {
  t = [0, 1]
  final_loss = (x - 0.3)^2
  solver = rk4(h = 0.1)
  optimizer = %(opt)s
  steps = %(steps)s
  log_every = 1
  history = "%(hist)s"
  %(load)s
  save = "%(save)s"
}
"""


def resume_run(nodec, tmp, opt, steps, save, hist, load=None):
    src = RESUME % {"opt": opt, "steps": steps, "save": save, "hist": hist,
                    "load": f'load = "{load}"' if load else ""}
    p = run(nodec, tmp, src)
    assert p.returncode == 0, p.stderr
    return p.stderr, read_safetensors(os.path.join(tmp, save))


def losses(tmp, hist):
    return [line.split(",")[1] for line in open(os.path.join(tmp, hist)).read().splitlines()[1:]]


def test_resume(nodec, tmp):
    """save keeps the optimizer's step count and moments, load restores them: 4 steps
    then 6 more give the 10-step run's parameters and losses to the last digit, for
    every optimizer; without the moments (a parameters-only file) Adam ends elsewhere."""
    for opt, kept in [("adam(lr = 0.05)", "mv"), ("adamw(lr = 0.05)", "mv"),
                      ("rmsprop(lr = 0.01)", "v"), ("sgd(lr = 0.5, momentum = 0.9)", "m"),
                      ("sgd(lr = 0.5)", "")]:
        _, (meta_a, a) = resume_run(nodec, tmp, opt, 10, "a.params", "a.csv")
        _, (meta_b, b) = resume_run(nodec, tmp, opt, 4, "b.params", "b.csv")
        err, (meta_c, c) = resume_run(nodec, tmp, opt, 6, "c.params", "c.csv", load="b.params")
        name = opt.split("(")[0] if "momentum" not in opt else "momentum"
        assert meta_b["optimizer"] == name and meta_b["step"] == "4", meta_b
        assert meta_c["step"] == "10" and meta_a["step"] == "10", (meta_a, meta_c)
        assert f"resuming {name} at step 4 from 'b.params'" in err, err
        want = {"k", "W"} | {f"__optim.{m}.{p}" for m in kept for p in ("k", "W")}
        assert set(b) == want, (opt, sorted(b))
        assert a == c, (opt, a, c)  # every value, moments included, bit for bit
        assert losses(tmp, "a.csv")[4:] == losses(tmp, "c.csv"), opt
    # the control: the same 6 steps from the parameters alone start Adam afresh
    resume_run(nodec, tmp, "adam(lr = 0.05)", 10, "a.params", "a.csv")
    _, (_, b) = resume_run(nodec, tmp, "adam(lr = 0.05)", 4, "b.params", "b.csv")
    write_safetensors(os.path.join(tmp, "bare.params"),
                      {n: (v[1], v[2]) for n, v in b.items() if not n.startswith("__optim.")},
                      {"format": "nodec", "step": "4"})
    err, (_, c) = resume_run(nodec, tmp, "adam(lr = 0.05)", 6, "c.params", "c.csv",
                             load="bare.params")
    assert "'bare.params' holds no optimizer state: parameters loaded, adam starts afresh" in err
    a = read_safetensors(os.path.join(tmp, "a.params"))[1]
    assert abs(c["k"][2][0] - a["k"][2][0]) > 1e-6, "without moments Adam should diverge"
    # another optimizer reads the parameters and ignores the moments
    err, (meta, c) = resume_run(nodec, tmp, "sgd(lr = 0.5)", 1, "c.params", "c.csv",
                                load="b.params")
    assert "'b.params' holds adam's state, not sgd's: parameters loaded, sgd starts afresh" in err
    assert meta["step"] == "1" and set(c) == {"k", "W"}, (meta, sorted(c))
    # a file claiming adam's state without its moments is an error naming the tensor
    write_safetensors(os.path.join(tmp, "broken.params"),
                      {n: (v[1], v[2]) for n, v in b.items() if n != "__optim.v.W"},
                      {"optimizer": "adam", "step": "4"})
    p = run(nodec, tmp, RESUME % {"opt": "adam(lr = 0.05)", "steps": 1, "save": "c.params",
                                  "hist": "c.csv", "load": 'load = "broken.params"'})
    assert p.returncode == 1, p.stderr
    assert p.stderr.startswith("model.node:16:10: error: cannot load parameters: broken.params: "
                               "tensor '__optim.v.W' is missing"), p.stderr


def test_allocation(nodec, tmp):
    env = dict(os.environ, NODEC_ALLOC_CHECK="1")
    for solver, grad in [("dopri5(rtol = 1e-7, atol = 1e-9)", "adjoint"),
                         ("rk4(h = 0.05)", "backprop"), ("rk4(h = 0.05)", "checkpoint"),
                         ("dopri5(rtol = 1e-7, atol = 1e-9)", "backprop")]:
        p = run(nodec, tmp, SPIRAL % (solver, grad), env=env)
        assert p.returncode == 0, p.stderr
        want = "train Spiral: allocation check: the heap changed in 0 of 29 iterations"
        assert want in p.stderr, (grad, solver, p.stderr[-400:])
    # the training controls: a schedule, clipping and adamw allocate nothing either
    src = (SPIRAL % ("dopri5(rtol = 1e-7, atol = 1e-9)", "adjoint")).replace(
        "optimizer = rmsprop(lr = 1e-3)",
        "optimizer = adamw(lr = 1e-3)\n  schedule = cosine(warmup = 5)\n  clip = 0.01")
    assert "clip = 0.01" in src
    p = run(nodec, tmp, src, env=env)
    assert p.returncode == 0, p.stderr
    assert "allocation check: the heap changed in 0 of 29 iterations" in p.stderr, p.stderr[-400:]
    # lbfgs's line search solves the batch again, into buffers of its own
    p = run(nodec, tmp, RESUME % {"opt": "lbfgs(lr = 1)", "steps": 10, "save": "l.params",
                                  "hist": "l.csv", "load": ""}, env=env)
    assert p.returncode == 0, p.stderr
    assert "allocation check: the heap changed in 0 of 9 iterations" in p.stderr, p.stderr[-400:]


def main():
    nodec = os.path.abspath(sys.argv[1])
    failed = 0
    for test in (test_safetensors, test_save_paths, test_ctrl_c, test_kill_during_save,
                 test_resume, test_allocation):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                test(nodec, tmp)
                print(f"ok    {test.__name__}")
            except Exception as e:  # report every test, then fail
                failed += 1
                print(f"FAIL  {test.__name__}: {e!r}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
