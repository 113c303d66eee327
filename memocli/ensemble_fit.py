"""Fitting an ensemble (``memo fit-ensemble``): each member's scores on labelled photos,
through memo's scoring pipeline and cache, and the manifest made from them
(:mod:`memocli.ensemble`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .ensemble import Manifest, Member
from .errors import MemoError


def fit_manifest(references: list[str], digests: list[str], member_scores: list[list[float]],
                 targets: list[float], fitted_on: dict[str, Any]) -> Manifest:
    """The ensemble of members (``references``, ``digests``) whose scores on some labelled
    photos are ``member_scores`` (member by member, photo order): each member's mean and
    (population) standard deviation there, and the least-squares map of the mean z-score
    to ``targets``."""
    scores = torch.tensor(member_scores, dtype=torch.float64)  # [K, N]
    mean, std = scores.mean(1), scores.std(1, correction=0)
    if (std <= 0).any():
        raise MemoError("a member gives every photo the same score: it cannot be "
                        "standardised")
    z = ((scores - mean[:, None]) / std[:, None]).mean(0)
    design = torch.stack([z, torch.ones_like(z)], 1)
    y = torch.tensor(targets, dtype=torch.float64).unsqueeze(1)
    slope, intercept = torch.linalg.lstsq(design, y).solution.squeeze(1).tolist()
    members = tuple(Member(r, d, float(m), float(s))
                    for r, d, m, s in zip(references, digests, mean, std, strict=True))
    return Manifest(members, slope, intercept, fitted_on)


def scores_of(cache, weights: str | os.PathLike, paths: list[Path], **scoring) -> list[float]:
    """Raw scores of ``paths`` (in order) by the model ``weights``, through memo's scoring
    pipeline and ``cache`` (a member scored before is not scored again).

    Raises:
        MemoError: a photo could not be scored (a fit over part of the photos would mislead).
    """
    from .score import score_paths  # imports the scoring pipeline only when used

    report = score_paths(paths, cache, weights=weights, **scoring)
    for where, reason in report.problems + report.known_failures:
        raise MemoError(f"{where}: {reason}")
    by_path = {os.path.abspath(f.abspath): f.raw_score for f in report.files}
    missing = [p for p in paths if os.path.abspath(p) not in by_path]
    if missing:
        raise MemoError(f"{missing[0]}: not a photo memo scores")
    return [by_path[os.path.abspath(p)] for p in paths]
