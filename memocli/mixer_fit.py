"""Fitting a multi-head model's mixer (``memo fit-mixer``): a gate that tells two domains
apart, and each domain's blend of heads mapped to its own source's scale.

A model trained on several sources (``memo train --data A --data B``) has one head per
source and a mixer that passes the first head through. This fits a two-domain
:class:`~memocli.model.HeadMixer`, everything else frozen:

* the **gate**: logistic regression (classes balanced, L2) on the last block's pooled
  features, fitted on the two sources' training photos: "scene" (the first head's source)
  against "other" (the rest);
* the **scene domain**: ``(1 - alpha) * first head + alpha * mean of the other heads``,
  each head standardised over the other source's training photos, mapped by least squares
  to the scene source's labels on its **validation** photos (its head was trained on the
  training ones, whose scores fit too well);
* the **other domain**: ``(1 - beta) * mean of the other heads + beta * first head``, the
  same way, to the other source's labels on its validation photos.

A recipe may instead name each domain's blend head by head (``scene_blend``,
``other_blend``: ``{head: weight}``, heads left out weigh 0), for models with more than one
kind of other head (a scene-teacher head beside a teacher head, say).

The backbone's pooled features come from :class:`~memocli.features.FeatureBank` (the
image's first view, computed once, kept under a key of the frozen weights, preprocessing
and dtype). Every step is deterministic: the same inputs give the same mixer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import MemoError
from .features import FeatureBank
from .metrics import regression_metrics
from .model import VNet
from .sources import Splits


@dataclass(frozen=True)
class MixerRecipe:
    """The choices a mixer fit makes (see the module docstring)."""

    alpha: float = 0.2  # the other heads' share in the scene domain
    beta: float = 0.1  # the first head's share in the other domain
    l2: float = 1e-3  # the gate's L2 penalty
    gate_steps: int = 200  # L-BFGS iterations of the gate's fit
    scene_blend: dict[str, float] | None = None  # head by head, instead of alpha
    other_blend: dict[str, float] | None = None  # head by head, instead of beta

    def blends(self, heads: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """The scene and other domains' blends ``[K]`` of the heads ``heads``."""
        return (named_blend(heads, self.scene_blend) if self.scene_blend
                else blend(len(heads), 1 - self.alpha),
                named_blend(heads, self.other_blend) if self.other_blend
                else blend(len(heads), self.beta))


def first_views(bank: FeatureBank, items) -> torch.Tensor:
    """``[N, D]`` float32: every block's pooled features of each image (not its mirror)."""
    pooled, _ = bank.features(items)
    return pooled[:, 0].float()


def blocks(model: VNet, x: torch.Tensor) -> list[torch.Tensor]:
    """``[N, D]`` -> the per-block ``[N, C_i]`` list a head takes."""
    return list(torch.split(x, model.block_channels, dim=1))


@torch.inference_mode()
def head_scores(model: VNet, x: torch.Tensor) -> torch.Tensor:
    """``[N, K]`` float64: every head's score from pooled features ``x``."""
    return torch.cat([model.head_scores(blocks(model, x[s:s + 256])).double()
                      for s in range(0, len(x), 256)])


@torch.inference_mode()
def model_scores(model: VNet, x: torch.Tensor) -> torch.Tensor:
    """``[N]``: the model's one score (heads through the mixer) from pooled features."""
    return torch.cat([model.head(blocks(model, x[s:s + 256])) for s in range(0, len(x), 256)])


def fit_gate(model: VNet, scene: torch.Tensor, other: torch.Tensor, recipe: MixerRecipe
             ) -> None:
    """Logistic regression, scene (1) against other (0), on the last block's features of
    ``scene`` and ``other`` (``[N, D]`` pooled features), written into the mixer's gate
    (domain 0: scene). Starts from zero weights, so the fit is deterministic."""
    c = model.block_channels[-1]
    f = torch.cat([scene[:, -c:], other[:, -c:]]).double()
    y = torch.cat([torch.ones(len(scene)), torch.zeros(len(other))]).double()
    balance = torch.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    w = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=recipe.gate_steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            f @ w + b, y, weight=balance) + recipe.l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():  # softmax over [logit, 0] is sigmoid(logit) for domain 0
        model.mixer.gate.weight.copy_(torch.stack([w, torch.zeros_like(w)]).float())
        model.mixer.gate.bias.copy_(torch.cat([b, torch.zeros_like(b)]).float())


