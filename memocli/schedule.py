"""The one-cycle learning-rate policy of paper §3.4.2 and the LR range test's suggestion."""

from __future__ import annotations

import math
from collections.abc import Sequence


def one_cycle_factor(
    step: int, total_steps: int, div: float = 10.0, final_div: float = 100.0,
    cycle_frac: float = 0.9,
) -> float:
    """Multiplier of the maximum LR at ``step`` (0-based) of a run of ``total_steps``.

    A cycle of ``cycle_frac`` of the run goes linearly from ``max/div`` up to ``max`` and
    back down in two equal halves; the remaining steps anneal linearly from ``max/div`` to
    ``max/final_div`` ("annihilation").
    """
    total_steps = max(1, total_steps)
    cycle = max(2, round(total_steps * cycle_frac)) if total_steps > 2 else total_steps
    low = 1.0 / div
    half = cycle / 2
    if step < half:
        return low + (1.0 - low) * step / half
    if step < cycle:
        return 1.0 - (1.0 - low) * (step - half) / half
    tail = max(1, total_steps - cycle)
    done = min(1.0, (step - cycle + 1) / tail)
    return low + (1.0 / final_div - low) * done


def smooth(values: Sequence[float], beta: float = 0.98) -> list[float]:
    """Bias-corrected exponential moving average (as used for LR range tests)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    return out


def suggest_lr(lrs: Sequence[float], losses: Sequence[float]) -> dict[str, float]:
    """Pick a maximum LR from a range test's (lr, smoothed loss) curve.

    Returns ``min_loss_lr`` (where the loss bottoms out), ``steepest_lr`` (fastest fall of
    loss per decade of LR, before the minimum) and ``suggested``: one tenth of
    ``min_loss_lr`` (the common rule: the largest LR still safely on the falling slope).
    The first tenth of the points, where the moving average has seen little, is not
    eligible for either.
    """
    if len(lrs) != len(losses) or len(lrs) < 3:
        raise ValueError("need at least 3 (lr, loss) points of equal count")
    skip = len(lrs) // 10
    finite = [i for i, loss in enumerate(losses) if math.isfinite(loss) and i >= skip]
    i_min = min(finite, key=lambda i: losses[i])
    logs = [math.log10(lr) for lr in lrs]
    slopes = [
        ((losses[i + 1] - losses[i]) / (logs[i + 1] - logs[i]), i)
        for i in range(skip, max(skip + 1, i_min))
        if i + 1 < len(lrs) and math.isfinite(losses[i + 1]) and logs[i + 1] > logs[i]
    ]
    i_steep = min(slopes)[1] if slopes else i_min
    return {
        "suggested": lrs[i_min] / 10,
        "min_loss_lr": lrs[i_min],
        "steepest_lr": lrs[i_steep],
    }
