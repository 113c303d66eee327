#!/usr/bin/env python
"""Copy a memo checkpoint as a compact release file (fp16 weights, same metadata).

Usage:
    python scripts/release_weights.py runs/lnsim-r50/best.pt weights/memo-vnet-r50.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from memocli.checkpoint import load_checkpoint, save_checkpoint

_OWN_KEYS = ("format", "format_version", "arch", "cfg", "memo_version")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    loaded = load_checkpoint(args.checkpoint)
    meta = {k: v for k, v in loaded.meta.items() if k not in _OWN_KEYS}
    save_checkpoint(args.out, loaded.model, half=True, **meta)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, fp16)")


if __name__ == "__main__":
    main()
