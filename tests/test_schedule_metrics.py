import math
from itertools import pairwise

import pytest
import torch

from memocli.lr_find import smooth, suggest_lr
from memocli.metrics import average_ranks, mse, spearman
from memocli.train import TrainConfig, one_cycle


def one_cycle_lrs(total: int, lr_max: float = 1.0, **cfg) -> list[float]:
    """The LR each of ``total`` optimiser steps runs at, as a multiple of ``lr_max``."""
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr_max)
    scheduler = one_cycle(optimizer, total, TrainConfig(lr_max=lr_max, **cfg))
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"] / lr_max)
        optimizer.step()
        scheduler.step()
    return lrs


def test_one_cycle_shape():
    total, div, final_div = 1000, 10, 100
    f = one_cycle_lrs(total, 3e-3, div=div, final_div=final_div, cycle_frac=0.9)
    peak = f.index(max(f))
    cycle = 2 * peak + 1  # up and down take the same number of steps
    assert 448 <= peak <= 450 and 898 <= cycle <= 900        # 45% up, 45% down
    assert f[0] == pytest.approx(1 / div)
    assert max(f) == pytest.approx(1.0)
    assert all(a < b for a, b in pairwise(f[:peak + 1]))                  # warm-up rises
    assert all(a > b for a, b in pairwise(f[peak:cycle]))                 # then falls
    assert f[cycle - 1] == pytest.approx(1 / div, abs=2e-3)
    assert all(a > b for a, b in pairwise(f[cycle - 1:]))                 # annihilation
    assert f[-1] == pytest.approx(1 / final_div)
    assert min(f) == pytest.approx(1 / final_div)
    # momentum is Adam's own, never cycled
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    one_cycle(optimizer, 10, TrainConfig())
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.999)


def test_one_cycle_tiny_runs_are_defined():
    for total in (1, 2, 3):
        assert all(0 < f <= 1 for f in one_cycle_lrs(total))


def test_suggest_lr_on_a_known_curve():
    # loss flat, then falls fastest around 1e-3, bottoms out at 1e-2, then diverges
    lrs = [10 ** (-6 + k * 0.05) for k in range(121)]  # 1e-6 .. 1

    def loss(lr):
        x = math.log10(lr)
        return 1.0 - 0.8 / (1 + math.exp(-(x + 3) * 3)) + max(0.0, x + 2) ** 2

    found = suggest_lr(lrs, [loss(lr) for lr in lrs])
    assert 10 ** -2.3 < found["min_loss_lr"] < 10 ** -1.7
    assert found["suggested"] == pytest.approx(found["min_loss_lr"] / 10)
    assert 10 ** -3.5 < found["steepest_lr"] < 10 ** -2.5


def test_smooth_is_bias_corrected():
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])


def test_spearman_matches_hand_computation_with_ties():
    pred = [1, 2, 2, 4, 5]
    target = [5, 6, 7, 8, 7]
    assert average_ranks(torch.tensor(pred, dtype=torch.float64)).tolist() == [1, 2.5, 2.5, 4, 5]
    # Pearson of ranks [1,2.5,2.5,4,5] and [1,2,3.5,5,3.5] (= scipy.stats.spearmanr)
    assert spearman(pred, target) == pytest.approx(0.7631578947368421)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    # scipy.stats.spearmanr's documented example
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)
    ranks = average_ranks(torch.tensor([3.0, 1, 3, 3, 0, 1], dtype=torch.float64))
    assert ranks.tolist() == [5, 2.5, 5, 5, 1, 2.5]  # a triple and a pair of ties
    assert average_ranks(torch.tensor([], dtype=torch.float64)).tolist() == []
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_mse():
    assert mse([0.5, 0.7], [0.5, 0.5]) == pytest.approx(0.02)
