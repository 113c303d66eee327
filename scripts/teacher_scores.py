#!/usr/bin/env python
"""Score a folder of photos with ResMem (the teacher) and write a LaMem-style split file.

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

ResMem predicts LaMem hit rates (mean about 0.75 on its training data); LNSIM's scores
are hit rates of a different game (mean about 0.60). memo never mixes the two in one
output: see docs/training.md, "Several sources".

Usage:
    pip install resmem        # University of Chicago non-commercial licence
    python scripts/teacher_scores.py ../shared/datasets/pool/images pool-teacher.txt
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from memocli.formats import photo_extensions


def done_names(out: Path) -> set[str]:
    """Names already scored in ``out`` (a partial last line from a crash is dropped)."""
    if not out.is_file():
        return set()
    text = out.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):  # cut off mid-line: rewrite without it
        text = text[: text.rfind("\n") + 1]
        out.write_text(text, encoding="utf-8")
    return {line.split(" ", 1)[0] for line in text.splitlines() if line.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder of photos (not searched recursively)")
    parser.add_argument("out", type=Path, help="split file to write or continue")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    try:
        from resmem import ResMem, transformer
    except ImportError:
        raise SystemExit("ResMem is not installed: pip install resmem") from None

    names = sorted(p.name for p in args.folder.iterdir()
                   if p.suffix.lower() in photo_extensions() and p.is_file())
    seen = done_names(args.out)
    todo = sorted((n for n in names if n not in seen),
                  key=lambda n: hashlib.sha1(n.encode()).hexdigest())
    print(f"{len(names)} photos, {len(seen)} already scored, {len(todo)} to go", file=sys.stderr)
    model = ResMem(pretrained=True).to(args.device).eval()
    with torch.inference_mode(), open(args.out, "a", encoding="utf-8") as out:
        for start in range(0, len(todo), args.batch_size):
            batch, tensors = [], []
            for name in todo[start:start + args.batch_size]:
                try:
                    with Image.open(args.folder / name) as image:
                        tensors.append(transformer(image.convert("RGB")))
                    batch.append(name)
                except (OSError, UnidentifiedImageError) as e:
                    print(f"skipped {name}: {e}", file=sys.stderr)
            if not batch:
                continue
            scores = model(torch.stack(tensors).to(args.device)).flatten().tolist()
            out.writelines(f"{n} {s:.6f}\n" for n, s in zip(batch, scores, strict=True))
            out.flush()
            print(f"{start + len(batch)}/{len(todo)}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
