"""``memo report``: one self-contained HTML contact sheet of ranked photos.

Thumbnails (and Grad-CAM overlays of the top photos) are embedded as base64 JPEG, the
histogram is inline SVG, and a few lines of plain JavaScript add the toggles: the file
needs no network and no other file. Every file name and EXIF text goes through
:func:`memocli.escape.for_html`.

Photos appear by memorability, each burst (see :mod:`memocli.bursts`) as one box at the
place of its best frame, that frame first and marked.
"""

from __future__ import annotations

import base64
import io
import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from .decode import load_image, try_decode
from .escape import for_html
from .files import atomic_write, decode_threads
from .ranking import LEGEND_LINES, Ranked, shown_percentile

if TYPE_CHECKING:
    from .explain import CamMap
    from .predictor import Predictor

THUMB_SIDE = 256  # longest side of a thumbnail, px
JPEG_QUALITY = 75
HEAT_ALPHA = 0.5
BINS = 20  # histogram bars over the 0-1 score scale


@dataclass
class Thumb:
    """A photo's thumbnail (and heatmap overlay) as JPEG bytes, or why it failed."""

    width: int = 0
    height: int = 0
    jpeg: bytes | None = None
    heat: bytes | None = None
    error: str | None = None


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def make_thumb(path: str | os.PathLike, cam: CamMap | None = None,
               side: int = THUMB_SIDE) -> Thumb:
    """Upright thumbnail of ``path`` (longest side ``side``), with ``cam``'s map blended if
    given. A :class:`~memocli.explain.CamMap` brings its decoded photo: it is not decoded
    again."""
    if cam is not None:
        image = cam.photo
    else:
        image, failure = try_decode(lambda: load_image(path, min_side=side), path)
        if image is None:
            return Thumb(error=failure)
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    heat = None
    if cam is not None:
        import numpy as np

        from .render import encode_jpeg, overlay

        heat = encode_jpeg(overlay(np.asarray(image), cam.cam, HEAT_ALPHA), JPEG_QUALITY)
    return Thumb(image.width, image.height, _jpeg(image), heat)


def grad_cams(predictor: Predictor, paths: Sequence[str],
              batch_size: int = 16) -> dict[str, CamMap]:
    """Grad-CAM of each path at the default layer, each photo decoded once (kept in its
    :class:`~memocli.explain.CamMap` for the thumbnail)."""
    from .explain import cam_maps
    from .gradcam import default_layer

    with ThreadPoolExecutor(decode_threads()) as pool:
        maps = [m for batch in cam_maps(predictor, [Path(p) for p in paths],
                                        default_layer(predictor.model), batch_size, pool)
                for m in batch]
    return dict(zip(paths, maps, strict=True))


def make_thumbs(ranked: Sequence[Ranked], cams: dict[str, CamMap],
                advance: Callable[[int], None] = lambda n: None) -> list[Thumb]:
    """Thumbnails of ``ranked`` (in order), decoded in threads; ``cams`` maps by path."""
    def one(r: Ranked) -> Thumb:
        thumb = make_thumb(r.item.path, cams.get(r.item.path))
        advance(1)
        return thumb

    with ThreadPoolExecutor(decode_threads()) as pool:
        return list(pool.map(one, ranked))


# --- HTML ---------------------------------------------------------------------------------

