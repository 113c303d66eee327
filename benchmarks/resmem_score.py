#!/usr/bin/env python
"""Score a folder of photos with ResMem exactly as its documentation shows (for score_speed.py).

``ResMem(pretrained=True)``, its own ``transformer`` on ``Image.open(...).convert('RGB')``,
one photo at a time. Prints ``name,score`` lines.

Usage:
    python benchmarks/resmem_score.py FOLDER [--device auto]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

from memocli.device import pick_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    try:
        from resmem import ResMem, transformer
    except ImportError:
        raise SystemExit("ResMem is not installed: pip install resmem") from None
    device = pick_device(args.device)
    model = ResMem(pretrained=True).to(device).eval()
    with torch.inference_mode():
        for path in sorted(args.folder.iterdir()):
            image = transformer(Image.open(path).convert("RGB"))
            score = model(image.view(-1, 3, 227, 227).to(device)).item()
            print(f"{path.name},{score:.6f}")


if __name__ == "__main__":
    main()
