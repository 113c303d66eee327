"""Labelled datasets (LaMem layout or CSV manifest) and the transforms models train and
score with (decoding: :mod:`memocli.decode`)."""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .decode import describe_decode_error, header_failure, load_image
from .errors import MemoError
from .registry import AUGMENTATIONS, ModelConfig


@dataclass(frozen=True)
class LabeledImage:
    """One training/evaluation example: an image file and its memorability score."""

    path: Path
    score: float


class DatasetError(MemoError):
    """A dataset failed validation; ``problems`` lists each ``file:line: reason`` found.

    ``stopped_at`` is set when checking stopped at :data:`MAX_PROBLEMS` problems (the
    ``file:line`` of the last): the rest of the file was not checked.
    """

    def __init__(self, problems: list[str], stopped_at: str | None = None):
        self.problems = problems
        self.stopped_at = stopped_at
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        count = f"{len(problems)} problem(s)"
        if stopped_at:
            count = f"at least {count} (checking stopped at {stopped_at})"
        super().__init__(f"dataset has {count}:\n  {shown}{more}")


#: Checking a split stops after this many problems: a list of a few dozen says what is
#: wrong, and a 100,000-line file of missing images need not be checked to the end.
MAX_PROBLEMS = 50
#: The largest score magnitude accepted. LaMem's scores are hit rates (0-1); a source on
#: another scale (a teacher model's, for a head of its own) may be larger, but not so
#: large that its squared error overflows float32 (1e30 trained into a loss of inf).
SCORE_LIMIT = 1000.0


class _TooMany(Exception):
    """Raised by :class:`_Problems` when :data:`MAX_PROBLEMS` are reached."""


class _Problems:
    """The problems of one split file so far (``file:line: reason``); stops at the limit."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.last = ""

    def add(self, where: str, reason: str) -> None:
        self.items.append(f"{where}: {reason}")
        self.last = where
        if len(self.items) >= MAX_PROBLEMS:
            raise _TooMany


def eval_transform(cfg: ModelConfig):
    """Deterministic preprocessing: squash-resize to the model's square input, normalise."""
    from torchvision import transforms as T

    return T.Compose([
        T.Resize((cfg.input_size, cfg.input_size), antialias=True),
        T.ToTensor(),
        T.Normalize(cfg.mean, cfg.std),
    ])


class Reframe:
    """A person's slight re-crop of a PIL image: up to ``share`` off its width and,
    independently, off its height, at a random place (torch's RNG, seeded per worker)."""

    def __init__(self, share: float = 0.05):
        self.share = share

    def box(self, image) -> tuple[int, int, int, int]:
        """A random ``(left, top, right, bottom)`` inside ``image``."""
        import torch

        u = torch.rand(4).tolist()
        width = round(image.width * (1 - self.share * u[0]))
        height = round(image.height * (1 - self.share * u[1]))
        left = round((image.width - width) * u[2])
        top = round((image.height - height) * u[3])
        return left, top, left + width, top + height

    def __call__(self, image):
        return image.crop(self.box(image))


