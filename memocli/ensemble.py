"""Ensembles of memo models: a small JSON manifest naming its member checkpoints by digest,
scored as one model (``--weights accurate``).

A photo's ensemble score is ``intercept + slope * mean_k((s_k - mean_k) / std_k)``: each
member's score ``s_k`` standardised by its mean and standard deviation over the photos the
ensemble was fitted on (``memo fit-ensemble``), the mean of those mapped back to a score
scale by least squares. The manifest holds no weights::

    {"format": "memo-ensemble", "format_version": 1,
     "members": [{"weights": "r50", "sha256": "…", "mean": 0.61, "std": 0.07}, …],
     "scale": {"slope": 0.05, "intercept": 0.6}, "fitted_on": {…}}

A member's ``weights`` is a model name (``memo models``) or a path relative to the
manifest's folder. It loads only if its file's digest is the one recorded, so the
manifest's content names its members exactly, and the model id, made from the manifest's
digest, changes with any of them. A member with ``"mirror": true`` scores the mirror image
of each photo: two members of one checkpoint, one mirrored, with no standardising
(``--weights stable``, :func:`mirror_average`) score each photo as the mean of its own and
its mirror image's scores (test-time augmentation, at twice the work).

:class:`EnsemblePredictor` is a :class:`~memocli.predictor.Predictor` whose forward pass
runs each member's own Predictor (its own engine; members of one checkpoint share one) on
the same decoded batch; everything else (batches, caching, reports) is the Predictor's.
Its pooled features, used for bursts and Grad-CAM, are the first member's.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .catalog import named, resolve_weights
from .device import pick_device
from .errors import MemoError
from .files import atomic_write, hash_file
from .predictor import Predictor

FORMAT = "memo-ensemble"
FORMAT_VERSION = 1
MAX_MEMBERS = 8
_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_manifest(path: str | os.PathLike) -> bool:
    """Whether ``--weights`` names an ensemble manifest (a ``.json`` file) rather than a
    checkpoint."""
    return Path(path).suffix.lower() == ".json"


@dataclass(frozen=True)
class Member:
    """One member: its checkpoint (a model name or a path), the checkpoint's SHA-256, and
    its scores' mean and standard deviation on the photos the ensemble was fitted on."""

    weights: str
    sha256: str
    mean: float
    std: float
    mirror: bool = False  # scores the mirror image of each photo


@dataclass(frozen=True)
class Manifest:
    """An ensemble: its members and the affine map of their mean z-score to a score."""

    members: tuple[Member, ...]
    slope: float
    intercept: float
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "members": [{k: v for k, v in asdict(m).items() if k != "mirror" or v}
                        for m in self.members],
            "scale": {"slope": self.slope, "intercept": self.intercept},
            "fitted_on": self.fitted_on}, indent=2) + "\n"

    def write(self, path: str | os.PathLike) -> None:
        """Write the manifest atomically."""
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())

    def combine(self, member_scores: list[torch.Tensor]) -> torch.Tensor:
        """The ensemble score from each member's scores (same photos, member order)."""
        z = [(s.double() - m.mean) / m.std for s, m in zip(member_scores, self.members,
                                                            strict=True)]
        return (self.intercept + self.slope * torch.stack(z).mean(0)).float()


