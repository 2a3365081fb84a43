#!/usr/bin/env python3
"""`nodec params FILE.params` on files nodec saved (issue 14): trains a small model with
a network for a few steps with `save`, then checks the listing against the file as
Python reads it (its own safetensors parser below, not nodec's): the metadata, every
tensor's name, shape and dtype, the values of small tensors, and min, max, mean, std
and the non-finite count of large ones, also after NaN and infinity are patched into
the data and for an F32 file written here. Usage: params_cmd.py NODEC"""
import json, math, os, re, struct, subprocess, sys, tempfile

nodec = os.path.abspath(sys.argv[1])
failures, checks = [], 0

MODEL = """option seed = 3
model Truth { state y[2] = [1, 0]; dy/dt = [y[1], -y[0]] }
data obs = simulate(Truth, t = linspace(0, 1, 11), solver = rk4(h = 0.01))
model Fit {
  state y[2]
  param k = 0.3
  param c[2] = [0.5, -0.25]
  net f = MLP(2, 6, 2, tanh)
  dy/dt = k * f(y) + c
}
train Fit {
  data = obs
  loss = mean((y - obs.y)^2)
  solver = rk4(h = 0.05)
  optimizer = adam(lr = 1e-2)
  steps = 3
  save = "fit.params"
}
"""

def check(name, ok, detail=""):
    global checks
    checks += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    if not ok:
        failures.append(name)

def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n:]
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        fmt = {"F64": "d", "F32": "f"}[t["dtype"]]
        count = (e - b) // struct.calcsize(fmt)
        tensors[name] = (t["shape"], t["dtype"], list(struct.unpack(f"<{count}{fmt}", body[b:e])))
    return meta, tensors, header

def close(a, b, rel):
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)

def listing(path, cwd):
    p = subprocess.run([nodec, "params", os.path.basename(path)], capture_output=True, text=True, cwd=cwd, timeout=60)
    check(f"params {os.path.basename(path)}: exit 0, nothing on stderr",
          p.returncode == 0 and not p.stderr, f"exit {p.returncode}, stderr {p.stderr!r}")
    return p.stdout

def check_listing(label, path, cwd):
    meta, tensors, _ = read_safetensors(path)
    out = listing(path, cwd)
    lines = out.splitlines()
    total = sum(len(v) for _, _, v in tensors.values())
    check(f"{label}: first line counts tensors and values",
          lines and lines[0] == f"{os.path.basename(path)}: {len(tensors)} tensors, {total} values",
          repr(lines[:1]))
    for k, v in meta.items():
        check(f"{label}: metadata {k}", f"  {k} = {v}" in lines, out)
    rows = {}
    for line in lines[lines.index("tensors:") + 1:]:
        m = re.match(r"^  (\S+)\s+(\[[^\]]*\])\s+(F64|F32)  (.*)$", line)
        check(f"{label}: tensor line parses: {line!r}", m is not None)
        if m:
            rows[m.group(1)] = m.groups()[1:]
    check(f"{label}: every tensor listed once", sorted(rows) == sorted(tensors),
          f"{sorted(rows)} vs {sorted(tensors)}")
    for name, (shape, dtype, values) in tensors.items():
        if name not in rows:
            continue
        shape_text, got_dtype, rest = rows[name]
        check(f"{label}: {name} shape and dtype",
              shape_text == "[" + ", ".join(map(str, shape)) + "]" and got_dtype == dtype,
              f"{shape_text} {got_dtype}")
        if len(values) <= 8:
            got = [float(x) for x in re.findall(r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf)", rest)]
            check(f"{label}: {name} values", len(got) == len(values) and
                  all(close(a, b, 1e-8) for a, b in zip(got, values)), f"{rest} vs {values}")
            nested = rest.count("[") == (len(shape) and (1 if len(shape) == 1 else 1 + shape[0]))
            check(f"{label}: {name} nests as its shape", nested or not shape, rest)
            continue
        finite = [v for v in values if math.isfinite(v)]
        mean = sum(finite) / len(finite)
        std = math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite))
        want = {"min": min(finite), "max": max(finite), "mean": mean, "std": std}
        m = re.match(r"min (\S+)  max (\S+)  mean (\S+)  std (\S+)  non-finite (\d+)$", rest)
        check(f"{label}: {name} summary line", m is not None, rest)
        if m:
            for (key, w), g in zip(want.items(), m.groups()[:4]):
                # 6 significant digits are printed; a mean near 0 is compared to the spread
                ok = close(float(g), w, 1e-5) or abs(float(g) - w) <= 1e-5 * std
                check(f"{label}: {name} {key}", ok, f"got {g}, want {w}")
            check(f"{label}: {name} non-finite count", int(m.group(5)) == len(values) - len(finite),
                  m.group(5))
    return out

def write_like(src, dst, header, body):
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    open(dst, "wb").write(struct.pack("<Q", len(text)) + text + body)

with tempfile.TemporaryDirectory() as wd:
    with open(os.path.join(wd, "fit.node"), "w") as f:
        f.write(MODEL)
    p = subprocess.run([nodec, "run", "fit.node", "-q"], capture_output=True, text=True, cwd=wd,
                       timeout=120)
    check("the train saves fit.params", p.returncode == 0, p.stderr)
    saved = os.path.join(wd, "fit.params")
    out = check_listing("saved", saved, wd)
    check("saved: the step and the model are in the metadata",
          "  step = 3" in out and "  model = Fit" in out, out)
    check("saved: a matrix has summary statistics", re.search(r"\[6, 2\]\s+F64  min ", out), out)
    check("saved: a scalar prints its value", re.search(r"^  k\s+\[\]\s+F64  -?\d", out, re.M), out)

    # NaN and infinity inside the largest tensor: counted, not summed
    meta, tensors, header = read_safetensors(saved)
    data = open(saved, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    body = bytearray(data[8 + n:])
    big = max(tensors, key=lambda k: len(tensors[k][2]))
    b = header[big]["data_offsets"][0]
    body[b:b + 16] = struct.pack("<2d", float("nan"), float("-inf"))
    patched = os.path.join(wd, "patched.params")
    write_like(saved, patched, dict(header, __metadata__=meta), bytes(body))
    out = check_listing("patched", patched, wd)
    check("patched: two non-finite values", re.search(rf"^  {re.escape(big)} .* non-finite 2$", out, re.M),
          out)

    # F32, written elsewhere (no metadata): converted, listed with dtype F32
    vals = [1.5, -2.25, 3.0, 0.125, 7.0, -1.0, 2.0, 4.0, 9.5]
    f32 = {"a": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 36]},
           "b": {"dtype": "F32", "shape": [2, 2], "data_offsets": [36, 52]}}
    write_like(None, os.path.join(wd, "f32.params"), f32,
               struct.pack("<9f", *vals) + struct.pack("<4f", 1, 2, 3, 4))
    out = check_listing("f32", os.path.join(wd, "f32.params"), wd)
    check("f32: a 2x2 matrix nests its rows", "[[1, 2], [3, 4]]" in out, out)

print(f"{checks - len(failures)} of {checks} checks passed")
sys.exit(1 if failures else 0)
