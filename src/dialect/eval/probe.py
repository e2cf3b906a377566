"""Linear probes: how linearly decodable a label is from frozen features.

Features are standardised with the training split's mean/std, then a multinomial logistic
regression (one linear layer, cross-entropy, L2 weight decay) is fit full-batch with L-BFGS;
accuracy is measured on the held-out split. Deterministic for fixed inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    weight_decay: float = 1e-3,
    iters: int = 200,
) -> float:
    """(N, F) features + (N,) int labels -> test accuracy in [0, 1]."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    xtr, xte = (train_x - mean) / std, (test_x - mean) / std
    n_cls = int(max(train_y.max(), test_y.max())) + 1
    w = torch.zeros(xtr.shape[1], n_cls, requires_grad=True)
    b = torch.zeros(n_cls, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ w + b, train_y) + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((xte @ w + b).argmax(-1) == test_y).float().mean())
