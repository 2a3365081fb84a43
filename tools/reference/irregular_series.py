# Reference for tests/lang/train_irregular.node: trajectories with their own
# observation times (tests/lang/train_irregular.csv: a common grid relative to
# each start with values missing; train_irregular_apart.csv: all apart), each from its
# first observation. Closed forms of dx/dt = -k x + f sin(t) (f = 1: forced,
# f = 0: autonomous); the loss (x - obs.x)^2 over every observation plus the
# final loss x^2 at each trajectory's last one, its k-derivative, one sgd step
# and x(1) from x(0) = 1 at the new k, at 40 digits. /usr/bin/python3.
from mpmath import mp, mpf, exp, sin, cos, diff
import csv, os
mp.dps = 40
here = os.path.dirname(os.path.abspath(__file__))
def read(name):
    traj = {}
    for r in csv.DictReader(open(os.path.join(here, '../../tests/lang', name))):
        traj.setdefault(r['id'], []).append((mpf(r['t']), mpf(r['x'])))
    return traj
def x(t, t0, x0, k, f):
    tau = t - t0
    return x0*exp(-k*tau) + f*((k*sin(t) - cos(t)) - exp(-k*tau)*(k*sin(t0) - cos(t0)))/(1 + k*k)
def L(traj, k, f):
    total = sum(len(v) for v in traj.values())
    obs = sum((x(t, v[0][0], v[0][1], k, f) - d)**2 for v in traj.values() for t, d in v)
    fin = sum(x(v[-1][0], v[0][0], v[0][1], k, f)**2 for v in traj.values())
    return obs/total + fin/len(traj)
for name in ('train_irregular.csv', 'train_irregular_apart.csv'):
    traj = read(name)
    for f in (1, 0):
        k0 = mpf('0.5')
        g = diff(lambda k: L(traj, k, f), k0)
        k1 = k0 - mpf('0.1')*g
        print(name, 'f', f, 'L', mp.nstr(L(traj, k0, f), 17), 'dL/dk', mp.nstr(g, 17),
              'x(1)', mp.nstr(x(1, 0, 1, k1, f), 17))
