#!/usr/bin/env python3
"""The compile cache (docs/codegen.md, "The compile cache"), through `nodec run`:

- a first run compiles every module and files one entry each in $NODEC_CACHE_DIR;
  a second run of the unchanged file takes them all from the cache (`--stats`:
  "N from the cache"), writes byte-identical outputs (a solve's CSV, a train's
  parameter file and history), and its JIT time is below 5 ms (release builds: a
  sanitizer build, --sanitized, only checks it is well below the first run's);
- a changed equation compiles anew; a changed parameter value or seed (not in the
  code) does not;
- an entry that is truncated, overwritten with garbage or has one byte of its
  object code flipped is a miss: the run compiles, gives the same outputs, and
  files a good entry again;
- NODEC_CACHE=0 and --no-cache compile everything and file nothing; a cache folder
  that cannot be made costs nothing but the cache (no message, same output);
- the default folder is $XDG_CACHE_HOME/nodec, else $HOME/.cache/nodec;
- two runs at once into an empty folder both succeed and agree; modules compiled
  on 1, 2 or 3 threads (NODEC_THREADS) give the same outputs, listed in one order;
- a folder past 2000 entries loses the least recently used down to 1500 on the
  next store, keeping the entry just filed.

Usage: compile_cache.py NODEC [--sanitized]"""
import os, re, subprocess, sys, tempfile

NODEC = os.path.abspath(sys.argv[1])
SANITIZED = "--sanitized" in sys.argv[2:]
failures = []