def histogram_svg(scores: Sequence[float], bins: int = BINS) -> str:
    """Inline SVG bar chart of displayed scores (0-1) in ``bins`` equal bins."""
    counts = [0] * bins
    for s in scores:
        counts[min(bins - 1, int(s * bins))] += 1
    width, height, pad = 600, 120, 26
    bar = width / bins
    top = max(counts) or 1
    parts = [(f'<svg class="hist" viewBox="0 0 {width} {height + pad}" role="img" '
              f'aria-label="histogram of scores">'),
             f'<line x1="0" y1="{height + 1}" x2="{width}" y2="{height + 1}"/>']
    for i, n in enumerate(counts):
        h = round(height * n / top, 1)
        lo, hi = i / bins, (i + 1) / bins
        parts.append(f'<rect x="{i * bar + 1:.1f}" y="{height - h}" width="{bar - 2:.1f}" '
                     f'height="{h}"><title>{lo:.2f}-{hi:.2f}: {n} photo(s)</title></rect>')
    for tick in (0, 0.25, 0.5, 0.75, 1):
        anchor = "start" if tick == 0 else "end" if tick == 1 else "middle"
        parts.append(f'<text x="{tick * width}" y="{height + pad - 4}" '
                     f'text-anchor="{anchor}">{tick:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def _card(r: Ranked, thumb: Thumb, size: int, position: int) -> str:
    f = r.item
    name = for_html(Path(f.path).name)
    head = r.burst == r.rank
    classes = ["card"] + (["alt"] if not head else []) + (["has-heat"] if thumb.heat else [])
    if thumb.jpeg is None:
        picture = f'<div class="missing">{for_html(thumb.error or "no thumbnail")}</div>'
    else:
        picture = (f'<img src="{_data_uri(thumb.jpeg)}" alt="{name}" width="{thumb.width}" '
                   f'height="{thumb.height}" loading="lazy" decoding="async">')
        if thumb.heat:
            picture += (f'<img class="heat" src="{_data_uri(thumb.heat)}" '
                        f'alt="Grad-CAM heatmap of {name}" width="{thumb.width}" '
                        f'height="{thumb.height}" loading="lazy" decoding="async">')
    taken = for_html((f.meta.taken_at or "").replace("T", " ")) or "&nbsp;"
    camera = for_html(f.meta.camera or "") or "&nbsp;"
    if size > 1:
        note = (f'<div class="tag">&#9733; best of {size}</div>' if head else
                f'<div class="tag">frame {position} of {size}</div>')
    else:
        note = ""
    return (
        f'<figure class="{" ".join(classes)}" id="r{r.rank}" data-rank="{r.rank}" '
        f'data-score="{f.raw_score:.6f}" data-burst="{r.burst}">'
        f'<div class="pic">{picture}<span class="rank">#{r.rank}</span></div>'
        f'<figcaption><div><b>{f.score:.3f}</b> <span class="pct">{shown_percentile(r.percentile, 0):.0f} pct'
        f'</span></div><div class="name" title="{for_html(f.path)}">{name}</div>'
        f'<div class="facts">{taken}</div><div class="facts">{camera}</div>{note}'
        f'</figcaption></figure>'
    )


def _groups(ranked: Sequence[Ranked]) -> list[list[int]]:
    """Indices into ``ranked`` by burst (within its ``--group-by`` group), bursts in the
    order their first frame comes (in rank order, that of their best frame; with --diverse,
    the order of the picks)."""
    groups: dict[tuple[str | None, int], list[int]] = {}
    for i, r in enumerate(ranked):
        groups.setdefault((r.group, r.burst if r.burst is not None else r.rank), []).append(i)
    return list(groups.values())


def _sections(ranked: Sequence[Ranked], items: list[str], members: list[list[int]]
              ) -> list[str]:
    """``items`` (one per burst) wrapped in one section per ``--group-by`` group, headed by
    its name and photo count; unchanged without groups."""
    if all(r.group is None for r in ranked):
        return items
    sections = []
    for name, run in itertools.groupby(zip(items, members, strict=True),
                                       key=lambda pair: ranked[pair[1][0]].group or ""):
        run = list(run)
        cards = "".join(item for item, _ in run)
        count = sum(len(burst) for _, burst in run)
        sections.append(f'<section class="group" aria-label="{for_html(name)}"><h2>'
                        f'{for_html(name)} &middot; {count} photo(s)</h2>'
                        f'<div class="grid">{cards}</div></section>')
    return sections


def render_html(ranked: Sequence[Ranked], thumbs: Sequence[Thumb], model_id: str,
                title: str) -> str:
    """The whole report page for ``ranked`` (rank order) and their ``thumbs``."""
    items = []
    bursts = frames = 0
    groups = _groups(ranked)
    for members in groups:
        cards = "".join(_card(ranked[i], thumbs[i], len(members), k)
                        for k, i in enumerate(members, 1))
        if len(members) == 1:
            items.append(cards)
            continue
        bursts += 1
        frames += len(members)
        items.append(f'<section class="burst" aria-label="burst #{ranked[members[0]].burst}">'
                     f'<h2>burst #{ranked[members[0]].burst} &middot; {len(members)} frames'
                     f'</h2><div class="frames">{cards}</div></section>')
    heat = sum(1 for t in thumbs if t.heat)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    burst_text = f"{bursts} burst(s) of {frames} frames" if bursts else "no bursts"
    summary = (f"{len(ranked)} photo(s) &middot; {burst_text} &middot; {heat} heatmap(s) "
               f"&middot; model {for_html(model_id)} &middot; {generated}")
    return _PAGE.format(
        title=for_html(title), summary=summary, legend=for_html(" ".join(LEGEND_LINES)),
        style=_STYLE,
        script=_SCRIPT,
        histogram=histogram_svg([r.item.score for r in ranked]),
        items="".join(_sections(ranked, items, groups)),
        count=len(ranked),
    )


def write_report(ranked: Sequence[Ranked], thumbs: Sequence[Thumb], model_id: str,
                 title: str, out: str | os.PathLike) -> int:
    """Write the page to ``out`` atomically; returns its size in bytes."""
    page = render_html(ranked, thumbs, model_id, title)
    with atomic_write(out, "w", encoding="utf-8", newline="") as f:
        f.write(page)
    return len(page.encode("utf-8"))


_STYLE = """
:root { color-scheme: dark; --bg: #1b1c1e; --card: #26282b; --fg: #e8e8e8; --dim: #9a9da3;
        --accent: #f2b233; --burst: #2f4a66; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 20px 40px; background: var(--bg); color: var(--fg);
       font: 13px/1.35 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: flex-end;
         margin-bottom: 16px; }
h1 { font-size: 20px; margin: 0 0 4px; }
header p { margin: 0; color: var(--dim); }
figure.histogram { margin: 0; }
.hist { width: 420px; height: 98px; display: block; }
.hist rect { fill: var(--accent); }
.hist line { stroke: var(--dim); stroke-width: 2; }
.hist text { fill: var(--dim); font-size: 22px; }
figure.histogram figcaption { padding: 2px 0 0; color: var(--dim); font-size: 12px; }
label { color: var(--dim); cursor: pointer; user-select: none; }
main { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.card { width: 200px; margin: 0; background: var(--card); border-radius: 6px;
        overflow: hidden; }
.pic { position: relative; height: 160px; background: #000; }
.pic img { position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain; }
.pic .heat { opacity: 0; transition: opacity .15s; }
.has-heat .pic { cursor: pointer; }
.has-heat:hover .heat, .heat-on .heat { opacity: 1; }
.has-heat .rank::after { content: " \\00b7  heatmap"; color: var(--accent); }
.rank { position: absolute; left: 4px; top: 4px; padding: 1px 6px; border-radius: 3px;
        background: rgba(0, 0, 0, .65); font-weight: 600; }
.missing { padding: 60px 8px; color: var(--dim); text-align: center; }
figcaption { padding: 6px 8px 8px; }
figcaption b { font-size: 15px; }
.pct, .facts { color: var(--dim); }
.name { overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.facts { font-size: 12px; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.tag { margin-top: 3px; font-size: 12px; color: var(--dim); }
.burst { background: var(--burst); border-radius: 8px; padding: 6px 8px 8px;
         max-width: 100%; }
.burst h2 { font-size: 12px; font-weight: 600; margin: 0 0 6px; color: #cfe0f3; }
.frames { display: flex; flex-wrap: wrap; gap: 8px; }
.burst .card:first-child { outline: 2px solid var(--accent); }
.burst .card:first-child .tag { color: var(--accent); }
.group { flex-basis: 100%; }
.group h2 { font-size: 15px; font-weight: 600; margin: 12px 0 8px; }
.group .grid { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
body.one .alt { display: none; }
"""

_SCRIPT = """
"use strict";
(function () {
  var cards = document.querySelectorAll("figure.card");
  document.getElementById("one").addEventListener("change", function (event) {
    document.body.classList.toggle("one", event.target.checked);
  });
  document.querySelector("main").addEventListener("click", function (event) {
    var card = event.target.closest("figure.has-heat");
    if (card) { card.classList.toggle("heat-on"); }
  });
  document.body.setAttribute("data-photos", String(cards.length));
})();
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
<div><h1>{title}</h1><p>{summary}</p>
<p>Most memorable first. {legend} Hover or click a photo marked heatmap for its Grad-CAM
map (red: raises the score).</p>
<p><label><input type="checkbox" id="one"> best frame of each burst only</label></p></div>
<figure class="histogram">{histogram}<figcaption>scores (0-1) of the {count} photo(s)
</figcaption></figure>
</header>
<main>{items}</main>
<script>{script}</script>
</body>
</html>
"""
