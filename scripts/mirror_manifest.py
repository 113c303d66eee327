#!/usr/bin/env python
"""Write the manifest that scores each photo with a checkpoint as the mean of its own and its
mirror image's scores (test-time augmentation; ``memocli.ensemble.mirror_average``).

The bundled ``--weights stable`` is this manifest of the default model, rebuilt whenever
that model changes (the manifest names its checkpoint by digest, and refuses another):

    python scripts/mirror_manifest.py r50 weights/memo-stable.json

Usage:
    python scripts/mirror_manifest.py CHECKPOINT_OR_NAME OUT.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from memocli.ensemble import mirror_average


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", help="a checkpoint file or a model name (memo models)")
    parser.add_argument("out", type=Path, help="the manifest to write (.json)")
    args = parser.parse_args()
    mirror_average(args.weights, args.out).write(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
