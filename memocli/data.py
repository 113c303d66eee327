"""Labelled datasets (LaMem layout or CSV manifest), image decoding and transforms."""

from __future__ import annotations

import csv
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from .errors import MemoError
from .files import read_failure
from .formats import MAX_PIXELS, is_raw, load_raw, open_image
from .registry import AUGMENTATIONS, ModelConfig


@dataclass(frozen=True)
class LabeledImage:
    """One training/evaluation example: an image file and its memorability score."""

    path: Path
    score: float


class DatasetError(MemoError):
    """A dataset failed validation; ``problems`` lists every ``file:line: reason``."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"dataset has {len(problems)} problem(s):\n  {shown}{more}")


def draft_jpeg(img: Image.Image, min_side: int | None) -> None:
    """Ask a not-yet-decoded JPEG for a DCT-scaled version whose sides stay at least
    1.5 x ``min_side`` (much faster than decoding a 12 MP photo in full and shrinking it;
    the margin keeps the final resize, and so the score, within 0.01 of a full decode's).
    Other formats, or no ``min_side``: nothing changes."""
    if min_side and img.format == "JPEG":
        w, h = img.size
        scale = min(w, h) / (1.5 * min_side)
        if scale >= 2:
            img.draft("RGB", (math.ceil(w / scale), math.ceil(h / scale)))


_REDUCED = "memo.reduced"  # Image.info key: decoded below full resolution (JPEG draft)


def load_image(path: str | os.PathLike, min_side: int | None = None) -> Image.Image:
    """Decode an image as upright RGB.

    EXIF orientation is applied; JPEGs are decoded at a reduced size when ``min_side``
    allows (:func:`draft_jpeg`; :func:`is_reduced` tells). HEIC/HEIF and camera RAW files
    are read as :mod:`memocli.formats` says.
    """
    if is_raw(path):
        image = load_raw(path, min_side)
        image.info[_REDUCED] = bool(min_side)  # its preview may have been drafted
        return image
    with open_image(path) as img:
        full_size = img.size
        draft_jpeg(img, min_side)
        reduced = img.size != full_size
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
        elif img.mode == "I;16" or img.mode.startswith("I"):
            rgb = img.point(lambda v: v / 256).convert("L").convert("RGB")
        else:
            rgb = img.convert("RGB")
    rgb.info[_REDUCED] = reduced
    return rgb


def is_reduced(image: Image.Image) -> bool:
    """Whether :func:`load_image` decoded ``image`` below the file's full resolution."""
    return bool(image.info.get(_REDUCED))


# What a corrupt, truncated, oversized or vanished image file raises while decoding.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def describe_decode_error(error: BaseException) -> str:
    """A short, user-facing reason for an image that could not be decoded."""
    if isinstance(error, Image.DecompressionBombError):
        limit = MAX_PIXELS // 1_000_000
        return f"refused: image too large to decode safely (over {limit} megapixels)"
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return read_failure(error)
    if isinstance(error, Image.UnidentifiedImageError):
        return "not a recognised image format"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"cannot decode image: {text}"


def eval_transform(cfg: ModelConfig):
    """Deterministic preprocessing: squash-resize to the model's square input, normalise."""
    from torchvision import transforms as T

    return T.Compose([
        T.Resize((cfg.input_size, cfg.input_size), antialias=True),
        T.ToTensor(),
        T.Normalize(cfg.mean, cfg.std),
    ])


def train_transform(cfg: ModelConfig, augment: str = "flip"):
    """Augmenting preprocessing for training on images (see :data:`AUGMENTATIONS`)."""
    from torchvision import transforms as T

    if augment not in AUGMENTATIONS:
        raise MemoError(f"unknown augmentation '{augment}' (use {', '.join(AUGMENTATIONS)})")
    size = cfg.input_size if augment == "flip" else round(cfg.input_size * 1.14)
    steps = [T.Resize((size, size), antialias=True)]
    if augment == "crop":
        steps.append(T.RandomCrop(cfg.input_size))
    return T.Compose([
        *steps,
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(cfg.mean, cfg.std),
    ])


def split_names(fold: int) -> dict[str, str]:
    """LaMem split file stems for a fold: ``{'train': 'train_1', 'val': 'val_1', ...}``."""
    return {part: f"{part}_{fold}" for part in ("train", "val", "test")}


def _inside(root: Path, candidate: Path) -> bool:
    try:
        candidate.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _check_image(path: Path) -> str | None:
    """Why ``path`` cannot be used as an image, or None if its header reads fine."""
    if not path.is_file():
        return "no such image file"
    try:
        open_image(path).close()
    except DECODE_ERRORS as e:
        return describe_decode_error(e)
    return None


def _parse_score(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _lamem_split(root: Path, split: str) -> list[LabeledImage]:
    split_file = root / "splits" / f"{split}.txt"
    if not split_file.is_file():
        available = sorted(p.stem for p in (root / "splits").glob("*.txt"))
        raise MemoError(
            f"{split_file}: no such split file (available: {', '.join(available) or 'none'})"
        )
    images_dir = root / "images"
    rel = split_file.relative_to(root)
    items, problems = [], []
    with open(split_file, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split()
            where = f"{rel}:{lineno}"
            if len(parts) != 2:
                problems.append(f"{where}: expected 'name score', got {line.strip()!r}")
                continue
            name, score_text = parts
            score = _parse_score(score_text)
            if score is None:
                problems.append(f"{where}: score {score_text!r} is not a number")
                continue
            image = images_dir / name
            if Path(name).is_absolute() or not _inside(images_dir, image):
                problems.append(f"{where}: image path {name!r} leaves {images_dir}")
                continue
            items.append((where, LabeledImage(image, score)))
    return _validated(items, problems, split_file)


def _csv_split(manifest: Path, split: str | None) -> list[LabeledImage]:
    root = manifest.parent
    items, problems = [], []
    with open(manifest, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        if not {"path", "score"} <= fields:
            raise MemoError(f"{manifest}: CSV manifest needs 'path' and 'score' columns")
        if split is not None and "split" not in fields:
            raise MemoError(f"{manifest}: no 'split' column, cannot select split '{split}'")
        base = split.rsplit("_", 1)[0] if split else None
        for row in reader:
            where = f"{manifest.name}:{reader.line_num}"
            if split is not None and row.get("split") not in (split, base):
                continue
            score = _parse_score(row.get("score") or "")
            if score is None:
                problems.append(f"{where}: score {row.get('score')!r} is not a number")
                continue
            name = row.get("path") or ""
            image = root / name
            if not name or Path(name).is_absolute() or not _inside(root, image):
                problems.append(f"{where}: image path {name!r} leaves {root}")
                continue
            items.append((where, LabeledImage(image, score)))
    return _validated(items, problems, manifest)


def _validated(items, problems, source: Path) -> list[LabeledImage]:
    for where, item in items:
        reason = _check_image(item.path)
        if reason:
            problems.append(f"{where}: {item.path.name}: {reason}")
    if problems:
        raise DatasetError(problems)
    if not items:
        raise MemoError(f"{source}: no examples")
    return [item for _, item in items]


def load_split(data: str | os.PathLike, split: str | None) -> list[LabeledImage]:
    """Read and validate one split of a dataset.

    Args:
        data: a LaMem-layout folder (``images/``, ``splits/NAME.txt``) or a CSV manifest
            with columns ``path,score[,split]`` (paths relative to the CSV).
        split: split name such as ``train_1``; for a CSV, None means every row, and
            ``train_1`` also matches rows whose split is plain ``train``.

    Raises:
        DatasetError: listing every malformed line, bad score, escaping path and
            missing or unreadable image, as ``file:line: reason``.
    """
    data = Path(data)
    if data.is_dir():
        if split is None:
            raise MemoError(f"{data}: a LaMem-layout folder needs a split name")
        return _lamem_split(data, split)
    if data.is_file() and data.suffix.lower() == ".csv":
        return _csv_split(data, split)
    raise MemoError(f"{data}: not a LaMem-layout folder or a .csv manifest")


def dataset_fingerprint(items: list[LabeledImage]) -> str:
    """A short digest of a split's file names and scores, for checkpoint metadata."""
    h = hashlib.sha256()
    for item in items:
        h.update(f"{item.path.name}\t{item.score:.6f}\n".encode())
    return h.hexdigest()[:16]


class ImageScoreDataset:
    """A torch-style dataset of (image tensor, target score) for labelled examples."""

    def __init__(self, items: list[LabeledImage], transform, min_side: int):
        self.items = items
        self.transform = transform
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        try:
            image = load_image(item.path, self.min_side)
        except DECODE_ERRORS as e:
            raise MemoError(f"{item.path}: {describe_decode_error(e)}") from None
        return self.transform(image), item.score
