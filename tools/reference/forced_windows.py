# Reference for tests/lang/train_windows_forced.node: the closed form of
# dx/dt = -k x + sin(t) from (t0, x0), the windows loss and its k-derivative
# at 40 digits. Run with /usr/bin/python3 (Debian python3-mpmath).
from mpmath import mp, mpf, exp, sin, cos, diff
mp.dps = 40
def x(t, t0, x0, k):
    tau = t - t0
    return x0*exp(-k*tau) + ((k*sin(t) - cos(t)) - exp(-k*tau)*(k*sin(t0) - cos(t0)))/(1 + k*k)
ts = [mpf(i)/2 for i in range(5)]
data = [x(t, 0, 3, mpf('0.8')) for t in ts]
def L(k):
    s = 0
    for i in range(3):
        for j in range(3):
            s += (x(ts[i+j], ts[i], data[i], k) - data[i+j])**2
    return s/9
k0 = mpf('0.5')
g = diff(L, k0)
k1 = k0 - mpf('0.2')*g
print('L', mp.nstr(L(k0), 17), 'dL/dk', mp.nstr(g, 17))
print('x(1)', mp.nstr(x(1, 0, 1, k1), 17))
