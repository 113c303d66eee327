#!/usr/bin/env python
"""Score a folder of photos with a teacher model and write a LaMem-style split file.

Teachers: ResMem (``--teacher resmem``, the default) or any memo model (``--teacher r152``,
a name from ``memo models`` or a checkpoint), run through memo's own scoring path
(:class:`memocli.predictor.Predictor`, float32 unless ``--precision``).

ResMem is run as its documentation shows: ``ResMem(pretrained=True)`` in eval mode, its own
``transformer`` (resize to 256x256, centre crop 227, [0, 1] tensor) on
``Image.open(path).convert("RGB")``. Photos go through in batches, which changes nothing
per photo (no batch statistics in eval mode) and is faster than one at a time.

Photos are taken in a fixed pseudo-random order (by a hash of the name), so a run stopped
early has scored a fair sample of every part of the folder, not its first sources.

The output is ``name score`` lines, the layout ``memo train`` reads
(``--data FOLDER:SPLIT``). It is resumable: photos already in the file are skipped, and
each batch is appended and flushed as soon as it is scored, so an interrupted run loses
at most one batch. Photos that cannot be decoded are reported on stderr and left out.

``--names SPLIT_FILE`` scores only the photos a split file names (LNSIM's training photos,
say: its test photos stay out). ``--held-out K`` writes the photos with
``sha1(name) % 5 == K`` (the pool's held-out fifth, K = 0) to ``OUT_heldout.txt`` beside
``OUT``, never into ``OUT``, so ``memo train --data DIR:SPLIT`` cannot train on them.

ResMem predicts LaMem hit rates (mean about 0.75 on its training data); LNSIM's scores
are hit rates of a different game (mean about 0.60). memo never mixes the two in one
output: see docs/training.md, "Several sources".

Usage:
    pip install resmem        # University of Chicago non-commercial licence
    python scripts/teacher_scores.py ../shared/datasets/pool/images pool/splits/teacher.txt \
        --held-out 0
    python scripts/teacher_scores.py ../shared/datasets/lnsim/images lnsim-r152.txt \
        --teacher r152 --names ../shared/datasets/lnsim/splits/train_1.txt
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import sys
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from memocli.catalog import resolve_weights
from memocli.formats import photo_extensions
from memocli.predictor import Predictor


def done_names(out: Path) -> set[str]:
    """Names already scored in ``out`` (a partial last line from a crash is dropped)."""
    if not out.is_file():
        return set()
    text = out.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):  # cut off mid-line: rewrite without it
        text = text[: text.rfind("\n") + 1]
        out.write_text(text, encoding="utf-8")
    return {line.split(" ", 1)[0] for line in text.splitlines() if line.strip()}


def heldout_file(out: Path) -> Path:
    """Where ``--held-out`` writes the held-out photos' scores: ``OUT_heldout`` beside OUT."""
    return out.with_name(f"{out.stem}_heldout{out.suffix}")


def fifth(name: str) -> int:
    """The photo's fifth (0-4), fixed by its name."""
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % 5


def photo_names(folder: Path, names_file: Path | None) -> list[str]:
    """The photos to score: every image in ``folder``, or those ``names_file`` names."""
    if names_file is not None:
        return [line.split()[0] for line in names_file.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    return sorted(p.name for p in folder.iterdir()
                  if p.suffix.lower() in photo_extensions() and p.is_file())


def resmem_batches(paths: list[Path], batch_size: int, device: str):
    """``(indices, scores, failures)`` per batch, from ResMem as its documentation runs it."""
    try:
        from resmem import ResMem, transformer
    except ImportError:
        raise SystemExit("ResMem is not installed: pip install resmem") from None
    model = ResMem(pretrained=True).to(device).eval()
    for start in range(0, len(paths), batch_size):
        indices, tensors, failures = [], [], []
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                with Image.open(paths[i]) as image:
                    tensors.append(transformer(image.convert("RGB")))
                indices.append(i)
            except (OSError, UnidentifiedImageError) as e:
                failures.append((i, str(e)))
        scores = []
        if tensors:
            with torch.inference_mode():
                scores = model(torch.stack(tensors).to(device)).flatten().tolist()
        yield indices, scores, failures


def memo_batches(weights: str, paths: list[Path], batch_size: int, device: str,
                 precision: str):
    """``(indices, scores, failures)`` per batch, from a memo model's Predictor."""
    predictor = Predictor.from_checkpoint(resolve_weights(weights), device, precision, "auto")
    for batch in predictor.iter_predictions(paths, batch_size):
        yield batch.indices, batch.scores, batch.failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder of photos (not searched recursively)")
    parser.add_argument("out", type=Path, help="split file to write or continue")
    parser.add_argument("--teacher", default="resmem",
                        help="resmem, or a memo model name (r152) or checkpoint")
    parser.add_argument("--names", type=Path, help="score only the photos this split file names")
    parser.add_argument("--held-out", type=int, choices=range(5), metavar="K",
                        help="photos with sha1(name) %% 5 == K go to OUT_heldout, not OUT")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", help="a memo teacher's precision")
    args = parser.parse_args()
    held = heldout_file(args.out)
    names = photo_names(args.folder, args.names)
    seen = done_names(args.out) | (done_names(held) if args.held_out is not None else set())
    todo = sorted((n for n in names if n not in seen),
                  key=lambda n: hashlib.sha1(n.encode()).hexdigest())
    print(f"{len(names)} photos, {len(seen)} already scored, {len(todo)} to go", file=sys.stderr)
    paths = [args.folder / n for n in todo]
    batches = (resmem_batches(paths, args.batch_size, args.device) if args.teacher == "resmem"
               else memo_batches(args.teacher, paths, args.batch_size, args.device,
                                 args.precision))
    done = 0
    with contextlib.ExitStack() as files:
        out = files.enter_context(open(args.out, "a", encoding="utf-8"))
        aside = (files.enter_context(open(held, "a", encoding="utf-8"))
                 if args.held_out is not None else None)
        for indices, scores, failures in batches:
            for i, reason in failures:
                print(f"skipped {todo[i]}: {reason}", file=sys.stderr)
            for i, score in zip(indices, scores, strict=True):
                target = aside if aside and fifth(todo[i]) == args.held_out else out
                target.write(f"{todo[i]} {score:.6f}\n")
            for f in (out, aside):
                if f:
                    f.flush()
            done += len(indices) + len(failures)
            print(f"{done}/{len(todo)}", file=sys.stderr, flush=True)

if __name__ == "__main__":
    main()