def _number(value: Any, path: Path, what: str, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        raise MemoError(f"{path}: ensemble manifest's {what} is not a "
                        f"{'positive' if positive else 'finite'} number")
    return float(value)


def read_manifest(path: str | os.PathLike) -> Manifest:
    """The manifest at ``path``, checked field by field.

    Raises:
        MemoError: unreadable, not JSON, not a memo ensemble, or a field out of bounds.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise MemoError(f"{path}: cannot read ensemble manifest: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MemoError(f"{path}: not a memo ensemble manifest (not JSON: {e})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise MemoError(f"{path}: not a memo ensemble manifest (no '{FORMAT}' format)")
    if raw.get("format_version") != FORMAT_VERSION:
        raise MemoError(f"{path}: ensemble format version {raw.get('format_version')!r} is "
                        f"not {FORMAT_VERSION}; upgrade memo")
    members = raw.get("members")
    if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
        raise MemoError(f"{path}: an ensemble needs 1 to {MAX_MEMBERS} members")
    parsed = []
    for k, m in enumerate(members, 1):
        if (not isinstance(m, dict) or not isinstance(m.get("weights"), str)
                or not _SHA256.fullmatch(str(m.get("sha256")))):
            raise MemoError(f"{path}: member {k} needs 'weights' (a name or path) and "
                            "'sha256' (64 hex digits)")
        if not isinstance(m.get("mirror", False), bool):
            raise MemoError(f"{path}: member {k}'s 'mirror' is not true or false")
        parsed.append(Member(m["weights"], m["sha256"],
                             _number(m.get("mean"), path, f"member {k} mean"),
                             _number(m.get("std"), path, f"member {k} std", positive=True),
                             m.get("mirror", False)))
    scale = raw.get("scale") if isinstance(raw.get("scale"), dict) else {}
    fitted_on = raw.get("fitted_on") if isinstance(raw.get("fitted_on"), dict) else {}
    return Manifest(tuple(parsed), _number(scale.get("slope"), path, "scale slope"),
                    _number(scale.get("intercept"), path, "scale intercept"), fitted_on)


def member_reference(weights: str | os.PathLike, manifest: Path) -> str:
    """How a manifest at ``manifest`` refers to a member: a model name as given, else the
    checkpoint's path relative to the manifest's folder (absolute if on another drive)."""
    if named(os.fspath(weights)) is not None and not Path(weights).exists():
        return os.fspath(weights).lower()
    try:
        return Path(os.path.relpath(Path(weights).resolve(),
                                    manifest.resolve().parent)).as_posix()
    except ValueError:
        return str(Path(weights).resolve())


def member_path(member: Member, manifest: Path) -> Path:
    """The checkpoint file a member refers to (a model name through the catalogue)."""
    if named(member.weights) is not None:
        return resolve_weights(member.weights)
    return manifest.parent / member.weights


class EnsemblePredictor(Predictor):
    """The members' Predictors as one (see the module docstring)."""

    def __init__(self, members: list[Predictor], manifest: Manifest, checkpoint_id: str,
                 origin: str | os.PathLike):
        first = members[0]
        for other in members[1:]:
            if (other.cfg.input_size, other.cfg.mean, other.cfg.std) != (
                    first.cfg.input_size, first.cfg.mean, first.cfg.std):
                raise MemoError(f"{origin}: the ensemble's members need the same input "
                                f"(size, normalisation); {other.origin} differs from "
                                f"{first.origin}")
        super().__init__(first.model, first.device, first.dtype_name,
                         checkpoint_id=checkpoint_id, meta={"ensemble": manifest.to_json()},
                         origin=origin, engine=first.engine, keep_engines=first.keep_engines)
        self.members = members
        self.manifest = manifest

    @classmethod
    def from_manifest(cls, path: str | os.PathLike, device: torch.device | str = "auto",
                      precision: str = "auto", engine: str = "auto",
                      keep_engines: bool = True) -> EnsemblePredictor:
        """Load every member of the manifest at ``path``, each checked against its digest."""
        path = Path(path)
        manifest = read_manifest(path)
        dev = device if isinstance(device, torch.device) else pick_device(device)
        members, loaded = [], {}
        for member in manifest.members:
            where = member_path(member, path)
            predictor = loaded.get(where) or Predictor.from_checkpoint(
                where, dev, precision, engine, keep_engines=keep_engines)
            loaded[where] = predictor
            if not predictor.checkpoint_id.endswith(f"-{member.sha256[:16]}"):
                raise MemoError(
                    f"{path}: member {member.weights} is not the checkpoint the ensemble was "
                    f"fitted with (digest {predictor.checkpoint_id.rsplit('-', 1)[-1]}, "
                    f"expected {member.sha256[:16]}); make it again (memo fit-ensemble, or "
                    "memo mirror-average for a mirror average)")
            members.append(predictor)
        return cls(members, manifest, f"ensemble-{hash_file(path)[:16]}", path)

    def in_precision(self, precision: str, engine: str | None = None) -> EnsemblePredictor:
        """Every member in another precision (and engine)."""
        converted: dict[int, Predictor] = {}
        for m in self.members:  # members that shared a Predictor still share one
            converted[id(m)] = converted.get(id(m)) or m.in_precision(precision, engine)
        return EnsemblePredictor([converted[id(m)] for m in self.members],
                                 self.manifest, self.checkpoint_id, self.origin)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ensemble's scores ``[B]`` and the first member's last-block pooled features."""
        scores, last = [], None
        for member, about in zip(self.members, self.manifest.members, strict=True):
            s, features = member.forward(x.flip(-1) if about.mirror else x)
            scores.append(s)
            last = last if last is not None else features
        return self.manifest.combine(scores), last


def mirror_average(weights: str | os.PathLike, manifest: Path) -> Manifest:
    """The manifest at ``manifest`` that scores each photo with ``weights`` (a checkpoint
    path or a model name) as the mean of its own and its mirror image's scores."""
    ref, digest = member_reference(weights, manifest), hash_file(resolve_weights(weights))
    return Manifest((Member(ref, digest, 0.0, 1.0), Member(ref, digest, 0.0, 1.0, mirror=True)),
                    slope=1.0, intercept=0.0,
                    fitted_on={"fit": "none: the mean of a photo's and its mirror image's "
                                      "scores"})


def load_predictor(path: str | os.PathLike, device: torch.device | str = "auto",
                   precision: str = "auto", engine: str = "auto",
                   keep_engines: bool = True) -> Predictor:
    """The Predictor ``--weights PATH`` means: an ensemble for a manifest, else a
    checkpoint's (``keep_engines``: see :class:`~memocli.predictor.Predictor`)."""
    if is_manifest(path):
        return EnsemblePredictor.from_manifest(path, device, precision, engine, keep_engines)
    return Predictor.from_checkpoint(path, device, precision, engine,
                                     keep_engines=keep_engines)

