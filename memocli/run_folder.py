"""A training run's folder (``memo train --out``): never overwrite another run by accident.

:func:`check_run_folder` is called before training starts. A folder that already holds
files is used only to continue the same run (``--resume`` on the same data, compared by
the split fingerprints its ``config.json`` recorded, per source) or when ``--force`` says to overwrite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import MemoError


def _holds_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def fold_dir(out: Path, k: int, folds: list[int]) -> Path:
    """Fold ``k``'s run folder: ``out`` itself when it is the only fold, else ``out/fold_K``."""
    return out / f"fold_{k}" if len(folds) > 1 else out


def data_identity(description: Any) -> Any:
    """What identifies a run's data in its description (``config.json``'s ``data``): each
    source's split fingerprints (and, with several sources, names and weights), not where
    the dataset lies."""
    if not isinstance(description, dict):
        return None
    if "sources" in description:
        return [[s.get("name"), s.get("weight"), s.get("fingerprints")]
                for s in description["sources"] if isinstance(s, dict)]
    return description.get("fingerprints")


def recorded_identity(run: Path) -> Any:
    """:func:`data_identity` of the run in ``run``, or None when it cannot be read."""
    try:
        config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data_identity(config.get("data")) if isinstance(config, dict) else None


def check_run_folder(out: Path, runs: dict[Path, dict[str, Any]], resume: bool,
                     force: bool) -> None:
    """Refuse to train into ``out`` when that would overwrite another run.

    Args:
        out: the ``--out`` folder.
        runs: each run folder this command will write (``out`` itself, or one per fold,
            see :func:`fold_dir`) with the description of the data it will train on
            (:meth:`memocli.sources.TrainingData.describe`).
        resume: ``--resume``: a run folder may hold a run on the same data.
        force: ``--force``: overwrite whatever is there.

    Raises:
        MemoError: ``out`` holds files and neither flag allows writing there.
    """
    if force or not _holds_files(out):
        return
    if not resume:
        raise MemoError(f"{out}: already holds a run (or other files); use another --out, "
                        "--resume to continue that run, or --force to overwrite it")
    for run, description in runs.items():
        if not _holds_files(run):
            continue
        recorded = recorded_identity(run)
        if recorded is None:
            raise MemoError(f"{run}: cannot tell what data the run there was trained on "
                            "(no readable config.json); use another --out, or --force to "
                            "overwrite it")
        if recorded != data_identity(description):
            raise MemoError(f"{run}: cannot resume, the training data changed (the run there "
                            "was trained on data with other split fingerprints); use another "
                            "--out, or --force to overwrite it")