MODEL = """option seed = 3
model Decay {
  state x[2] = [1, 0.5]
  net f = MLP(2, 8, 2, tanh)
  param k = 0.5
  dx/dt = f(x) - k * EQ
}
data obs = simulate(Decay, t = linspace(0, 1, 11), solver = rk4(h = 0.05))
train Decay {
  data = obs
  loss = sum((x - obs.x)^2)
  solver = rk4(h = 0.1)
  optimizer = adam(lr = 1e-2)
  steps = 5
  save = "decay.params"
  history = "history.csv"
}
solve Decay { t = linspace(0, 1, 5); solver = rk4(h = 0.05); output = "fit.csv" }
"""
OUTPUTS = ["fit.csv", "decay.params", "history.csv"]


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def nodec(wd, text, *args, env=None, name="m.node"):
    with open(os.path.join(wd, name), "w") as f:
        f.write(text)
    full = dict(os.environ)
    full.pop("NODEC_CACHE", None)
    full.update(env or {})
    for k in [k for k, v in full.items() if v is None]:  # None: unset
        del full[k]
    p = subprocess.run([NODEC, "run", name, "--quiet", "--stats", *args], cwd=wd, env=full,
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        failures.append(f"nodec failed ({p.returncode}): {p.stderr}")
        print("FAIL: nodec", p.stderr)
    return p


def compile_line(p):
    """(modules, cached, jit ms) from --stats' compile line."""
    for line in re.findall(r"  JIT .*", p.stderr):
        if not re.fullmatch(r"  JIT (train|solve|encoder of) \w+: [0-9.]+ ms "
                            r"\((cached|O2 [0-9.]+ ms, code generation [0-9.]+ ms)\)", line):
            failures.append("a malformed JIT line: " + line)
    m = re.search(r"compile: front end [0-9.]+ ms, JIT ([0-9.]+) ms \((\d+) modules?"
                  r"(?:, (\d+) from the cache)?\)", p.stderr)
    if not m:
        failures.append("no compile line in: " + p.stderr)
        return 0, 0, 0.0
    return int(m.group(2)), int(m.group(3) or 0), float(m.group(1))


def outputs(wd):
    """The output files' bytes; the history's without its seconds column."""
    out = {}
    for name in OUTPUTS:
        with open(os.path.join(wd, name), "rb") as f:
            out[name] = f.read()
    out["history.csv"] = b"\n".join(line.rsplit(b",", 1)[0]
                                    for line in out["history.csv"].splitlines())
    return out


def entries(cache):
    if not os.path.isdir(cache):
        return []
    return sorted(n for n in os.listdir(cache) if re.fullmatch(r"[0-9a-f]{16}\.o", n))


def model(eq="x"):
    return MODEL.replace("EQ", eq)


def test_hit_and_miss(root):
    wd, cache = os.path.join(root, "hit"), os.path.join(root, "hit-cache")
    os.makedirs(wd)
    env = {"NODEC_CACHE_DIR": cache}
    first = compile_line(nodec(wd, model(), env=env))
    ref = outputs(wd)
    check(first[0] >= 2 and first[1] == 0, f"first run compiles all its modules: {first}")
    check(len(entries(cache)) == first[0], f"one entry per module: {entries(cache)}")
    second = compile_line(nodec(wd, model(), env=env))
    check(second[1] == second[0] == first[0], f"second run from the cache: {second}")
    check(outputs(wd) == ref, "the cached kernels give byte-identical outputs")
    # the fastest of three cached runs (the machine is shared)
    fastest = min([second[2]] + [compile_line(nodec(wd, model(), env=env))[2] for _ in range(2)])
    # Below 5 ms on a quiet machine (issue 18); a loaded one (ctest -j, other jobs)
    # stretches both runs alike, so the ratio to the first run is the fallback
    # (a hit skips LLVM's optimiser and code generator: 50-100x less work).
    if SANITIZED:
        check(fastest < first[2] / 3, f"cached JIT {fastest} ms well below {first[2]} ms")
    elif fastest >= 5.0:
        print(f"note: cached JIT {fastest} ms (first run {first[2]} ms): a loaded machine?")
        check(fastest < first[2] / 20, f"cached JIT {fastest} ms below 5 ms, or 1/20 of "
              f"the first run's {first[2]} ms")
    # parameter values and seeds are data, not code
    same = compile_line(nodec(wd, model().replace("param k = 0.5", "param k = 0.7"), "--seed", "9",
                              env=env))
    check(same[1] == same[0], f"a new parameter value and seed reuse the code: {same}")
    changed = compile_line(nodec(wd, model("x * x"), env=env))
    check(changed[1] < changed[0], f"a changed equation compiles anew: {changed}")
    check(len(entries(cache)) > first[0], "the changed models are filed beside the first")
    return wd, cache, ref


def test_damaged_entries(wd, cache, ref):
    env = {"NODEC_CACHE_DIR": cache}
    nodec(wd, model(), env=env)  # the unchanged file's entries are the newest

    def damage(how):
        for name in entries(cache):
            path = os.path.join(cache, name)
            data = bytearray(open(path, "rb").read())
            if how == "truncate":
                data = data[: len(data) // 2]
            elif how == "garbage":
                data = bytearray(b"\x7fELF" + b"\xa5" * (len(data) - 4))
            else:  # one byte of the object code, at its end
                data[-7] ^= 0x40
            open(path, "wb").write(bytes(data))

    for how in ["truncate", "garbage", "flip"]:
        damage(how)
        p = compile_line(nodec(wd, model(), env=env))
        check(p[1] == 0, f"{how}d entries are misses: {p}")
        check(outputs(wd) == ref, f"after {how}d entries, the same outputs")
        again = compile_line(nodec(wd, model(), env=env))
        check(again[1] == again[0], f"after {how}, the entries are filed again: {again}")


def test_off(root):
    wd = os.path.join(root, "off")
    os.makedirs(wd)
    for i, (env, args) in enumerate([({"NODEC_CACHE": "0"}, ()), ({}, ("--no-cache",))]):
        cache = os.path.join(root, f"off-cache-{i}")
        env = dict(env, NODEC_CACHE_DIR=cache)
        for _ in range(2):
            p = compile_line(nodec(wd, model(), *args, env=env))
            check(p[1] == 0, f"cache off ({env}, {args}): nothing from the cache: {p}")
        check(entries(cache) == [], f"cache off ({env}, {args}): nothing filed")
    # a folder that cannot be made: under a regular file
    blocker = os.path.join(root, "a-file")
    open(blocker, "w").write("not a folder\n")
    p = nodec(wd, model(), env={"NODEC_CACHE_DIR": os.path.join(blocker, "cache")})
    check(all(re.match(r"compile: |  JIT |  stats: ", line) for line in p.stderr.splitlines()),
          f"an unusable cache folder says nothing: {p.stderr!r}")
    check(compile_line(p)[1] == 0, "an unusable cache folder: everything compiled")


def test_default_folders(root):
    wd = os.path.join(root, "default")
    os.makedirs(wd)
    xdg, home = os.path.join(root, "xdg"), os.path.join(root, "home")
    nodec(wd, model(), env={"NODEC_CACHE_DIR": "", "XDG_CACHE_HOME": xdg, "HOME": home})
    check(entries(os.path.join(xdg, "nodec")) != [], "$XDG_CACHE_HOME/nodec is the default")
    nodec(wd, model(), env={"HOME": home, "XDG_CACHE_HOME": None, "NODEC_CACHE_DIR": None})
    check(entries(os.path.join(home, ".cache", "nodec")) != [], "then $HOME/.cache/nodec")


def test_concurrent(root):
    cache = os.path.join(root, "together-cache")
    procs, dirs = [], []
    for i in range(2):
        wd = os.path.join(root, f"together-{i}")
        os.makedirs(wd)
        with open(os.path.join(wd, "m.node"), "w") as f:
            f.write(model())
        env = dict(os.environ, NODEC_CACHE_DIR=cache)
        procs.append(subprocess.Popen([NODEC, "run", "m.node", "--quiet"], cwd=wd, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        dirs.append(wd)
    codes = [p.wait(timeout=300) for p in procs]
    check(codes == [0, 0], f"two runs at once into one folder: {codes}")
    check(outputs(dirs[0]) == outputs(dirs[1]), "two runs at once agree")
    check(not [n for n in os.listdir(cache) if not re.fullmatch(r"[0-9a-f]{16}\.o", n)],
          f"no temporary files left: {os.listdir(cache)}")


def test_threads(root):
    """Modules compiled side by side (NODEC_THREADS) give the same kernels and the
    same --stats lines in the same order as one at a time."""
    outs, lines = [], []
    for threads in ["1", "2", "3"]:
        wd = os.path.join(root, f"threads-{threads}")
        os.makedirs(wd)
        p = nodec(wd, model(), "--no-cache", env={"NODEC_THREADS": threads})
        outs.append(outputs(wd))
        lines.append([re.sub(r"[0-9.]+ ms", "", l) for l in p.stderr.splitlines()
                      if l.startswith("  JIT ")])
    check(outs[0] == outs[1] == outs[2], "NODEC_THREADS=1, 2, 3: the same outputs")
    check(lines[0] == lines[1] == lines[2] and len(lines[0]) >= 2,
          f"NODEC_THREADS=1, 2, 3: the modules in the same order: {lines}")


def test_eviction(root):
    wd, cache = os.path.join(root, "evict"), os.path.join(root, "evict-cache")
    os.makedirs(wd)
    os.makedirs(cache)
    for i in range(2001):  # stale entries, the oldest first
        path = os.path.join(cache, f"{i:016x}.o")
        open(path, "wb").write(b"stale")
        os.utime(path, (1e9 + i, 1e9 + i))
    p = compile_line(nodec(wd, model(), env={"NODEC_CACHE_DIR": cache}))
    left = entries(cache)
    # the first store finds 2002 and keeps 1500; later stores of the run add theirs
    check(1500 <= len(left) < 1500 + p[0], f"evicted down to 1500 entries: {len(left)}")
    check(f"{0:016x}.o" not in left and f"{2000:016x}.o" in left, "the oldest went first")
    again = compile_line(nodec(wd, model(), env={"NODEC_CACHE_DIR": cache}))
    check(again[1] == again[0] == p[0], f"the entries just filed survive eviction: {again}")


with tempfile.TemporaryDirectory() as root:
    wd, cache, ref = test_hit_and_miss(root)
    test_damaged_entries(wd, cache, ref)
    test_off(root)
    test_default_folders(root)
    test_concurrent(root)
    test_threads(root)
    test_eviction(root)

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("compile cache: all checks passed")
