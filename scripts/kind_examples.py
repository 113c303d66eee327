"""Generated pictures that are not photos, for training and measuring memo's kind classifier.

Each maker draws one picture with Pillow from a seeded random generator: clip art (flat
shapes, outlines, a little shading), scanned or printed documents (text lines, a table,
paper tint, scanner noise), screenshots (phone and monitor sizes: bars, list rows, buttons,
text; some with a photo inside), and near-blank images; and real photos as people also keep
them (black and white, sepia, dark, hazy, high-key, contrasty), which must stay photos. Used by
``scripts/train_kinds.py`` and ``benchmarks/kinds.py``; nothing here ships in the package.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

FONTS = sorted(Path("/usr/share/fonts/truetype").glob("*/*.ttf"))
PHONE_SCREENS = [(1170, 2532), (1080, 2400), (750, 1334), (1284, 2778), (1080, 1920),
                 (828, 1792), (1179, 2556)]
MONITOR_SCREENS = [(1920, 1080), (2560, 1440), (1366, 768), (1440, 900), (2880, 1800),
                   (1280, 800)]
WORDS = ("settings general privacy display battery photos camera account wifi bluetooth "
         "notifications sounds the memo of and report total date invoice page item price "
         "summary meeting agenda project chapter section figure table results").split()


def font(rng: random.Random, size: int) -> ImageFont.ImageFont:
    return ImageFont.truetype(str(rng.choice(FONTS)), size) if FONTS else \
        ImageFont.load_default()


def colour(rng: random.Random, light: bool | None = None) -> tuple[int, int, int]:
    if light is None:
        return tuple(rng.randrange(256) for _ in range(3))
    low = 190 if light else 0
    return tuple(rng.randrange(low, low + 66) for _ in range(3))


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize()


def clip_art(rng: random.Random) -> Image.Image:
    """Flat shapes on a plain background: a fruit, a sun, a house, a logo."""
    w = rng.randrange(400, 1400)
    h = int(w * rng.uniform(0.7, 1.4))
    img = Image.new("RGB", (w, h), rng.choice([(255, 255, 255), colour(rng, light=True)]))
    d = ImageDraw.Draw(img)
    outline = rng.choice([None, (0, 0, 0), colour(rng, light=False)])
    for _ in range(rng.randrange(2, 12)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(w // 10, w // 2), y0 + rng.randrange(h // 10, h // 2)
        kind = rng.randrange(4)
        fill = colour(rng)
        width = rng.randrange(1, 8)
        if kind == 0:
            d.ellipse([x0, y0, x1, y1], fill=fill, outline=outline, width=width)
        elif kind == 1:
            d.rectangle([x0, y0, x1, y1], fill=fill, outline=outline, width=width)
        elif kind == 2:
            points = [(rng.randrange(w), rng.randrange(h)) for _ in range(rng.randrange(3, 7))]
            d.polygon(points, fill=fill, outline=outline)
        else:
            d.line([(x0, y0), (x1, y1)], fill=fill, width=rng.randrange(3, 20))
        if rng.random() < 0.3:  # seeds, dots, stars
            for _ in range(rng.randrange(5, 40)):
                cx, cy = rng.randrange(w), rng.randrange(h)
                r = rng.randrange(2, 10)
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour(rng))
    if rng.random() < 0.3:  # soft shading, as vector art exported with gradients
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3)))
    return img


def document(rng: random.Random) -> Image.Image:
    """A page of text, perhaps a table, on white or scanned paper."""
    w = rng.randrange(800, 2000)
    h = int(w * rng.choice([1.41, 1.29, 0.77]))
    paper = rng.choice([(255, 255, 255), (246, 243, 235), (235, 235, 235)])
    img = Image.new("RGB", (w, h), paper)
    d = ImageDraw.Draw(img)
    size = rng.randrange(max(10, w // 80), max(12, w // 30))
    f = font(rng, size)
    margin = rng.randrange(w // 20, w // 8)
    y = margin
    ink = rng.choice([(0, 0, 0), (30, 30, 60), (60, 60, 60)])
    while y < h - margin:
        if rng.random() < 0.1:  # a table
            rows, cols = rng.randrange(2, 8), rng.randrange(2, 6)
            cell = (w - 2 * margin) // cols
            for r in range(rows):
                for c in range(cols):
                    box = [margin + c * cell, y + r * size * 2, margin + (c + 1) * cell,
                           y + (r + 1) * size * 2]
                    d.rectangle(box, outline=ink)
                    d.text((box[0] + 4, box[1] + 2), rng.choice(WORDS), fill=ink, font=f)
            y += rows * size * 2 + size
        else:
            d.text((margin, y), sentence(rng, rng.randrange(3, 14)), fill=ink, font=f)
            y += int(size * rng.uniform(1.3, 2.2))
    if rng.random() < 0.5:  # scanned: tilt, blur, grain
        img = img.rotate(rng.uniform(-2, 2), fillcolor=paper, resample=Image.BICUBIC)
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
        noise = Image.effect_noise(img.size, rng.uniform(4, 14)).convert("RGB")
        img = Image.blend(img, noise, 0.08)
    return img


def screenshot(rng: random.Random, photo: Image.Image | None = None) -> Image.Image:
    """A phone or desktop screen: status bar, header, rows of text and icons, buttons;
    ``photo`` (when given) shown in a panel, as in a gallery or a web page."""
    w, h = rng.choice(PHONE_SCREENS + MONITOR_SCREENS)
    dark = rng.random() < 0.3
    bg = (rng.randrange(0, 40),) * 3 if dark else rng.choice([(255, 255, 255), (242, 242, 247)])
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    text = (230, 230, 230) if dark else (20, 20, 20)
    accent = colour(rng)
    unit = max(12, min(w, h) // 25)
    f = font(rng, unit)
    d.rectangle([0, 0, w, unit * 2], fill=accent if rng.random() < 0.5 else bg)
    d.text((unit, unit // 2), sentence(rng, 2), fill=text, font=f)
    y = unit * 3
    if photo is not None:
        panel = photo.copy()
        panel.thumbnail((w - 2 * unit, h // 2))
        img.paste(panel, (unit, y))
        y += panel.height + unit
    while y < h - unit * 3 and rng.random() < 0.93:
        if rng.random() < 0.5:
            d.rounded_rectangle([unit, y, unit * 2, y + unit], radius=unit // 4,
                                fill=colour(rng))
        d.text((unit * 3, y), sentence(rng, rng.randrange(1, 6)), fill=text, font=f)
        y += unit * 2
        if rng.random() < 0.5:
            d.line([(unit, y - unit // 2), (w - unit, y - unit // 2)],
                   fill=(60, 60, 60) if dark else (220, 220, 220))
    if rng.random() < 0.5:
        d.rounded_rectangle([w // 4, h - unit * 3, 3 * w // 4, h - unit], radius=unit // 2,
                            fill=accent)
    return img


def near_blank(rng: random.Random) -> Image.Image:
    """One colour, maybe a faint gradient, grain or a thin line."""
    w, h = rng.choice(PHONE_SCREENS + MONITOR_SCREENS + [(800, 600), (640, 640)])
    base = colour(rng)
    img = Image.new("RGB", (w, h), base)
    if rng.random() < 0.5:
        noise = Image.effect_noise((w, h), rng.uniform(1, 6)).convert("RGB")
        img = Image.blend(img, noise, 0.03)
    if rng.random() < 0.3:
        ImageDraw.Draw(img).line([(0, h // 2), (w, h // 2)], fill=colour(rng), width=1)
    return img


MAKERS = {"drawing": clip_art, "document": document, "screenshot": screenshot,
          "blank": near_blank}


def save(img: Image.Image, path: Path, rng: random.Random) -> Path:
    """PNG for screens, JPEG or PNG for the rest (as they are found in libraries)."""
    if path.suffix == ".jpg":
        img.save(path, quality=rng.choice([75, 85, 92]))
    else:
        img.save(path)
    return path


def write_examples(out: Path, per_kind: int, seed: int,
                   photos: list[Path] | None = None) -> list[tuple[Path, str]]:
    """Write ``per_kind`` pictures of each kind under ``out``; returns (path, kind) pairs.

    Screenshots are PNG; a third of them show one of ``photos`` in a panel.
    """
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, make in MAKERS.items():
        for i in range(per_kind):
            if kind == "screenshot":
                inside = Image.open(rng.choice(photos)).convert("RGB") \
                    if photos and rng.random() < 0.33 else None
                img, suffix = make(rng, inside), ".png"
            else:
                img, suffix = make(rng), rng.choice([".png", ".jpg"])
            written.append((save(img, out / f"{kind}_{i:04d}{suffix}", rng), kind))
    return written


#: Real photos as people also keep them: each takes an upright RGB photo and a strength
#: drawn from the seeded generator.
PHOTO_LOOKS = {
    "black and white": lambda im, s: ImageOps.grayscale(im).convert("RGB"),
    "sepia": lambda im, s: ImageOps.colorize(ImageOps.grayscale(im), "#3a2010", "#f2e2c4"),
    "dark": lambda im, s: ImageEnhance.Brightness(im).enhance(0.1 + 0.2 * s),
    "hazy": lambda im, s: ImageEnhance.Contrast(im).enhance(0.15 + 0.25 * s),
    "high-key": lambda im, s: ImageEnhance.Brightness(
        ImageEnhance.Contrast(im).enhance(0.3 + 0.3 * s)).enhance(1.4 + 0.3 * s),
    "contrasty": lambda im, s: im.point(  # shadows crushed to black, as in a silhouette
        lambda v, black=round(50 + 60 * s): max(0, min(255, (v - black) * 255 // (255 - black)))),
}


def write_photo_looks(out: Path, photos: list[Path], seed: int,
                      looks: tuple[str, ...] = tuple(PHOTO_LOOKS)) -> list[tuple[Path, str]]:
    """Each of ``photos`` in each of ``looks``, saved as JPEG without EXIF (as exported or
    sent photos are); returns (path, look) pairs."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, photo in enumerate(photos):
        with Image.open(photo) as im:
            upright = ImageOps.exif_transpose(im).convert("RGB")
        for look in looks:
            path = out / f"{look.replace(' ', '-')}_{i:04d}.jpg"
            PHOTO_LOOKS[look](upright, rng.random()).save(path, quality=rng.choice([70, 80, 90]))
            written.append((path, look))
    return written
