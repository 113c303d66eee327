#!/usr/bin/env python
"""Where a shift of a photo changes memo's network: every residual block's pooled output,
and the score.

Each photo of a fixed sample (``stability.py``'s: half LNSIM, half the pool) is cut two
ways that differ only by a translation of K source pixels, ``(0, 0, w-K, h-K)`` and
``(K, K, w, h)``: the same size, so the same resize, and content that differs only in a
K-pixel strip at the edges. For each K it prints the median |score difference| and, for
every residual block in order (stages 1-4), the median relative change of its
global-average-pooled output, ||f(a) - f(b)|| / ||f(a)||. A shift-invariant network would
print zeros; a ResNet's change grows at each stride-2 step (aliasing), which is what moves
the score of a photo cropped by a few pixels (``stability.py``).

The network runs in float32 torch, as trained (memo's engines agree with it within 0.003).

Usage:
    python benchmarks/shift_sensitivity.py [--photos 100] [--shifts 1 2 4] [--weights CKPT]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from PIL import Image, ImageOps
from stability import sample


def translated(image: Image.Image, k: int) -> tuple[Image.Image, Image.Image]:
    """Two same-size cuts of ``image`` ``k`` pixels apart along both axes."""
    w, h = image.size
    return image.crop((0, 0, w - k, h - k)), image.crop((k, k, w, h))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--shifts", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--weights", default=None, help="checkpoint (default: memo's)")
    args = parser.parse_args()

    import torch

    from memocli.checkpoint import load_checkpoint
    from memocli.files import default_weights_path
    from memocli.machine import describe_cpu
    from memocli.preprocess import net_input

    model = load_checkpoint(args.weights or default_weights_path()).model.eval()
    cfg = model.cfg
    photos = []
    for path in sample(args.photos):
        with Image.open(path) as im:
            photos.append(ImageOps.exif_transpose(im).convert("RGB"))

    def features_and_scores(images):
        x = torch.from_numpy(np.stack([net_input(i, cfg.input_size, cfg.mean, cfg.std)
                                       for i in images]))
        with torch.no_grad():
            pooled = model.pooled_block_features(x)
            return pooled, model.head(pooled)

    print(f"{len(photos)} photos, model {cfg.name} (input blur {cfg.input_blur}, blurred "
          f"strides {cfg.blur_strides}); CPU {describe_cpu()}")
    print("shift  score |d|  relative change of each block's pooled output (stage 1 ... 4)")
    for k in args.shifts:
        pairs = [translated(im, k) for im in photos]
        fa, sa = features_and_scores([a for a, _ in pairs])
        fb, sb = features_and_scores([b for _, b in pairs])
        change = [((a - b).norm(dim=1) / a.norm(dim=1)).median().item() for a, b in zip(fa, fb)]
        print(f"{k:>3} px  {statistics.median((sa - sb).abs().tolist()):>8.4f}  "
              + " ".join(f"{c:.3f}" for c in change))


if __name__ == "__main__":
    main()
