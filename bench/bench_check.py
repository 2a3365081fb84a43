#!/usr/bin/env python3
"""How `nodec check` scales with its input (issue 20, "slow paths"): generated files of
growing size, one table per kind of input, time per size and time per unit of input.
Linear growth shows as a constant last column. Usage: bench_check.py NODEC [--quick]

  states     N scalar states, one equation each         (the scope search)
  consts     N model constants                          (the scope search)
  literal    a 200 x 200 constant of round / non-round  (the IR's hash of doubles)
  ids        a CSV time series with N trajectory ids    (the id grouping check)
  long line  a line of N bytes holding an error         (the caret line's writes)
  run        `nodec run` of N scalar states, one rk4 step  (the JIT's code for many scalars;
             target: 10 000 states compiled and solved in 5 s)
"""
import os, subprocess, sys, tempfile, time

nodec = os.path.abspath(sys.argv[1])
quick = "--quick" in sys.argv

def states(n):
    body = "".join(f"  state x{i} = 1\n  dx{i}/dt = -x{i}\n" for i in range(n))
    return "model M {\n" + body + "}\n", {}

def consts(n):
    body = "".join(f"  const c{i} = {i}.5\n" for i in range(n))
    return "model M {\n  state x = 1\n" + body + f"  dx/dt = -c{n - 1} * x\n}}\n", {}

def literal(kind):
    n = 200
    val = (lambda i, j: f"{i * n + j}.0") if kind == "round" else \
          (lambda i, j: f"{i * n + j}.123456789")
    rows = ", ".join("[" + ", ".join(val(i, j) for j in range(n)) + "]" for i in range(n))
    return f"model M {{\n  state x[{n}] = zeros({n})\n  const A[{n}, {n}] = [{rows}]\n  dx/dt = A @ x\n}}\n", {}

def ids(n):
    rows = "".join(f"{k},{t},{k + t}\n" for k in range(n) for t in (0, 1))
    return 'data obs = csv("obs.csv")\n', {"obs.csv": "id,t,x\n" + rows}

def long_line(n):
    return "model M {\n  state x = 1\n  dx/dt = -x" + " + 0" * (n // 4) + " + nope\n}\n", {}

def run_states(n):
    text, files = states(n)
    return text + 'solve M { t = [0, 0.1]; solver = rk4(h = 0.1); output = "out.csv" }\n', files

def time_check(text, files, command="check"):
    with tempfile.TemporaryDirectory() as wd:
        for name, body in files.items():
            with open(os.path.join(wd, name), "w") as f:
                f.write(body)
        path = os.path.join(wd, "bench.node")
        with open(path, "w") as f:
            f.write(text)
        size = len(text) + sum(len(b) for b in files.values())
        best = None
        for _ in range(1 if quick else 3):
            t0 = time.perf_counter()
            p = subprocess.run([nodec, command, path], capture_output=True, timeout=600, cwd=wd)
            dt = time.perf_counter() - t0
            best = dt if best is None or dt < best else best
        return size, best, p.returncode

def table(title, unit, gen, sizes, command="check"):
    print(f"\n{title}")
    print(f"  {unit:>10} {'bytes':>10} {command + ' s':>9} {'us/' + unit:>10}  exit")
    for n in sizes:
        size, dt, rc = time_check(*gen(n), command=command)
        per = dt / n * 1e6 if isinstance(n, int) else float("nan")
        print(f"  {n:>10} {size:>10} {dt:>9.3f} {per:>10.2f}  {rc}")

scale = [1, 2, 4] if quick else [1, 2, 4, 8, 25]
table("states: N scalar states", "states", states, [10000 * k for k in scale])
table("consts: N model constants", "consts", consts, [10000 * k for k in scale])
print("\nliteral: a 200 x 200 constant")
for kind in ("round", "non-round"):
    size, dt, rc = time_check(*literal(kind))
    print(f"  {kind:>10} {size:>10} {dt:>9.3f}  exit {rc}")
table("ids: a time series with N trajectory ids", "ids", ids, [10000 * k for k in scale])
table("long line: an error on a line of N bytes", "bytes", long_line, [250000 * k for k in scale])
table("run: N scalar states, JIT-compiled and solved", "states", run_states,
      [1000, 2500] if quick else [1000, 2500, 5000, 10000], command="run")
