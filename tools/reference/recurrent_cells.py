#!/usr/bin/python3
"""Reference for tests/lang/recurrent_cells.node: one step of PyTorch's own
torch.nn.GRUCell and torch.nn.LSTMCell (float64) with the test's weights (nodec's
linspace(a, b, n) reshaped row-major, copied into weight_ih, weight_hh, bias_ih,
bias_hh, gates in PyTorch's order), and the closed forms kl_normal, normal_loglik and
bernoulli_loglik from torch.distributions. Prints the expect lines of the test.
Run with Debian's python: /usr/bin/python3 tools/reference/recurrent_cells.py"""
import math

import torch

torch.set_default_dtype(torch.float64)
H, N_IN = 3, 2
x = torch.tensor([[0.3, -0.8]])
h = torch.tensor([[0.5, -0.1, 0.2]])
c = torch.tensor([[-0.4, 0.9, 0.05]])


def weights(cell, gates):
    n = gates * H
    with torch.no_grad():
        cell.weight_ih.copy_(torch.linspace(-0.5, 0.6, n * N_IN).reshape(n, N_IN))
        cell.weight_hh.copy_(torch.linspace(0.4, -0.7, n * H).reshape(n, H))
        cell.bias_ih.copy_(torch.linspace(-0.2, 0.3, n))
        cell.bias_hh.copy_(torch.linspace(0.1, -0.25, n))
    return cell


gru = weights(torch.nn.GRUCell(N_IN, H), 3)
lstm = weights(torch.nn.LSTMCell(N_IN, H), 4)
with torch.no_grad():
    h_gru = gru(x, h)[0]
    h_lstm, c_lstm = (v[0] for v in lstm(x, (h, c)))
for i in range(H):
    print(f"# expect: cells.csv last g[{i}] = {h_gru[i].item():.15f} ± 1e-12")
for i, v in enumerate(torch.cat([h_lstm, c_lstm])):
    print(f"# expect: cells.csv last l[{i}] = {v.item():.15f} ± 1e-12")

D = torch.distributions
mu, logvar = torch.tensor([0.5, -1.0, 0.25]), torch.tensor([0.2, -0.3, 1.5])
q = D.Normal(mu, torch.exp(0.5 * logvar))
kl = D.kl_divergence(q, D.Normal(torch.zeros(3), torch.ones(3))).sum()
xo = torch.tensor([1.0, 2.0, -0.5])
ll = q.log_prob(xo).sum()
xb, logits = torch.tensor([0.0, 1.0, 1.0, 0.0]), torch.tensor([-30.0, 2.0, 0.5, 40.0])
bl = -torch.nn.functional.binary_cross_entropy_with_logits(logits, xb, reduction="sum")
print(f"# expect: cells.csv last kl = {kl.item():.15f} ± 1e-12")
print(f"# expect: cells.csv last ll = {ll.item():.15f} ± 1e-12")
print(f"# expect: cells.csv last bl = {bl.item():.15f} ± 1e-12")
assert math.isfinite(bl.item())
