#!/usr/bin/env python3
"""Plots rendered headless and their pictures checked (docs/plot.md): each kind of plot
(time series, phase portrait, observations as points over a fit, training history on a log
scale) is drawn to PNG by `nodec run`, the PNG is decoded here (zlib and struct: the cairo
device writes 8-bit RGB or RGBA, non-interlaced) and checked for its size and for ink of the
curve's colour where the curve must be, and none where it must not; one plot goes to SVG and
its path is read back. A nodec built without PLplot (`nodec --version` says so) is checked
for the clear error at a plot instead, and the rest is skipped with a message.

Usage: plot.py NODEC"""
import math, os, re, struct, subprocess, sys, tempfile, zlib

NODEC = os.path.abspath(sys.argv[1])
FIRST, SECOND = (0, 114, 178), (213, 94, 0)  # the first two curve colours of tools/plot.c
failures = []

def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    if not ok:
        failures.append(name)

def run(folder, source, *args):
    path = os.path.join(folder, "plot.node")
    with open(path, "w") as f:
        f.write(source)
    return subprocess.run([NODEC, *args, "plot.node"], cwd=folder, capture_output=True,
                          text=True, timeout=120)

def read_png(path):
    """(width, height, pixel(x, y) -> (r, g, b)) of an 8-bit non-interlaced RGB(A) PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, idat, head = 8, b"", None
    while at < len(data):
        n, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + n]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + n
    w, h, depth, color, _, _, interlace = head
    assert depth == 8 and color in (2, 6) and interlace == 0, f"unexpected PNG format {head}"
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1: line[i] = (line[i] + a) & 255
            elif kind == 2: line[i] = (line[i] + b) & 255
            elif kind == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, lambda x, y: tuple(rows[y][x * bpp:x * bpp + 3])

def ink(png, colour, tol=60):
    """The pixels of roughly one colour (anti-aliasing blends it with white)."""
    w, h, px = png
    out = []
    for y in range(h):
        for x in range(w):
            p = px(x, y)
            if sum(abs(p[i] - colour[i]) for i in range(3)) <= tol:
                out.append((x, y))
    return out

def bbox(points):
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)

def blobs(points):
    """Connected groups of pixels (8-neighbourhood)."""
    left, n = set(points), 0
    while left:
        n += 1
        todo = [left.pop()]
        while todo:
            x, y = todo.pop()
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    q = (x + dx, y + dy)
                    if q in left:
                        left.remove(q)
                        todo.append(q)
    return n

CIRCLE = """
model Circle {
  state x = 1
  state y = 0
  dx/dt = -y
  dy/dt = x
}
solve Circle { t = linspace(0, 2 * pi, 400); solver = dopri5(rtol = 1e-10, atol = 1e-12); output = "circle.csv" }
"""

def test_phase(folder):
    r = run(folder, CIRCLE + 'plot "phase.png" { line = { from = "circle.csv", x = "x", y = "y" }\n'
                             '  size = [500, 500]; title = "phase portrait" }\n', "run", "--quiet")
    check("phase: nodec run", r.returncode == 0, r.stderr)
    if r.returncode:
        return
    png = read_png(os.path.join(folder, "phase.png"))
    check("phase: PNG is 500 x 500", png[:2] == (500, 500), f"{png[:2]}")
    curve = ink(png, FIRST)
    check("phase: the curve is drawn", len(curve) > 500, f"{len(curve)} pixels")
    if len(curve) <= 500:
        return
    x0, y0, x1, y1 = bbox(curve)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    radii = [math.hypot((x - cx) / rx, (y - cy) / ry) for x, y in curve]
    check("phase: every curve pixel lies on the circle", min(radii) > 0.93 and max(radii) < 1.07,
          f"normalised radii from {min(radii):.3f} to {max(radii):.3f}")
    angles = {int((math.degrees(math.atan2(y - cy, x - cx)) + 360) % 360) // 30 for x, y in curve}
    check("phase: ink all the way round", len(angles) == 12, f"sectors {sorted(angles)}")
    w, h, px = png
    centre = [px(int(cx) + dx, int(cy) + dy) for dx in range(-20, 21) for dy in range(-20, 21)]
    check("phase: no ink at the centre", all(p == (255, 255, 255) for p in centre),
          f"{sum(p != (255, 255, 255) for p in centre)} pixels")

def test_series(folder):
    r = run(folder, CIRCLE + 'plot "series.png" { line = "circle.csv"; legend = none }\n', "run", "--quiet")
    check("series: nodec run", r.returncode == 0, r.stderr)
    if r.returncode:
        return
    png = read_png(os.path.join(folder, "series.png"))
    check("series: PNG is 800 x 600 (the default size)", png[:2] == (800, 600), f"{png[:2]}")
    cos, sin = ink(png, FIRST), ink(png, SECOND)
    check("series: both columns drawn against t", len(cos) > 500 and len(sin) > 500,
          f"{len(cos)} and {len(sin)} pixels")
    if len(cos) <= 500 or len(sin) <= 500:
        return
    x0, y0, x1, y1 = bbox(cos + sin)
    def rows_at(points, frac):
        col = round(x0 + frac * (x1 - x0))
        ys = [y for x, y in points if abs(x - col) <= 1]
        return (sum(ys) / len(ys) - y0) / (y1 - y0) if ys else None  # 0 top, 1 bottom
    for frac, want_cos, want_sin in ((0.0, 0, 0.5), (0.25, 0.5, 0), (0.5, 1, 0.5), (0.75, 0.5, 1)):
        got = rows_at(cos, frac), rows_at(sin, frac)
        ok = None not in got and abs(got[0] - want_cos) < 0.06 and abs(got[1] - want_sin) < 0.06
        check(f"series: x = cos t and y = sin t at t = {frac:g} of the span", ok,
              f"got heights {got}, want {(want_cos, want_sin)}")

def test_fit(folder):
    with open(os.path.join(folder, "obs.csv"), "w") as f:
        f.write("t,x\n" + "".join(f"{i},{i + (0.4 if i % 2 else -0.4)}\n" for i in range(8)))
    source = ('data obs = csv("obs.csv")\nmodel Ramp { state x = 0; dx/dt = 1 }\n'
              'solve Ramp { t = linspace(0, 7, 50); output = "ramp.csv" }\n'
              'plot "fit.png" { points = obs; line = "ramp.csv"; legend = none; size = [640, 480] }\n')
    r = run(folder, source, "run", "--quiet")
    check("fit: nodec run", r.returncode == 0, r.stderr)
    if r.returncode:
        return
    png = read_png(os.path.join(folder, "fit.png"))
    check("fit: PNG is 640 x 480", png[:2] == (640, 480), f"{png[:2]}")
    dots, line = ink(png, FIRST, 90), ink(png, SECOND)
    check("fit: eight observations as eight dots", blobs(dots) == 8, f"{blobs(dots)} blobs")
    check("fit: the fitted line is drawn", len(line) > 300, f"{len(line)} pixels")
    if len(line) <= 300:
        return
    x0, y0, x1, y1 = bbox(line)  # x = t rises from bottom left to top right
    left = [y for x, y in line if x <= x0 + 3]
    right = [y for x, y in line if x >= x1 - 3]
    check("fit: the line rises", min(left) > max(right), f"left rows {left[:3]}, right rows {right[:3]}")

HISTORY = """
model Reach { state x = 0; param p = 0; dx/dt = p }
train Reach {
  t = [0, 1]
  final_loss = (x - 1)^2            # (p - 1)^2: gradient descent shrinks it by 0.64 a step
  solver = rk4(h = 0.5)
  optimizer = sgd(lr = 0.1)
  steps = 30
  log_every = 1
  history = "history.csv"
}
plot "loss.png" { line = "history.csv"; title = "loss" }
"""

def test_history(folder):
    r = run(folder, HISTORY, "run", "--quiet")
    check("history: nodec run", r.returncode == 0, r.stderr)
    if r.returncode:
        return
    png = read_png(os.path.join(folder, "loss.png"))
    curve = ink(png, FIRST)
    check("history: the loss is drawn", len(curve) > 300, f"{len(curve)} pixels")
    if len(curve) <= 300:
        return
    # a geometric decay is a straight line on the log axis the history gets by default
    cols = {}
    for x, y in curve:
        cols.setdefault(x, []).append(y)
    xs = sorted(cols)
    pts = [(x, sum(cols[x]) / len(cols[x])) for x in xs[5:-5]]
    n = len(pts)
    mx, my = sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pts)
    sxx, syy = sum((p[0] - mx) ** 2 for p in pts), sum((p[1] - my) ** 2 for p in pts)
    corr = sxy / math.sqrt(sxx * syy)
    check("history: straight on the log scale (falling)", corr > 0.999, f"correlation {corr:.5f}")
    r = run(folder, HISTORY.replace('title = "loss"', 'yscale = linear'), "run", "--quiet")
    png = read_png(os.path.join(folder, "loss.png"))
    curve = ink(png, FIRST)
    cols = {}
    for x, y in curve:
        cols.setdefault(x, []).append(y)
    xs = sorted(cols)
    mid = xs[len(xs) // 2]
    x0, y0, x1, y1 = bbox(curve)
    frac = (max(cols[mid]) - y0) / (y1 - y0)  # halfway along, a linear axis is nearly at the bottom
    check("history: yscale = linear shows the decay as a curve", frac > 0.9, f"height {frac:.3f}")

def test_svg(folder):
    r = run(folder, CIRCLE + 'plot "phase.svg" { line = { from = "circle.csv", x = "x", y = "y" }\n'
                             '  size = [300, 200] }\n', "run", "--quiet")
    check("svg: nodec run", r.returncode == 0, r.stderr)
    if r.returncode:
        return
    text = open(os.path.join(folder, "phase.svg")).read()
    check("svg: an SVG document of the given size", text.lstrip().startswith("<?xml") and
          'width="300pt" height="200pt"' in text, text[:200])
    paths = re.findall(r'<path style="[^"]*stroke:rgb\(0%,44\.7\d*%,69\.8\d*%\)[^"]*" d="([^"]*)"', text)
    check("svg: the curve is drawn in its colour", len(paths) >= 1, "no path")
    if not paths:
        return
    nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", " ".join(paths))]
    pts = list(zip(nums[0::2], nums[1::2]))
    x0, y0, x1, y1 = bbox(pts)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    radii = [math.hypot((x - cx) / rx, (y - cy) / ry) for x, y in pts]
    check("svg: the path is the circle", len(pts) > 100 and min(radii) > 0.99 and max(radii) < 1.01,
          f"{len(pts)} points, radii {min(radii):.3f}..{max(radii):.3f}")

def test_without_plplot(folder):
    r = run(folder, CIRCLE + 'plot "phase.png" { line = "circle.csv" }\n', "check")
    check("without PLplot: nodec check accepts a plot", r.returncode == 0, r.stderr)
    r = run(folder, CIRCLE + 'plot "phase.png" { line = "circle.csv" }\n', "run", "--quiet")
    want = ("plot.node:9:1: error: this nodec was built without PLplot, so it cannot draw "
            "'phase.png': install libplplot-dev plplot-driver-cairo and rebuild")
    check("without PLplot: nodec run refuses the plot, located", r.returncode == 1 and
          r.stderr.startswith(want), r.stderr)
    check("without PLplot: the directives before it ran",
          os.path.exists(os.path.join(folder, "circle.csv")), "no circle.csv")

def main():
    version = subprocess.run([NODEC, "--version"], capture_output=True, text=True).stdout
    tests = [test_phase, test_series, test_fit, test_history, test_svg]
    if "without PLplot" in version:
        print("plot.py: nodec was built without PLplot: the pictures are not checked, only "
              "the error a plot gives")
        tests = [test_without_plplot]
    for t in tests:
        with tempfile.TemporaryDirectory() as folder:
            t(folder)
    print(f"plot.py: {len(failures)} failed" if failures else "plot.py: all passed")
    sys.exit(1 if failures else 0)

main()
