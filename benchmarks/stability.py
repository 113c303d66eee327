#!/usr/bin/env python
"""How far small edits move a photo's score: crops, resizes, JPEG re-encodes, mirrors.

A person who crops four pixels off a photo, saves it again or mirrors it expects the same
memorability. For a fixed sample of real photos (half LNSIM, half the diverse pool, chosen
by a hash of the name, so every run takes the same ones) it writes each edit as a file,
scores originals and edits the way ``memo score`` does (the installed model, its default
engine and precision, decoding from files), and prints the median and 95th percentile of
|score(edit) - score(original)| per edit, in score units (hit rate, 0-1).

Edits (each lossless PNG except the re-encode, so one edit is measured at a time):
``crop-4px`` (4 px off the right and bottom), ``crop-1%`` and ``crop-2%`` (that share of
width and height, half from each side), ``resize-90%`` (Lanczos), ``jpeg-q90``
(re-encoded at quality 90) and ``mirror``.

With ``--mirror-average`` it also scores the mirror image of the original and of every
edit and prints the same figures for the mean of a picture's and its mirror's score: what
test-time augmentation (a photo and its mirror in one batch) would give, at twice the
pictures per photo.

Usage:
    python benchmarks/stability.py [--photos 300] [--precision auto] [--engine auto]
                                   [--work /tmp/memo-stability] [--mirror-average]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "datasets"
SOURCES = [SHARED / "lnsim" / "images", SHARED / "pool" / "images"]


def crop_share(img: Image.Image, share: float) -> Image.Image:
    dx, dy = round(img.width * share / 2), round(img.height * share / 2)
    return img.crop((dx, dy, img.width - dx, img.height - dy))


EDITS = {
    "crop-4px": lambda im: im.crop((0, 0, im.width - 4, im.height - 4)),
    "crop-1%": lambda im: crop_share(im, 0.01),
    "crop-2%": lambda im: crop_share(im, 0.02),
    "resize-90%": lambda im: im.resize((round(im.width * 0.9), round(im.height * 0.9)),
                                       Image.LANCZOS),
    "jpeg-q90": None,  # re-encoded, not edited
    "mirror": ImageOps.mirror,
}


def sample(n: int) -> list[Path]:
    """``n`` photos, half from each source, in a fixed order (by a hash of the name)."""
    picked = []
    for folder in SOURCES:
        files = sorted(folder.glob("*.jpg"), key=lambda p: hashlib.sha1(p.name.encode()).digest())
        picked += files[: n // len(SOURCES)]
    return picked


def write_edits(photos: list[Path], work: Path) -> dict[str, list[Path]]:
    """Every edit of every photo as a file: ``{edit: [path per photo]}``."""
    out: dict[str, list[Path]] = {name: [] for name in EDITS}
    for photo in photos:
        with Image.open(photo) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            for name, edit in EDITS.items():
                stem = f"{photo.stem}-{name.replace('%', 'pc')}"
                if edit is None:
                    path = work / f"{stem}.jpg"
                    im.save(path, quality=90)
                else:
                    path = work / f"{stem}.png"
                    edit(im).save(path)
                out[name].append(path)
    return out


def mirrors(paths: list[Path]) -> list[Path]:
    """The mirror image of each file, written beside it as a lossless PNG."""
    out = []
    for path in paths:
        mirrored = path.with_name(f"{path.stem}-mirrored.png")
        with Image.open(path) as im:
            ImageOps.mirror(ImageOps.exif_transpose(im).convert("RGB")).save(mirrored)
        out.append(mirrored)
    return out


def score(predictor, paths: list[Path]) -> list[float]:
    scores = [float("nan")] * len(paths)
    for result in predictor.iter_predictions(paths, workers=0):
        for i, s in zip(result.indices, result.scores):
            scores[i] = s
        if result.failures:
            sys.exit(f"could not decode: {[str(paths[i]) for i, _ in result.failures]}")
    return scores


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--weights", default=None,
                        help="a checkpoint, manifest or model name, e.g. stable "
                             "(default: memo's)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--mirror-average", action="store_true",
                        help="also the figures for the mean score of a picture and its mirror")
    args = parser.parse_args()

    from memocli.catalog import resolve_weights
    from memocli.ensemble import load_predictor
    from memocli.files import default_weights_path
    from memocli.machine import describe_cpu

    photos = sample(args.photos)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        edits = write_edits(photos, work)
        weights = resolve_weights(args.weights) if args.weights else default_weights_path()
        predictor = load_predictor(weights, "auto", args.precision, args.engine)
        started = time.perf_counter()
        base = score(predictor, photos)
        rows = []
        for name, paths in edits.items():
            moved = [abs(a - b) for a, b in zip(score(predictor, paths), base)]
            rows.append((name, statistics.median(moved), percentile(moved, 0.95), max(moved)))
        seconds = time.perf_counter() - started
        averaged = []
        if args.mirror_average:
            work_photos = [work / f"{p.stem}-original.png" for p in photos]
            for photo, copy in zip(photos, work_photos):
                with Image.open(photo) as im:
                    ImageOps.exif_transpose(im).convert("RGB").save(copy)

            def mean_with_mirror(paths: list[Path]) -> list[float]:
                return [(a + b) / 2 for a, b in zip(score(predictor, paths),
                                                     score(predictor, mirrors(paths)))]

            base_avg = mean_with_mirror(work_photos)
            for name, paths in edits.items():
                moved = [abs(a - b) for a, b in zip(mean_with_mirror(paths), base_avg)]
                averaged.append((statistics.median(moved), percentile(moved, 0.95),
                                 max(moved)))
    print(f"{len(photos)} photos ({len(photos) // 2} LNSIM, {len(photos) // 2} pool), "
          f"model {predictor.model_id}")
    tta = "   mirror-average: median    p95    max" if averaged else ""
    print(f"{'edit':<12} {'median |d|':>11} {'p95 |d|':>9} {'max |d|':>9}{tta}")
    for i, (name, med, p95, top) in enumerate(rows):
        extra = "".join(f" {v:>9.4f}" for v in averaged[i]) if averaged else ""
        print(f"{name:<12} {med:>11.4f} {p95:>9.4f} {top:>9.4f}        {extra}")
    print(f"scored {len(photos) * (len(EDITS) + 1)} files in {seconds:.0f} s; "
          f"CPU {describe_cpu()}")


if __name__ == "__main__":
    main()