def blend(n_heads: int, first_share: float) -> torch.Tensor:
    """``[K]``: ``first_share`` for the first head, the rest shared evenly by the others."""
    rest = (1 - first_share) / (n_heads - 1)
    return torch.tensor([first_share] + [rest] * (n_heads - 1), dtype=torch.float64)


def named_blend(heads: tuple[str, ...], weights: dict[str, float]) -> torch.Tensor:
    """``[K]``: each head's weight from ``weights`` (0 for heads it leaves out)."""
    unknown = sorted(set(weights) - set(heads))
    if unknown:
        raise MemoError(f"the model has no head {unknown[0]!r} (its heads: {', '.join(heads)})")
    if not any(weights.values()):
        raise MemoError("a blend needs a head with a weight other than 0")
    return torch.tensor([weights.get(h, 0.0) for h in heads], dtype=torch.float64)


def fit_domain(model: VNet, domain: int, weights: torch.Tensor, ref: torch.Tensor,
               scores: torch.Tensor, targets: torch.Tensor) -> None:
    """Domain ``domain`` := the least-squares affine map to ``targets`` of the blend
    ``weights`` of the heads' ``scores``, each standardised by its mean and sd over ``ref``
    (head scores ``[N, K]``)."""
    mu, sd = ref.mean(0), ref.std(0).clamp_min(1e-12)
    mix = ((scores - mu) / sd) @ weights
    design = torch.stack([mix, torch.ones_like(mix)], 1)
    k, c = torch.linalg.lstsq(design, targets.double().unsqueeze(1)).solution.squeeze(1)
    with torch.no_grad():
        model.mixer.weight[domain] = (k * weights / sd).float()
        model.mixer.bias[domain] = float(c - k * (weights * mu / sd).sum())


def with_two_domains(model: VNet) -> VNet:
    """``model`` with a two-domain mixer (a new one, if it had a single domain)."""
    if len(model.cfg.heads) < 2:
        raise MemoError("the model has one head: fit-mixer needs a model trained on several "
                        "sources (memo train --data A --data B)")
    if model.cfg.mixer_domains == 2:
        return model
    new = VNet(model.cfg.with_heads(model.cfg.heads, mixer_domains=2)).eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("mixer.")}
    new.load_state_dict(state, strict=False)
    return new


def labels(items) -> torch.Tensor:
    """The items' scores as a float64 tensor."""
    return torch.tensor([i.score for i in items], dtype=torch.float64)


def fit_mixer(model: VNet, scene: Splits, other: Splits, bank: FeatureBank,
              recipe: MixerRecipe = MixerRecipe()) -> tuple[VNet, dict]:
    """The model with its mixer fitted (see the module docstring), and what the fit saw:
    the gate's mean on each source's validation photos and each domain's validation rho
    and MSE against its own source's labels."""
    model = with_two_domains(model)
    x = {("scene", part): first_views(bank, getattr(scene, part)) for part in ("train", "val")}
    x |= {("other", part): first_views(bank, getattr(other, part)) for part in ("train", "val")}
    fit_gate(model, x["scene", "train"], x["other", "train"], recipe)
    scene_blend, other_blend = recipe.blends(model.cfg.heads)
    ref = head_scores(model, x["other", "train"])
    fit_domain(model, 0, scene_blend, ref, head_scores(model, x["scene", "val"]),
               labels(scene.val))
    fit_domain(model, 1, other_blend, ref, head_scores(model, x["other", "val"]),
               labels(other.val))
    report = {}
    c = model.block_channels[-1]
    for domain, splits in (("scene", scene), ("other", other)):
        val = x[domain, "val"]
        with torch.inference_mode():
            gate = model.mixer.domain_weights(val[:, -c:])[:, 0]
        m = regression_metrics(model_scores(model, val).tolist(),
                               [i.score for i in splits.val])
        report[domain] = {"data": splits.data, "gate_mean_val": round(float(gate.mean()), 4),
                          "val_rho": m["rho"], "val_mse": m["mse"], "val_n": m["n"]}
    return model, report
