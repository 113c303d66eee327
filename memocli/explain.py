"""``memo explain``'s driver: which photos, which layer, where each picture goes.

Pictures go into one folder, :data:`DEFAULT_FOLDER` unless told otherwise, outside the
photo library: a photo manager importing the library (Lightroom, digiKam) would take a
picture written beside its photo for a new photo. Writing beside each photo is asked for
with ``out_dir=None``.

The maths is :mod:`memocli.gradcam`, the drawing :mod:`memocli.render`; the photos are fed
through a :class:`~memocli.predictor.Predictor`, exactly as ``memo score`` feeds them, so
the scores agree. Each photo is decoded once for both the network and the picture, unless
the network's decode was reduced (a large JPEG): then the picture is drawn on a full decode.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .decode import is_reduced, load_image, try_decode
from .errors import MemoError
from .files import atomic_write, decode_threads, make_output_folder, os_reason
from .gradcam import GradCAM, resolve_layer
from .predictor import Predictor
from .render import encode_jpeg, encode_png, explain_picture, heatmap_gray
from .scan import scan

OVERLAY_SUFFIX = ".memo.jpg"
HEATMAP_SUFFIX = ".memo.png"
#: Where ``memo explain`` writes its pictures unless told otherwise (in the current folder).
DEFAULT_FOLDER = Path("memo-explain")


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


@dataclass
class Explained:
    """What happened to one input: its picture and score, or why it failed."""

    source: Path
    output: Path | None = None
    score: float | None = None
    peak: float | None = None  # raw Grad-CAM maximum, in score units
    flat: bool = False  # no region raises the score: the map is all zeros
    error: str | None = None
    layer: str | None = None  # the layer explained

    @property
    def ok(self) -> bool:
        return self.error is None


def _decode(predictor: Predictor, path: Path) -> tuple[Image.Image | None, str | None]:
    """The photo as ``memo score`` decodes it, or why it cannot be."""
    return try_decode(lambda: predictor.load_photo(path), path)


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
    folder = make_output_folder(out_dir) if out_dir is not None else None
    targets = output_paths(sources, folder, HEATMAP_SUFFIX if heatmap_only else OVERLAY_SUFFIX)
    gradients = predictor.in_precision("fp32", engine="torch")  # Grad-CAM needs torch
    return _explain_batches(gradients, sources, targets, layer, alpha, side_by_side,
                            heatmap_only, batch_size, threads or decode_threads())


def explain_files(
    inputs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike | None,
    load: Callable[[], Predictor],
    *,
    include_hidden: bool = False,
    **options,
) -> Iterator[Explained]:
    """Grad-CAM pictures of the photos under ``inputs`` (files, and folders searched as
    ``memo score`` searches them, memo's own pictures passed over); one result per photo.

    What cannot be found or read is yielded (with ``error``) before ``load`` is called, and
    ``out_dir`` is checked then too, so mistakes are told before minutes of model loading.

    Args:
        inputs: image files and folders.
        out_dir: folder for the pictures (created); None: beside each photo.
        load: gives the model (it may load it); called once, when there is a photo.
        include_hidden: also look inside hidden folders.
        options: :func:`explain_images`'s keyword options.

    Raises:
        MemoError: ``out_dir`` cannot be used, or an option is bad (:func:`explain_images`).
        UnknownLayer: the model has no such ``layer``.
    """
    found = scan(inputs, include_hidden)
    for path, reason in found.problems:
        yield Explained(Path(path), error=reason)
    if out_dir is not None:
        make_output_folder(out_dir)
    if found.files:
        yield from explain_images(load(), [Path(f.path) for f in found.files], out_dir,
                                  **options)


@dataclass
class CamMap:
    """One photo's Grad-CAM map (``[h, w]`` in [0, 1]) and score, or why it failed."""

    source: Path
    cam: np.ndarray | None = None
    score: float | None = None
    peak: float | None = None  # raw Grad-CAM maximum, in score units
    flat: bool = False
    error: str | None = None
    photo: Image.Image | None = None  # as decoded for the network (Predictor.load_photo)


def cam_maps(predictor: Predictor, sources: Sequence[Path], layer: str, batch_size: int,
             pool: ThreadPoolExecutor) -> Iterator[list[CamMap]]:
    """Grad-CAM maps of image files: one list per batch, in input order.

    Files are decoded in ``pool``, exactly as ``memo score`` feeds them to the model; each
    map keeps its decoded photo for the caller to draw on.
    """
    with GradCAM(predictor.model, layer) as gcam:
        for start in range(0, len(sources), batch_size):
            batch = sources[start:start + batch_size]
            decoded = list(pool.map(lambda p: _decode(predictor, p), batch))
            maps = [CamMap(path, error=reason)
                    for path, (_, reason) in zip(batch, decoded, strict=True)]
            ok = [i for i, (photo, _) in enumerate(decoded) if photo is not None]
            if ok:
                inputs = pool.map(lambda i, d=decoded: predictor.net_input(d[i][0]), ok)
                cams = gcam(torch.stack(list(inputs)))
                for j, i in enumerate(ok):
                    maps[i] = CamMap(batch[i], cams.cams[j].numpy(), float(cams.scores[j]),
                                     float(cams.peaks[j]), bool(cams.flat[j]),
                                     photo=decoded[i][0])
            yield maps


def _explain_batches(predictor: Predictor, sources: list[Path], targets: list[Path],
                     layer: str, alpha: float, side_by_side: bool, heatmap_only: bool,
                     batch_size: int, threads: int) -> Iterator[Explained]:
    def finish(m: CamMap, target: Path) -> Explained:
        path, cam, score, peak, flat = m.source, m.cam, m.score, m.peak, m.flat
        photo, failure = try_decode(lambda: load_image(path), path) if is_reduced(m.photo) else (m.photo, None)
        if photo is None:  # the picture is drawn at full size, EXIF-upright
            return Explained(path, error=failure)
        image = np.asarray(photo)
        try:
            if heatmap_only:
                size = (image.shape[1], image.shape[0])
                data = encode_png(heatmap_gray(cam, size), {
                    "memo:score": f"{score:.6f}", "memo:cam_peak": f"{peak:.6g}",
                    "memo:layer": layer, "memo:model": predictor.model_id,
                })
            else:
                data = encode_jpeg(explain_picture(image, cam, score, alpha, side_by_side))
            with atomic_write(target) as f:  # an interrupted run leaves no half picture
                f.write(data)
        except OSError as e:
            return Explained(path, score=score, peak=peak, flat=flat,
                             error=f"cannot write {target}: {os_reason(e)}")
        return Explained(path, target, score, peak, flat, layer=layer)

    done = 0
    with ThreadPoolExecutor(threads) as pool:
        for maps in cam_maps(predictor, sources, layer, batch_size, pool):
            jobs = [pool.submit(finish, m, targets[done + k]) if m.error is None else m
                    for k, m in enumerate(maps)]
            done += len(maps)
            for job in jobs:
                yield job.result() if isinstance(job, Future) else Explained(job.source,
                                                                             error=job.error)
