"""The LR range test: raise the learning rate step by step and watch the loss.

It trains what ``memo train`` with the same ``--train-stages`` and ``--augment`` would
train, the same way (:func:`memocli.train.prepare`), and suggests the one-cycle policy's
maximum learning rate.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence

import torch

from .features import FeatureBanks, progress
from .model import VNet
from .sources import TrainingData
from .train import TrainConfig, prepare, start_at_means, trainable_parameters, training_loss


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


#: Batches of an LR range test (what it costs: this many training steps).
LR_TEST_STEPS = 300


def plot_range_test(path: str | os.PathLike, found: dict) -> None:
    """A PNG of :func:`lr_range_test`'s smoothed loss against the LR, its pick marked."""
    from .plot import plot_log_x

    plot_log_x(path, found["lrs"], found["losses"], "LR range test", "learning rate",
               "loss (smoothed)", marker_x=found["suggested"])


def lr_range_test(
    model: VNet,
    data: TrainingData,
    device: torch.device,
    tcfg: TrainConfig,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    steps: int = LR_TEST_STEPS,
    banks: FeatureBanks | None = None,
    silent: bool = False,
) -> dict:
    """Raise the LR exponentially from ``start_lr`` to ``end_lr`` over ``steps`` batches.

    ``tcfg`` says what trains and how (its stages, augmentation, batch size, weight decay;
    not its epochs or LR). Returns the tried ``lrs``, the smoothed ``losses`` and
    :func:`suggest_lr`'s picks. Stops early once the loss exceeds 4x its best (divergence).
    """
    path = prepare(model, data, tcfg, device, banks, silent)
    start_at_means(model, data)
    optimizer = torch.optim.Adam(trainable_parameters(model), lr=start_lr,
                                 weight_decay=tcfg.weight_decay)
    gamma = (end_lr / start_lr) ** (1 / max(1, steps - 1))
    weights = data.weights()
    lrs, raw = [], []
    model.train()

    def batches():
        for epoch in itertools.count():
            yield from path.train_batches(epoch)

    bar = progress(range(steps), silent, desc="lr range test", unit="step")
    for step, (x, y, sources) in zip(bar, batches()):
        lr = start_lr * gamma**step
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = training_loss(path.predict(x), y, sources, weights, tcfg.consistency)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lrs.append(lr)
        raw.append(loss.item())
        smoothed = smooth(raw)
        if not math.isfinite(raw[-1]) or (step > 10 and smoothed[-1] > 4 * min(smoothed)):
            break
    losses = smooth(raw)
    return {"lrs": lrs, "losses": losses, **suggest_lr(lrs, losses)}
