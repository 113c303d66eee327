"""Grad-CAM heatmaps of what raises a photo's predicted memorability (paper §5).

For a chosen backbone layer with activation ``A`` (``[B, C, h, w]``) and the predicted score
``y`` (the regression output itself, not a loss), Grad-CAM is::

    w_k = mean_ij dy/dA_kij                 # one weight per channel
    cam = ReLU(sum_k w_k A_k)               # [B, h, w], in score units per cell

``y`` depends on ``A`` through every later block *and* through ``A``'s own
GAP -> 1x1 projection -> LSTM path (and the LSTM steps of the later blocks), so the gradient
is simply that of the score, back-propagated through the LSTM; nothing is special-cased.

Each map is normalised per image by its own maximum, so 1.0 is the cell that raises the
score most. That maximum (the *peak*, in score units) is kept: when it is ~0 (no positive
evidence anywhere, or only float noise next to strong negative evidence) the map is written
as all zeros instead of blowing noise up to full red.

Rendering uses OpenCV: the map is upsampled bilinearly straight to the photo's own,
EXIF-upright resolution (the network input is a squash-resize of the whole photo, so this is
the exact inverse mapping), coloured with ``COLORMAP_JET`` (red = raises memorability,
blue = does not) and alpha-blended over the photo.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import DECODE_ERRORS, describe_decode_error, load_image
from .errors import MemoError
from .files import atomic_write, decode_threads, os_reason
from .model import VNet
from .predictor import Predictor
from .registry import ModelConfig

log = logging.getLogger(__name__)

OVERLAY_SUFFIX = ".memo.jpg"
HEATMAP_SUFFIX = ".memo.png"
JPEG_QUALITY = 92
# A map is "flat" (written as zeros) when its peak is below either bound: the strongest
# cell would change the score by less than 1e-6 even if every cell were that strong, or
# the positive evidence is float noise beside the map's largest (negative) contribution.
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


def resolve_layer(model: VNet, layer: str | None) -> str:
    """``layer`` checked against the model's stages and blocks (None: the default)."""
    if layer is None:
        return default_layer(model)
    if layer not in model.stage_names():
        raise MemoError(
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

    A forward hook on the layer keeps its activation; the gradient of the summed scores
    with respect to that activation comes from ``torch.autograd.grad`` (rather than
    ``backward()`` + a tensor hook) so no ``.grad`` accumulates on the model's parameters
    and the backward pass stops at the layer. Images in a batch are independent (eval-mode
    batch norm), so ``d(sum of scores)/dA`` is each image's own gradient.

    Example::

        with GradCAM(model, "layer4.2") as cam:
            result = cam(images)  # images: normalised [B, 3, H, W]
    """

    def __init__(self, model: VNet, layer: str | None = None):
        self.model = model
        self.layer = resolve_layer(model, layer)
        self.module = layer_module(model, self.layer)
        self._handle = None
        self._activation: torch.Tensor | None = None

    def __enter__(self) -> GradCAM:
        self._handle = self.module.register_forward_hook(self._keep_activation)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._activation = None

    def _keep_activation(self, module, inputs, output: torch.Tensor) -> None:
        if not output.requires_grad:
            # Nothing upstream needs gradients (frozen backbone, input without grad): the
            # activation is a leaf, so start the graph here. The model is not modified.
            output.requires_grad_()
        self._activation = output

    def __call__(self, images: torch.Tensor) -> CamBatch:
        """Scores and normalised Grad-CAM maps for normalised images ``[B, 3, H, W]``."""
        if self._handle is None:
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
                self._activation = None
                pooled = model.pooled_block_features(x)
                # cuDNN's LSTM has no backward in eval mode: run the head without cuDNN
                # (the convolutions keep it).
                with torch.backends.cudnn.flags(enabled=False):
                    scores = model.head(pooled)  # [B]
                act = self._activation
                if act is None:
                    raise RuntimeError(f"layer {self.layer} was not reached in the forward pass")
                (grad,) = torch.autograd.grad(scores.sum(), act)
            with torch.no_grad():
                dtype = torch.promote_types(act.dtype, torch.float32)  # no fp16 maps
                act, grad = act.detach().to(dtype), grad.to(dtype)
                weights = grad.mean(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
                raw = (weights * act).sum(dim=1)  # [B, h, w]
                cam = raw.clamp(min=0)
                peaks = cam.amax(dim=(1, 2))  # [B]
                cells = raw.shape[1] * raw.shape[2]
                flat = (peaks * cells < FLAT_ABS) | (peaks <= FLAT_REL * raw.abs().amax(dim=(1, 2)))
                cams = torch.where(
                    flat[:, None, None], torch.zeros_like(cam),
                    cam / peaks.clamp(min=torch.finfo(cam.dtype).tiny)[:, None, None],
                )
        finally:
            self._activation = None
            if was_training:
                model.train()
        return CamBatch(scores.detach().float().cpu(), cams.cpu(), peaks.cpu(), flat.cpu())


# --- rendering ----------------------------------------------------------------------------

def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a ``[h, w]`` map in [0, 1] to ``size = (width, height)``."""
    import cv2

    heat = cv2.resize(np.ascontiguousarray(cam, dtype=np.float32), size,
                      interpolation=cv2.INTER_LINEAR)
    return np.clip(heat, 0.0, 1.0)


def heatmap_gray(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The map at ``size = (width, height)`` as 8-bit grayscale (255 = the peak)."""
    return np.round(upsample(cam, size) * 255).astype(np.uint8)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the JET-coloured map over an RGB ``uint8`` photo; returns BGR ``uint8``.

    ``alpha`` is the heatmap's weight (0: the photo only, 1: the heatmap only).
    """
    import cv2

    height, width = image.shape[:2]
    colored = cv2.applyColorMap(heatmap_gray(cam, (width, height)), cv2.COLORMAP_JET)
    photo = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.addWeighted(colored, alpha, photo, 1.0 - alpha, 0.0)


def _thickness(scale: float) -> int:
    return max(1, round(scale * 2))


def _font_scale(text: str, height_px: float, max_width: int) -> float:
    """Hershey font scale giving text ``height_px`` tall, shrunk to fit ``max_width``."""
    import cv2

    (w1, h1), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, _thickness(1.0))
    return max(0.2, min(height_px / h1, max_width / w1))


def draw_label(img: np.ndarray, text: str, box: tuple[int, int, int, int] | None = None) -> None:
    """Write ``text`` in white, sized to the image, on a dark box (in place, BGR).

    ``box = (x, y, w, h)``: centre the text in that region (a band); default: a dark patch
    in the top-left corner of ``img`` whose text is ~5% of the shorter side tall.
    """
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    height, width = img.shape[:2]
    if box is None:
        margin = max(2, round(min(height, width) * 0.02))
        scale = _font_scale(text, max(8.0, min(height, width) * 0.05), width - 4 * margin)
    else:
        margin = 0
        scale = _font_scale(text, box[3] * 0.5, int(box[2] * 0.95))
    thick = _thickness(scale)
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    if box is None:
        x0, y0 = margin, margin
        pad = max(2, th // 3)
        x1, y1 = min(width, x0 + tw + 2 * pad), min(height, y0 + th + base + 2 * pad)
        patch = img[y0:y1, x0:x1]
        patch[:] = (patch * 0.35).astype(np.uint8)  # darken, keep a hint of what is under
        org = (x0 + pad, y0 + pad + th)
    else:
        bx, by, bw, bh = box
        org = (bx + (bw - tw) // 2, by + (bh + th) // 2)
    cv2.putText(img, text, org, font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def render(image: np.ndarray, cam: np.ndarray, score: float, alpha: float = 0.5,
           side_by_side: bool = False) -> np.ndarray:
    """The explain picture (BGR ``uint8``) for an RGB photo and its normalised map.

    Overlay at the photo's size with the score in its corner, or with ``side_by_side``
    the photo | overlay, with the score in a band underneath.
    """
    import cv2

    blended = overlay(image, cam, alpha)
    label = f"memorability {score:.2f}"
    if not side_by_side:
        draw_label(blended, label)
        return blended
    height, width = image.shape[:2]
    band = max(16, round(min(height, width) * 0.1))
    canvas = np.full((height + band, 2 * width, 3), 32, dtype=np.uint8)
    canvas[:height, :width] = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    canvas[:height, width:] = blended
    draw_label(canvas, label, box=(0, height, 2 * width, band))
    return canvas


# --- files --------------------------------------------------------------------------------

def _key(path: Path) -> str:
    return os.path.normcase(str(path.resolve())).casefold()


def output_paths(paths: Sequence[Path], out_dir: Path | None, suffix: str) -> list[Path]:
    """Where each input's picture goes: ``img.jpg`` -> ``img.memo.jpg``.

    Beside the input, or in ``out_dir``. An output never replaces one of the inputs, and two
    inputs never share an output: a later clash becomes ``img-2.memo.jpg``, ``img-3...``
    (compared case-insensitively, for macOS and Windows file systems).
    """
    taken = {_key(p) for p in paths}
    planned = []
    for path in paths:
        folder = out_dir if out_dir is not None else path.parent
        candidate, n = folder / f"{path.stem}{suffix}", 2
        while _key(candidate) in taken:
            candidate, n = folder / f"{path.stem}-{n}{suffix}", n + 1
        taken.add(_key(candidate))
        planned.append(candidate)
    return planned


def _encode_jpeg(bgr: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError("JPEG encoding failed")
    return buf.tobytes()


def _encode_png(gray: np.ndarray, info: dict[str, str]) -> bytes:
    import io

    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    for key, value in info.items():
        meta.add_text(key, value)
    buf = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


# --- batch driver -------------------------------------------------------------------------

@dataclass
class Explained:
    """What happened to one input: its picture and score, or why it failed."""

    source: Path
    output: Path | None = None
    score: float | None = None
    peak: float | None = None  # raw Grad-CAM maximum, in score units
    flat: bool = False  # no region raises the score: the map is all zeros
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _net_input(predictor: Predictor, path: Path):
    """The network input exactly as ``memo score`` builds it (so the scores agree)."""
    try:
        return predictor.net_input(predictor.load_photo(path)), None
    except FileNotFoundError:
        return None, "no such file"
    except DECODE_ERRORS as e:
        return None, describe_decode_error(e)


def explain_images(
    loaded,
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    *,
    layer: str | None = None,
    alpha: float = 0.5,
    side_by_side: bool = False,
    heatmap_only: bool = False,
    batch_size: int = 16,
    threads: int | None = None,
) -> Iterator[Explained]:
    """Grad-CAM pictures for image files, batch by batch; one result per input, in order.

    Runs on the device the model is on. A file that cannot be read or written yields a
    result with ``error`` set and the rest carry on.

    Args:
        loaded: a :class:`~memocli.predictor.Predictor` (or a
            :class:`~memocli.checkpoint.LoadedModel` or bare :class:`VNet`: see
            :meth:`Predictor.of <memocli.predictor.Predictor.of>`).
        paths: image files.
        out_dir: folder for the pictures (created); None: beside each input.
        layer: backbone stage or block (``layer3``, ``layer4.2``); None: the last block.
        alpha: heatmap weight in the blend, 0-1.
        side_by_side: photo | overlay with the score in a band below.
        heatmap_only: write the raw normalised map as 8-bit grayscale PNG
            (``img.memo.png``, with score, peak and layer in PNG text chunks) instead.
        batch_size: images per Grad-CAM forward/backward pass.
        threads: decode/render threads (default: up to 4).

    Raises:
        MemoError: at once (not on first iteration), for a bad layer, alpha or flags, or an
            unusable ``out_dir``.
    """
    predictor = Predictor.of(loaded)
    if side_by_side and heatmap_only:
        raise MemoError("--side-by-side and --heatmap-only exclude each other")
    if not 0.0 <= alpha <= 1.0:
        raise MemoError(f"alpha must be between 0 and 1, got {alpha}")
    if batch_size < 1:
        raise MemoError(f"batch size must be at least 1, got {batch_size}")
    layer = resolve_layer(predictor.model, layer)
    sources = [Path(p) for p in paths]
    folder = Path(out_dir) if out_dir is not None else None
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise MemoError(f"{folder}: exists and is not a folder") from None
        except OSError as e:
            raise MemoError(f"{folder}: cannot create output folder ({os_reason(e)})") from None
    targets = output_paths(sources, folder, HEATMAP_SUFFIX if heatmap_only else OVERLAY_SUFFIX)
    return _explain_batches(predictor.in_precision("fp32"), sources, targets, layer, alpha,
                            side_by_side, heatmap_only, batch_size, threads or decode_threads())


@dataclass
class CamMap:
    """One photo's Grad-CAM map (``[h, w]`` in [0, 1]) and score, or why it failed."""

    source: Path
    cam: np.ndarray | None = None
    score: float | None = None
    peak: float | None = None  # raw Grad-CAM maximum, in score units
    flat: bool = False
    error: str | None = None


def cam_maps(predictor: Predictor, sources: Sequence[Path], layer: str, batch_size: int,
             pool: ThreadPoolExecutor) -> Iterator[list[CamMap]]:
    """Grad-CAM maps of image files: one list per batch, in input order.

    Files are decoded in ``pool``, exactly as ``memo score`` feeds them to the model.
    """
    with GradCAM(predictor.model, layer) as gcam:
        for start in range(0, len(sources), batch_size):
            batch = sources[start:start + batch_size]
            decoded = list(pool.map(lambda p: _net_input(predictor, p), batch))
            maps = [CamMap(path, error=reason)
                    for path, (_, reason) in zip(batch, decoded, strict=True)]
            ok = [i for i, (tensor, _) in enumerate(decoded) if tensor is not None]
            if ok:
                cams = gcam(torch.stack([decoded[i][0] for i in ok]))
                for j, i in enumerate(ok):
                    maps[i] = CamMap(batch[i], cams.cams[j].numpy(), float(cams.scores[j]),
                                     float(cams.peaks[j]), bool(cams.flat[j]))
            yield maps


def _explain_batches(predictor: Predictor, sources: list[Path], targets: list[Path],
                     layer: str, alpha: float, side_by_side: bool, heatmap_only: bool,
                     batch_size: int, threads: int) -> Iterator[Explained]:
    def finish(m: CamMap, target: Path) -> Explained:
        path, cam, score, peak, flat = m.source, m.cam, m.score, m.peak, m.flat
        try:
            image = np.asarray(load_image(path))  # full size, EXIF-upright RGB
        except DECODE_ERRORS as e:
            return Explained(path, error=describe_decode_error(e))
        try:
            if heatmap_only:
                size = (image.shape[1], image.shape[0])
                data = _encode_png(heatmap_gray(cam, size), {
                    "memo:score": f"{score:.6f}", "memo:cam_peak": f"{peak:.6g}",
                    "memo:layer": layer, "memo:model": predictor.model_id,
                })
            else:
                data = _encode_jpeg(render(image, cam, score, alpha, side_by_side))
            with atomic_write(target) as f:  # an interrupted run leaves no half picture
                f.write(data)
        except OSError as e:
            return Explained(path, score=score, peak=peak, flat=flat,
                             error=f"cannot write {target}: {os_reason(e)}")
        return Explained(path, target, score, peak, flat)

    done = 0
    with ThreadPoolExecutor(threads) as pool:
        for maps in cam_maps(predictor, sources, layer, batch_size, pool):
            jobs = [pool.submit(finish, m, targets[done + k]) if m.error is None else m
                    for k, m in enumerate(maps)]
            done += len(maps)
            for job in jobs:
                yield job.result() if isinstance(job, Future) else Explained(job.source,
                                                                             error=job.error)
