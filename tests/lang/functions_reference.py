#!/usr/bin/python3
"""Writes tests/lang/functions.node from functions.node.in: the expected values of every
function column, computed with mpmath at 40 digits (independent of nodec and of libm).
Usage: /usr/bin/python3 tests/lang/functions_reference.py"""
import csv, os
import mpmath as mp

mp.mp.dps = 40
here = os.path.dirname(os.path.abspath(__file__))
k = mp.mpf("1.5")
y = [mp.mpf(v) for v in ["1", "2", "-1", "-3", "0.5"]]
z = [mp.mpf(v) for v in ["1000", "999", "-1000"]]

def lse(v):
    return mp.log(mp.fsum(mp.exp(e) for e in v))

def softmax(v):
    s = lse(v)
    return [mp.exp(e - s) for e in v]

def argmax(v):
    return next(i for i, e in enumerate(v) if e == max(v))

def columns(x):
    c = {}
    def put(name, vals):
        for i, v in enumerate(vals):
            c[f"{name}[{i}]"] = (v, 0 if name == "fl" or (name == "r" and i in (2, 7)) else None)
    put("fl", [mp.floor(e * k) for e in x])
    put("at", [mp.atan(e) for e in x])
    put("sh", [mp.sinh(e) for e in x])
    put("ch", [mp.cosh(e) for e in x])
    put("ash", [mp.asinh(e * k) for e in x])
    put("er", [mp.erf(e) for e in x])
    put("mn", [min(a, b) for a, b in zip(x, y)])
    put("mx", [max(a, k) for a in x])
    put("a2", [mp.atan2(a, b) for a, b in zip(x, y)])
    put("cl", [min(max(a, mp.mpf(-1)), mp.mpf("1.25")) for a in x])
    put("sm", softmax([e * k for e in x]))
    put("ls", [e - lse(x) for e in x])
    q = softmax(y)
    put("r", [max(x), min(x), argmax(x), lse(x), lse(x) - x[3],
              -mp.fsum(p * (e - lse(x)) for p, e in zip(q, x)), lse(x) - x[2], argmax(y)])
    put("st", [lse(z), lse(z) - z[2], softmax(z)[1], z[2] - lse(z)])
    return c

with open(os.path.join(here, "functions_rows.csv")) as f:
    rows = [[mp.mpf(v) for v in r] for r in list(csv.reader(f))[1:]]
lines = []
for s, x in enumerate(rows):
    row = 2 * s + 1  # sample s at t = 1
    for name, (v, tol) in columns(x).items():
        if tol is None:
            tol = mp.mpf("1e-14") * max(1, abs(v))
        lines.append(f"# expect: f.csv {row} {name} = {mp.nstr(v, 17)} ± {mp.nstr(tol, 2)}")
a = [mp.mpf(v) for v in ["0.5", "-2", "3", "3"]]
g = [mp.mpf(-2), mp.atan(2), mp.sinh(mp.mpf("0.7")), mp.cosh(mp.mpf("0.7")), mp.asinh(-3),
     mp.erf(mp.mpf("0.3")), mp.atan2(-1, -2), -1, max(a), min(a), argmax(a), 2, lse(a),
     softmax(a)[0], -mp.fsum(p * (e - lse(a)) for p, e in zip([0.25, 0.25, 0.5, 0], a))]
for i, v in enumerate(g):
    tol = 0 if i in (0, 7, 10, 11) else mp.mpf("1e-14") * max(1, abs(v))
    lines.append(f"# expect: g.csv 1 g[{i}] = {mp.nstr(v, 17)} ± {mp.nstr(tol, 2)}")
text = open(os.path.join(here, "functions.node.in")).read()
open(os.path.join(here, "functions.node"), "w").write(text + "\n".join(lines) + "\n")
