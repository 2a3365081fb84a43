# Reference for tests/lang/train_irregular_shared.node: trajectories at their own
# times (tests/lang/train_irregular.csv, batched on the union of their times) with a
# state w shared by the batch: dw/dt = -0.1 w from w0 at each sample's start, so
# w(tau) = w0 e^{-0.1 tau}, and dx/dt = -w x gives x = x0 exp(-10 w0 (1 - e^{-0.1 tau})).
# Loss (x - obs.x)^2 over every observation plus w^2 + x^2 at each trajectory's own
# last one; its w0-derivative, one sgd(lr = 0.1) step, x(1) from x(0) = 1 with the
# new w0; 40 digits. /usr/bin/python3.
from mpmath import mp, mpf, exp, diff
import csv, os
mp.dps = 40
here = os.path.dirname(os.path.abspath(__file__))
traj = {}
for r in csv.DictReader(open(os.path.join(here, '../../tests/lang/train_irregular.csv'))):
    traj.setdefault(r['id'], []).append((mpf(r['t']), mpf(r['x'])))
w = lambda tau, w0: w0 * exp(-tau / 10)
x = lambda tau, x0, w0: x0 * exp(-10 * w0 * (1 - exp(-tau / 10)))
def L(w0):
    total = sum(len(v) for v in traj.values())
    obs = sum((x(t - v[0][0], v[0][1], w0) - d)**2 for v in traj.values() for t, d in v)
    fin = sum(w(v[-1][0] - v[0][0], w0)**2 + x(v[-1][0] - v[0][0], v[0][1], w0)**2
              for v in traj.values())
    return obs / total + fin / len(traj)
w0 = mpf('0.5')
g = diff(L, w0)
w1 = w0 - mpf('0.1') * g
print('L', mp.nstr(L(w0), 17), 'dL/dw0', mp.nstr(g, 17), 'x(1)', mp.nstr(x(1, 1, w1), 17))
