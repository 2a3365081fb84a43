#!/usr/bin/env python3
"""Closed form of the bouncing ball through its bounces (tests/lang/train_events_ball.node):
h(0) = h0 at rest, dv/dt = -g, `when h < 0 { v = -e * v }`. The first bounce is at
t1 = sqrt(2 h0 / g); after bounce k the speed is v_k = e^k sqrt(2 g h0) and the next
bounce 2 v_k / g later, so between bounces k and k+1, h(t) = v_k (t - t_k) - g/2 (t - t_k)^2.
Losses: L_final = h(T)^2, L_series = the mean of h(t_j)^2 over the observation times (as train averages a
time series' loss); their
gradients with respect to (h0, e) by mpmath.diff at 40 digits, and the parameters after
one sgd step of rate lr. Prints the numbers the test expects."""
import mpmath as mp

mp.mp.dps = 40
G = mp.mpf("9.81")


def height(t, h0, e):
    t = mp.mpf(t)
    t1 = mp.sqrt(2 * h0 / G)
    if t < t1:
        return h0 - G / 2 * t**2
    v0, tk, k = mp.sqrt(2 * G * h0), t1, 1
    while True:
        vk = e**k * v0
        nxt = tk + 2 * vk / G
        if t < nxt:
            return vk * (t - tk) - G / 2 * (t - tk) ** 2
        tk, k = nxt, k + 1


def bounces(h0, e, upto):
    t1 = mp.sqrt(2 * h0 / G)
    out, tk, k = [t1], t1, 1
    while len(out) < upto:
        tk += 2 * e**k * mp.sqrt(2 * G * h0) / G
        out.append(tk)
        k += 1
    return out


def report(name, loss, h0, e, lr):
    L = loss(h0, e)
    dh0 = mp.diff(lambda x: loss(x, e), h0)
    de = mp.diff(lambda x: loss(h0, x), e)
    print(f"{name}: L = {mp.nstr(L, 17)}  dL/dh0 = {mp.nstr(dh0, 17)}  dL/de = {mp.nstr(de, 17)}")
    print(f"  after sgd(lr = {lr}): h0 = {mp.nstr(h0 - lr * dh0, 17)}  e = {mp.nstr(e - lr * de, 17)}")


if __name__ == "__main__":
    h0, e = mp.mpf(10), mp.mpf("0.8")
    print("bounces:", [mp.nstr(t, 17) for t in bounces(h0, e, 4)])
    print("h(6) =", mp.nstr(height(6, h0, e), 17))
    report("final h(6)^2", lambda a, b: height(6, a, b) ** 2, h0, e, mp.mpf("1e-4"))
    times = [mp.mpf(j) / 2 for j in range(13)]  # linspace(0, 6, 13)
    report("series mean h(t_j)^2", lambda a, b: sum(height(t, a, b) ** 2 for t in times) / 13,
           h0, e, mp.mpf("1e-4"))
