"""Evaluation metrics of the paper (§4.1): Spearman rank correlation and MSE."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of a 1-D tensor, ties sharing their average rank (vectorised)."""
    sorted_vals, order = torch.sort(values, stable=True)
    _, group, counts = torch.unique_consecutive(sorted_vals, return_inverse=True,
                                                return_counts=True)
    ends = counts.cumsum(0)  # 1-based rank of each tie group's last member
    group_rank = (ends - counts + 1 + ends).to(torch.float64) / 2
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = group_rank[group]
    return ranks


def spearman(pred: Sequence[float] | torch.Tensor, target: Sequence[float] | torch.Tensor) -> float:
    """Spearman's rho: Pearson correlation of the average ranks (nan if undefined)."""
    p = average_ranks(torch.as_tensor(pred, dtype=torch.float64).flatten())
    t = average_ranks(torch.as_tensor(target, dtype=torch.float64).flatten())
    if len(p) != len(t):
        raise ValueError(f"length mismatch: {len(p)} predictions, {len(t)} targets")
    p, t = p - p.mean(), t - t.mean()
    denom = (p.square().sum() * t.square().sum()).sqrt()
    return float((p * t).sum() / denom) if denom > 0 else float("nan")


def mse(pred: Sequence[float] | torch.Tensor, target: Sequence[float] | torch.Tensor) -> float:
    """Mean squared error."""
    p = torch.as_tensor(pred, dtype=torch.float64).flatten()
    t = torch.as_tensor(target, dtype=torch.float64).flatten()
    return float((p - t).square().mean())


def regression_metrics(pred, target) -> dict[str, float]:
    """``{'rho': ..., 'mse': ..., 'n': ...}`` for predictions against targets."""
    return {"rho": spearman(pred, target), "mse": mse(pred, target), "n": len(target)}
