"""Grad-CAM of V-Net's predicted memorability (paper §5): the maths, no pictures or files.

For a chosen backbone layer with activation ``A`` (``[B, C, h, w]``) and the predicted score
``y`` (the regression output itself, not a loss), Grad-CAM is::

    w_k = mean_ij dy/dA_kij                 # one weight per channel
    cam = ReLU(sum_k w_k A_k)               # [B, h, w], in score units per cell

``y`` depends on ``A`` through every later block *and* through ``A``'s own
GAP -> 1x1 projection -> LSTM path (and the LSTM steps of the later blocks), so the gradient
is simply that of the score, back-propagated through the LSTM; nothing is special-cased.

Each map is normalised per image by its own maximum, so 1.0 is the cell that raises the
score most. That maximum (the *peak*, in score units) is kept: when it is ~0 (no positive
evidence anywhere, or only float noise next to strong negative evidence) the map is
all zeros instead of noise blown up to full red. Drawing is :mod:`memocli.render`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import MemoError
from .model import VNet
from .registry import ModelConfig

# A map is "flat" (all zeros) when its peak is below either bound: the strongest cell would
# change the score by less than 1e-6 even if every cell were that strong, or the positive
# evidence is float noise beside the map's largest (negative) contribution.
FLAT_ABS = 1e-6
FLAT_REL = 1e-4


# --- layers -------------------------------------------------------------------------------

def default_layer(model: VNet) -> str:
    """The last residual block of layer4 (``layer4.2`` for ResNet-50)."""
    return model.block_names[-1]


def layer_summary(cfg: ModelConfig) -> str:
    """Compact list of Grad-CAM layer names: ``layer1..layer4, layer1.0-2, ...``."""
    blocks = ", ".join(
        f"layer{i}.0" if n == 1 else f"layer{i}.0-{n - 1}"
        for i, n in enumerate(cfg.stage_blocks, 1)
    )
    return f"layer1..layer4, {blocks}"


class UnknownLayer(MemoError):
    """A layer name the model does not have (a usage error: the CLI says so as one)."""


def resolve_layer(model: VNet, layer: str | None) -> str:
    """``layer`` checked against the model's stages and blocks (None: the default).

    Raises:
        UnknownLayer: the model has no such stage or block.
    """
    if layer is None:
        return default_layer(model)
    if layer not in model.stage_names():
        raise UnknownLayer(
            f"unknown layer '{layer}' for {model.cfg.name}; choose a stage or block: "
            f"{layer_summary(model.cfg)}"
        )
    return layer


def layer_module(model: VNet, layer: str):
    """The block whose output is ``layer``'s activation.

    V-Net runs the blocks one by one (each feeds the LSTM), never a stage's ``Sequential``
    as a whole, so a stage name means its last block (whose output is the stage's output).
    """
    module = model.backbone.get_submodule(layer)
    return module[-1] if isinstance(module, torch.nn.Sequential) else module


# --- Grad-CAM -----------------------------------------------------------------------------

@dataclass
class CamBatch:
    """Grad-CAM of one batch (all on the CPU)."""

    scores: torch.Tensor  # [B] predicted memorability
    cams: torch.Tensor  # [B, h, w] in [0, 1]; all zeros for a flat map
    peaks: torch.Tensor  # [B] max of ReLU(sum_k w_k A_k) before normalisation (score units)
    flat: torch.Tensor  # [B] bool: peak ~0, so the map was zeroed instead of normalised


class GradCAM:
    """Grad-CAM of V-Net's score at one backbone layer; use it as a context manager.

    As in pytorch-grad-cam: a forward hook on the layer keeps its activation and hooks the
    activation tensor to keep its gradient; the hooks are removed on leaving the ``with``.
    The backward pass is asked for that one tensor only (``inputs=``), so it stops at the
    layer and no ``.grad`` accumulates on the model's parameters. Images in a batch are
    independent (eval-mode batch norm), so ``d(sum of scores)/dA`` is each image's own
    gradient.

    Example::

        with GradCAM(model, "layer4.2") as cam:
            result = cam(images)  # images: normalised [B, 3, H, W]
    """

    def __init__(self, model: VNet, layer: str | None = None):
        self.model = model
        self.layer = resolve_layer(model, layer)
        self.module = layer_module(model, self.layer)
        self._forward_hook: torch.utils.hooks.RemovableHandle | None = None
        self._tensor_hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._activation: torch.Tensor | None = None
        self._gradient: torch.Tensor | None = None

    def __enter__(self) -> GradCAM:
        self._forward_hook = self.module.register_forward_hook(self._keep_activation)
        return self

    def __exit__(self, *exc) -> None:
        if self._forward_hook is not None:
            self._forward_hook.remove()
            self._forward_hook = None
        self._release()

    def _release(self) -> None:
        """Drop the tensors of the last pass and their gradient hooks."""
        for handle in self._tensor_hooks:
            handle.remove()
        self._tensor_hooks.clear()
        self._activation = self._gradient = None

    def _keep_activation(self, module, inputs, output: torch.Tensor) -> None:
        if not output.requires_grad:
            # Nothing upstream needs gradients (frozen backbone, input without grad): the
            # activation is a leaf, so start the graph here. The model is not modified.
            output.requires_grad_()
        self._activation = output
        self._tensor_hooks.append(output.register_hook(self._keep_gradient))

    def _keep_gradient(self, grad: torch.Tensor) -> None:
        self._gradient = grad

    def __call__(self, images: torch.Tensor) -> CamBatch:
        """Scores and normalised Grad-CAM maps for normalised images ``[B, 3, H, W]``."""
        if self._forward_hook is None:
            raise RuntimeError("GradCAM must be used as a context manager (`with GradCAM(...)`)")
        model = self.model
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        try:
            # Works even when called from inside torch.inference_mode() / no_grad().
            with torch.inference_mode(False), torch.enable_grad():
                x = images.to(device)
                if x.is_inference():
                    x = x.clone()
                self._release()
                pooled = model.pooled_block_features(x)
                # cuDNN's LSTM has no backward in eval mode: run the head without cuDNN
                # (the convolutions keep it).
                with torch.backends.cudnn.flags(enabled=False):
                    scores = model.head(pooled)  # [B]
                act = self._activation
                if act is None:
                    raise RuntimeError(f"layer {self.layer} was not reached in the forward pass")
                torch.autograd.backward(scores.sum(), inputs=[act])
                grad = self._gradient
            with torch.no_grad():
                dtype = torch.promote_types(act.dtype, torch.float32)  # no fp16 maps
                act, grad = act.detach().to(dtype), grad.to(dtype)
                weights = grad.mean(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
                raw = (weights * act).sum(dim=1)  # [B, h, w]
                cam = raw.clamp(min=0)
                peaks = cam.amax(dim=(1, 2))  # [B]
                cells = raw.shape[1] * raw.shape[2]
                flat = ((peaks * cells < FLAT_ABS)
                        | (peaks <= FLAT_REL * raw.abs().amax(dim=(1, 2))))
                cams = torch.where(
                    flat[:, None, None], torch.zeros_like(cam),
                    cam / peaks.clamp(min=torch.finfo(cam.dtype).tiny)[:, None, None],
                )
        finally:
            self._release()
            if was_training:
                model.train()
        return CamBatch(scores.detach().float().cpu(), cams.cpu(), peaks.cpu(), flat.cpu())
