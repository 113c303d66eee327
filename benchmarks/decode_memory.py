#!/usr/bin/env python
"""Peak memory of decoding huge images in threads, with and without the pixel budget.

Writes two 10000x10000 PNGs (100 megapixels each, under memo's 180 MP limit) into --work,
then, in a fresh process per mode, decodes both at once in two threads with
``memocli.decode.load_image`` (as report thumbnails and explain do) and prints the peak RSS:

* ``bounded``: the shared ``memocli.pixel_budget.DECODE_BUDGET`` (180 MP at once);
* ``unbounded``: a budget too large to ever wait (memo before the budget).

Not part of ``make test``. Usage:
    python benchmarks/decode_memory.py [--work /tmp/memo-decode-memory]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SIDE = 10_000


def make_images(work: Path) -> list[Path]:
    from PIL import Image

    work.mkdir(parents=True, exist_ok=True)
    paths = [work / f"big{i}.png" for i in range(2)]
    for i, path in enumerate(paths):
        if not path.exists():
            Image.new("RGB", (SIDE, SIDE), (40 * i, 90, 200)).save(path, compress_level=1)
    return paths


def measure(mode: str, paths: list[Path]) -> None:
    from memocli import decode
    from memocli.pixel_budget import PixelBudget

    if mode == "unbounded":
        decode.DECODE_BUDGET = PixelBudget(10**12)
    with ThreadPoolExecutor(2) as pool:
        sizes = list(pool.map(lambda p: decode.load_image(p, 256).size, paths))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{mode:9s} 2 x {sizes[0][0]}x{sizes[0][1]} PNG in 2 threads: peak RSS "
          f"{peak_mb:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/memo-decode-memory"))
    parser.add_argument("--mode", choices=["bounded", "unbounded"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = make_images(args.work)
    if args.mode:
        measure(args.mode, paths)
        return
    for mode in ("bounded", "unbounded"):  # a fresh process each: peak RSS never falls
        subprocess.run([sys.executable, __file__, "--work", str(args.work), "--mode", mode],
                       check=True)


if __name__ == "__main__":
    main()
