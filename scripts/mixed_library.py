"""A mixed library like a new user's, and the before/after contact sheet of ``--diverse``.

    nice -n 10 .venv/bin/python scripts/mixed_library.py /tmp/mixed [--sheet docs/img/diverse.jpg]
        [--cache /tmp/mixed.db]

Builds PATH: 120 pool photos (every 50th: animals, people, vehicles, food, objects, rooms,
streets), 35 LNSIM landscapes (every 57th), a burst (three crops of one pool photo, 4-8
pixels apart, as the issue's panda), a 16x16 favicon, a nearly blank settings screenshot
(1170x2532 PNG), a clip-art drawing (``kind_examples.clip_art``) and a truncated JPEG. With ``--sheet`` it runs
``memo score PATH --top 20 --json`` with and without ``--diverse`` and draws both top 20s
as two rows of thumbnails, labelled with rank and score.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kind_examples import clip_art  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "datasets"
CLIP_ART_SEED = 3


def build(out: Path, shared: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pool = sorted((shared / "pool" / "images").glob("*.jpg"))
    for p in pool[::50][:120]:
        shutil.copy(p, out / p.name)
    for p in sorted((shared / "lnsim" / "images").glob("*.jpg"))[::57][:35]:
        shutil.copy(p, out / f"landscape_{p.name}")
    panda = Image.open(pool[7]).convert("RGB")
    w, h = panda.size
    for i, cut in enumerate((4, 6, 8)):
        panda.crop((cut, cut, w - cut, h - cut)).save(out / f"burst_{i}.jpg", quality=92)
    Image.new("RGB", (16, 16), (220, 20, 20)).save(out / "favicon.png")
    shot = Image.new("RGB", (1170, 2532), (255, 255, 255))
    ImageDraw.Draw(shot).text((40, 60), "Settings", fill=(0, 0, 0))
    shot.save(out / "IMG_0420.PNG")
    clip_art(random.Random(CLIP_ART_SEED)).save(out / "clip_art.jpg", quality=92)
    (out / "corrupt.jpg").write_bytes(pool[3].read_bytes()[:2000])


def top20(library: Path, *extra: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "memocli", "score", str(library), "--top",
                           "20", "--json", "-s", *extra], capture_output=True, text=True,
                          check=False)  # exit 1: the corrupt JPEG
    return json.loads(done.stdout)


def sheet(rows: list[tuple[str, list[dict]]], out: Path, cell: int = 96) -> None:
    label_w, pad = 90, 4
    img = Image.new("RGB", (label_w + 20 * (cell + pad), len(rows) * (cell + 18 + pad)),
                    "white")
    d = ImageDraw.Draw(img)
    for r, (label, photos) in enumerate(rows):
        y = r * (cell + 18 + pad)
        d.text((4, y + cell // 2), label, fill=(0, 0, 0))
        for c, row in enumerate(photos):
            thumb = Image.open(row["path"]).convert("RGB")
            thumb.thumbnail((cell, cell))
            x = label_w + c * (cell + pad)
            img.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
            d.text((x, y + cell + 2), f"#{row['rank']} {row['score']:.2f}", fill=(0, 0, 0))
    img.save(out, quality=80, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", type=Path)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--sheet", type=Path)
    parser.add_argument("--cache", default=None, help="memo's --cache for the two runs")
    args = parser.parse_args()
    cache = ["--cache", args.cache] if args.cache else []
    if not args.library.exists():
        build(args.library, args.shared)
    if args.sheet:
        sheet([("--top 20", top20(args.library, *cache)),
               ("--top 20\n--diverse", top20(args.library, "--diverse", *cache))], args.sheet)
        print(f"wrote {args.sheet} ({args.sheet.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
