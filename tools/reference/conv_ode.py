#!/usr/bin/python3
"""Reference for tests/lang/tensor_conv_ode.node: the image ODE
   dh/dt = tanh(conv2d(K, h, pad 1) + b) + 0.1 conv2d(K2, max_pool(h, 2, stride 1), pad 1)
           - 0.2 group_norm(h, 1) + 0.3 avg_pool(h, 5)
written with PyTorch's own F.conv2d, F.max_pool2d, F.group_norm and F.avg_pool2d in float64
(an implementation independent of nodec's im2col lowering), solved by scipy's DOP853 at
rtol = atol = 1e-13. Prints the expect lines of the test (h at t = 1).
Run with Debian's python: /usr/bin/python3 tools/reference/conv_ode.py"""
import numpy as np
import torch
import torch.nn.functional as F
from scipy.integrate import solve_ivp

torch.set_default_dtype(torch.float64)
K = torch.linspace(-0.5, 0.5, 36).reshape(2, 2, 3, 3)
K2 = torch.linspace(0.3, -0.2, 16).reshape(2, 2, 2, 2)
b = torch.tensor([0.1, -0.2]).reshape(2, 1, 1)
h0 = np.linspace(-1, 1, 50)


def rhs(t, y):
    h = torch.from_numpy(y).reshape(1, 2, 5, 5)
    d = torch.tanh(F.conv2d(h, K, padding=1) + b) \
        + 0.1 * F.conv2d(F.max_pool2d(h, 2, stride=1), K2, padding=1) \
        - 0.2 * F.group_norm(h, 1, eps=1e-5) + 0.3 * F.avg_pool2d(h, 5)
    return d.reshape(-1).numpy()


sol = solve_ivp(rhs, (0, 1), h0, method="DOP853", rtol=1e-13, atol=1e-13)
h1 = sol.y[:, -1]
for k in (0, 7, 12, 24, 25, 31, 49):
    c, i, j = k // 25, (k % 25) // 5, k % 5
    print(f"# expect: conv_ode.csv last h[{c},{i},{j}] = {h1[k]:.12f} ± 1e-9")