class TwoViews:
    """Two independent draws of ``transform`` of one image, stacked: ``[2, C, H, W]``."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, image):
        import torch

        return torch.stack([self.transform(image), self.transform(image)])


class NudgedViews:
    """A :class:`Reframe` draw of one image and the same frame nudged, stacked
    ``[2, C, H, W]``: each edge of the second moved by up to ``share`` of the image's width
    or height (at least a pixel) either way, both mirrored or neither. The two differ only
    as a re-crop of a few pixels, or a shift, does, which is what ``--consistency`` should
    pull together when the pair is to teach stability to small edits and nothing else."""

    def __init__(self, cfg: ModelConfig, share: float = 0.015):
        self.share = share
        self.reframe = Reframe()
        self.finish = eval_transform(cfg)  # each view at scoring's scale

    def nudged(self, image, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """``box`` with each edge moved at random, kept inside ``image`` and non-empty."""
        import torch

        reach = (max(1, round(image.width * self.share)), max(1, round(image.height * self.share)))
        left, top, right, bottom = (edge + int(torch.randint(-r, r + 1, ()))
                                    for edge, r in zip(box, reach * 2))
        left, top = min(max(0, left), image.width - 1), min(max(0, top), image.height - 1)
        return left, top, min(max(left + 1, right), image.width), \
            min(max(top + 1, bottom), image.height)

    def __call__(self, image):
        import torch

        box = self.reframe.box(image)
        views = torch.stack([self.finish(image.crop(b)) for b in (box, self.nudged(image, box))])
        return views.flip(-1) if torch.rand(1).item() < 0.5 else views


def train_transform(cfg: ModelConfig, augment: str = "flip"):
    """Augmenting preprocessing for training on images (see :data:`AUGMENTATIONS`)."""
    from torchvision import transforms as T

    if augment not in AUGMENTATIONS:
        raise MemoError(f"unknown augmentation '{augment}' (use {', '.join(AUGMENTATIONS)})")
    size = round(cfg.input_size * 1.14) if augment == "crop" else cfg.input_size
    steps = [T.Resize((size, size), antialias=True)]
    if augment == "crop":
        steps.append(T.RandomCrop(cfg.input_size))
    if augment == "reframe":
        steps.insert(0, Reframe())
    return T.Compose([
        *steps,
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(cfg.mean, cfg.std),
    ])


def split_names(fold: int) -> dict[str, str]:
    """LaMem split file stems for a fold: ``{'train': 'train_1', 'val': 'val_1', ...}``."""
    return {part: f"{part}_{fold}" for part in ("train", "val", "test")}


def _leaves(name: str) -> bool:
    """Whether the entry ``name`` points outside its folder (``../``, an absolute path).

    Judged on the name alone: an image that is a symbolic link into a shared store is fine.
    """
    return not name or Path(name).is_absolute() or ".." in Path(os.path.normpath(name)).parts


def _check_image(path: Path) -> str | None:
    """Why ``path`` cannot be used as an image, or None if its header reads fine."""
    if not path.is_file():
        return "no such image file"
    return header_failure(path)


def _score_problem(text: str) -> tuple[float | None, str | None]:
    """``(score, None)``, or ``(None, why)`` for a score that is not a number in range."""
    try:
        value = float(text)
    except ValueError:
        return None, f"score {text!r} is not a number"
    if not math.isfinite(value) or abs(value) > SCORE_LIMIT:
        return None, f"score {text} is not a finite number within ±{SCORE_LIMIT:g}"
    return value, None


class _Entries:
    """The examples of one split file, checked line by line as they are read."""

    def __init__(self, root: Path):
        self.root = root
        self.problems = _Problems()
        self.items: list[tuple[str, LabeledImage]] = []
        self._first: dict[str, tuple[str, float]] = {}  # name -> (where, score)

    def add(self, where: str, name: str, score_text: str) -> None:
        score, why = _score_problem(score_text)
        if why:
            self.problems.add(where, why)
            return
        if _leaves(name):
            self.problems.add(where, f"image path {name!r} leaves {self.root}")
            return
        key = os.path.normpath(name)
        first = self._first.setdefault(key, (where, score))
        if first[1] != score:
            self.problems.add(where, f"{name} is listed again with another score ({score:g}; "
                                     f"{first[0]} says {first[1]:g})")
            return
        self.items.append((where, LabeledImage(self.root / name, score)))

    def validated(self, source: Path) -> list[LabeledImage]:
        """The examples, once every image header reads; else :class:`DatasetError`."""
        for where, item in self.items:
            reason = _check_image(item.path)
            if reason:
                self.problems.add(where, f"{item.path.name}: {reason}")
        if self.problems.items:
            raise DatasetError(self.problems.items)
        if not self.items:
            raise MemoError(f"{source}: no examples")
        return [item for _, item in self.items]


def _read_checked(source: Path, images: Path,
                  fill: Callable[[_Entries], None]) -> list[LabeledImage]:
    """Let ``fill`` add the lines of ``source`` (names relative to ``images``), then check
    the images; stops with a :class:`DatasetError` at :data:`MAX_PROBLEMS` problems."""
    entries = _Entries(images)
    try:
        fill(entries)
        return entries.validated(source)
    except _TooMany:
        raise DatasetError(entries.problems.items, entries.problems.last) from None


def _lamem_split(root: Path, split: str) -> list[LabeledImage]:
    split_file = root / "splits" / f"{split}.txt"
    if not split_file.is_file():
        available = sorted(p.stem for p in (root / "splits").glob("*.txt"))
        raise MemoError(
            f"{split_file}: no such split file (available: {', '.join(available) or 'none'})"
        )
    rel = split_file.relative_to(root)

    def fill(entries: _Entries) -> None:
        # utf-8-sig: a byte-order mark at the start is not part of the first name
        with open(split_file, encoding="utf-8-sig", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                parts = line.split()
                where = f"{rel}:{lineno}"
                if len(parts) != 2:
                    entries.problems.add(where, f"expected 'name score', got {line.strip()!r}")
                    continue
                entries.add(where, *parts)

    return _read_checked(split_file, root / "images", fill)


def _csv_split(manifest: Path, split: str | None) -> list[LabeledImage]:
    def fill(entries: _Entries) -> None:
        with open(manifest, newline="", encoding="utf-8-sig", errors="replace") as f:
            reader = csv.DictReader(f)
            fields = set(reader.fieldnames or [])
            if not {"path", "score"} <= fields:
                raise MemoError(f"{manifest}: CSV manifest needs 'path' and 'score' columns")
            if split is not None and "split" not in fields:
                raise MemoError(f"{manifest}: no 'split' column, cannot select split '{split}'")
            base = split.rsplit("_", 1)[0] if split else None
            for row in reader:
                if split is None or row.get("split") in (split, base):
                    entries.add(f"{manifest.name}:{reader.line_num}", row.get("path") or "",
                                row.get("score") or "")

    return _read_checked(manifest, manifest.parent, fill)


def load_split(data: str | os.PathLike, split: str | None) -> list[LabeledImage]:
    """Read and validate one split of a dataset.

    Args:
        data: a LaMem-layout folder (``images/``, ``splits/NAME.txt``) or a CSV manifest
            with columns ``path,score[,split]`` (paths relative to the CSV).
        split: split name such as ``train_1``; for a CSV, None means every row, and
            ``train_1`` also matches rows whose split is plain ``train``.

    Raises:
        DatasetError: listing each malformed line, score that is not a finite number
            within ±:data:`SCORE_LIMIT`,
            name listed twice with different scores, path that leaves the dataset
            (``../``, absolute; symbolic links are followed) and missing or unreadable
            image, as ``file:line: reason`` (at most :data:`MAX_PROBLEMS`).
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
        except Exception as e:  # noqa: BLE001 - a decoder may raise anything (memocli.decode)
            raise MemoError(f"{item.path}: {describe_decode_error(e, item.path)}") from None
        return self.transform(image), item.score
