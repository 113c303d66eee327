import math
from itertools import pairwise

import pytest
import torch

from memocli.metrics import average_ranks, mse, spearman
from memocli.schedule import one_cycle_factor, smooth, suggest_lr


def test_one_cycle_shape():
    total, div, final_div = 1000, 10, 100
    f = [one_cycle_factor(s, total, div, final_div, cycle_frac=0.9) for s in range(total)]
    cycle, half = 900, 450
    assert f[0] == pytest.approx(1 / div)
    assert f[half] == pytest.approx(1.0)
    assert max(f) == pytest.approx(1.0)
    assert all(a < b for a, b in pairwise(f[:half + 1]))                  # warm-up rises
    assert all(a > b for a, b in pairwise(f[half:cycle]))                 # then falls
    assert f[cycle] <= 1 / div + 1e-9
    assert all(a > b for a, b in pairwise(f[cycle:]))                     # annihilation
    assert f[-1] == pytest.approx(1 / final_div)
    assert min(f) == pytest.approx(1 / final_div)


def test_one_cycle_tiny_runs_are_defined():
    assert [one_cycle_factor(s, 1) for s in range(1)] == [pytest.approx(0.1)]
    assert all(0 < one_cycle_factor(s, 3) <= 1 for s in range(3))


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
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_mse():
    assert mse([0.5, 0.7], [0.5, 0.5]) == pytest.approx(0.02)
