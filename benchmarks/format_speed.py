#!/usr/bin/env python
"""Photos per second for HEIC and camera RAW against JPEG, 12 MP each.

Makes ``--count`` photos of each kind from the LNSIM photos, upscaled to 4032x3024 (an
iPhone's size): JPEG (the baseline), HEIC (pillow-heif), DNG with a full-size embedded
preview JPEG (as CR2/NEF/ARW files carry) and DNG without a preview (developed at half
size by libraw). For each kind it times, in this process, after one warm-up photo:

* decode: ``memocli.decode.load_image`` as scoring calls it (one thread), photos/s;
* score: decode in worker processes + the default model (``Predictor.iter_predictions``),
  photos/s.

Writes nothing but its --work folder; not part of ``make test``. Record results in
``docs/performance.md``.

Usage:
    python benchmarks/format_speed.py [--count 8] [--device auto] [--work /tmp/memo-formats]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from photo_formats import write_dng, write_heic

DEFAULT_PHOTOS = HERE.parents[1] / "shared" / "datasets" / "lnsim" / "images"
SIZE = (4032, 3024)
KINDS = ("jpeg", "heic", "raw-preview", "raw-develop")


def make_photos(source: Path, count: int, work: Path) -> dict[str, list[Path]]:
    """``count`` photos of each kind in ``work`` (reused when already there)."""
    sources = sorted(source.glob("*.jpg"))[:count]
    if len(sources) < count:
        raise SystemExit(f"need {count} JPEGs in {source}")
    made: dict[str, list[Path]] = {kind: [] for kind in KINDS}
    for i, src in enumerate(sources):
        big = None
        for kind, name in zip(KINDS, (f"{i}.jpg", f"{i}.heic", f"p{i}.dng", f"d{i}.dng")):
            path = work / kind / name
            if not path.exists():
                big = big or Image.open(src).convert("RGB").resize(SIZE, Image.BICUBIC)
                path.parent.mkdir(parents=True, exist_ok=True)
                if kind == "jpeg":
                    big.save(path, quality=90)
                elif kind == "heic":
                    write_heic(path, image=big)
                else:
                    write_dng(path, preview="jpeg" if kind == "raw-preview" else None,
                              orientation=1, sensor=SIZE, preview_image=big)
            made[kind].append(path)
    return made


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:6.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path, default=Path("/tmp/memo-formats"))
    args = parser.parse_args()

    import torch

    from memocli.decode import load_image
    from memocli.files import default_weights_path
    from memocli.predictor import Predictor

    made = make_photos(args.photos, args.count, args.work)
    predictor = Predictor.from_checkpoint(default_weights_path(), args.device)
    min_side = predictor.cfg.input_size
    print(f"{args.count} photos of {SIZE[0]}x{SIZE[1]} per kind; device {predictor.device}, "
          f"{predictor.dtype_name}, torch {torch.__version__}, {torch.get_num_threads()} "
          "threads")
    print("kind          decode photos/s  score photos/s")
    for kind, paths in made.items():
        load_image(paths[0], min_side)
        started = time.perf_counter()
        for path in paths:
            load_image(path, min_side)
        decode = time.perf_counter() - started
        list(predictor.iter_predictions(paths[:1]))
        started = time.perf_counter()
        done = sum(len(b.indices) for b in predictor.iter_predictions(paths))
        score = time.perf_counter() - started
        print(f"{kind:<13} {rate(len(paths), decode):>15}  {rate(done, score):>14}")


if __name__ == "__main__":
    main()
