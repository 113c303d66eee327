#!/usr/bin/env python
"""Milliseconds to read one 12 MP camera JPEG the ways memo does, on one core.

Makes a 4000x3000 JPEG (quality 90) by upscaling the first LNSIM photo, then times, after a
warm-up, the median of ``--repeat`` runs of:

* full decode: ``PIL.Image.open(...).convert("RGB")``, every pixel;
* reduced decode: ``memocli.decode.load_image(path, input_size)``, libjpeg's DCT scaling
  (what scoring does);
* reduced decode + network input: the same plus ``memocli.data.eval_transform``;
* SHA-256 of the file (``memocli.files.hash_file``), as GB/s.

Prints the CPU's features too. Writes nothing but its --work folder; not part of
``make test``. The figures are quoted in docs/performance.md and docs/scaling.md.

Usage:
    python benchmarks/decode_speed.py [--photos DIR] [--repeat 20] [--work DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_PHOTOS = HERE.parents[1] / "shared" / "datasets" / "lnsim" / "images"


def median_ms(action, repeat: int) -> float:
    action()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS,
                        help="folder whose first JPEG is upscaled")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--work", type=Path, default=Path("/tmp/memo-decode-speed"))
    args = parser.parse_args()

    import torch

    from memocli.data import eval_transform
    from memocli.decode import load_image
    from memocli.files import hash_file
    from memocli.machine import describe_cpu
    from memocli.registry import get_config

    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    big = args.work / "12mp.jpg"
    with Image.open(sorted(args.photos.glob("*.jpg"))[0]) as img:
        img.convert("RGB").resize((4000, 3000), Image.BICUBIC).save(big, quality=90)
    cfg = get_config("vnet_r50")
    transform = eval_transform(cfg)

    def full() -> None:
        with Image.open(big) as img:
            img.convert("RGB")

    size_mb = big.stat().st_size / 1e6
    print(f"CPU: {describe_cpu()}")
    print(f"photo: 4000x3000 JPEG, {size_mb:.1f} MB; median of {args.repeat}, one core")
    print(f"full decode:                      {median_ms(full, args.repeat):6.1f} ms")
    print(f"reduced decode (scoring):         "
          f"{median_ms(lambda: load_image(big, cfg.input_size), args.repeat):6.1f} ms")
    print(f"reduced decode + network input:   "
          f"{median_ms(lambda: transform(load_image(big, cfg.input_size)), args.repeat):6.1f}"
          " ms")
    hash_ms = median_ms(lambda: hash_file(big), args.repeat)
    print(f"SHA-256 of the file:              {hash_ms:6.1f} ms "
          f"({size_mb / hash_ms:.2f} GB/s)")


if __name__ == "__main__":
    main()
