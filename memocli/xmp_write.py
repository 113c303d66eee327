"""``memo xmp``'s driver: from ranked photos to what goes into each sidecar and file.

One :class:`XmpPlan` (the command's options) turns each ranked photo into a
:class:`~memocli.xmp_fields.Wish`; every sidecar the naming gives the photo, and with
``embed`` the photo itself, is merged with it. A sidecar or file memo cannot change is
reported in one line and the others go on.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .cache import Cache
from .embedded_xmp import EmbedError, can_embed, read_packets, update_embedded
from .files import hash_file, printable
from .ranking import Ranked
from .score import Progress, ScoredFile
from .sidecars import SidecarError, sidecar_paths, update_sidecar
from .user_ratings import users_fields
from .xmp_fields import Wish, apply, keyword_band, remove, stars_for
from .xmp_packet import Packet

Echo = Callable[[str], None]
Change = Callable[[Packet, bool], list[str]]


@dataclass(frozen=True)
class XmpPlan:
    """What ``memo xmp`` writes, and where.

    Attributes:
        sidecar: ``darktable``, ``adobe`` or ``both`` (:func:`memocli.sidecars.sidecar_paths`).
        star_map: bands for ``xmp:Rating`` (None: no stars).
        label: ``(top percent, colour)`` for ``xmp:Label`` (None: no label).
        label_picks: the paths the label goes to, in place of the top percent's
            (``--diverse``: :func:`diverse_label_picks`).
        keywords: add ``memo|top N%`` keywords.
        overwrite: replace the user's own rating and label.
        embed: also write into JPEG/TIFF/DNG files (exiftool's path, or None).
        removing: take memo's values out instead.
        dry_run: say what would change; write nothing.
    """

    sidecar: str = "darktable"
    star_map: tuple[tuple[float, int], ...] | None = None
    label: tuple[float, str] | None = None
    label_picks: frozenset[str] | None = None
    keywords: bool = False
    overwrite: bool = False
    embed: str | None = None
    removing: bool = False
    dry_run: bool = False

    def wish(self, ranked: Ranked, photos: int, model_id: str, when: str) -> Wish:
        """What this plan wants in the packets of ``ranked``."""
        pct = ranked.percentile
        wish = Wish(score={
            "Score": f"{ranked.item.score:.4f}", "Percentile": f"{pct:.2f}",
            "Rank": str(ranked.rank), "Photos": str(photos),
            "Model": ranked.item.model_id or model_id,  # another variant's: its own id
            "ContentHash": ranked.item.content_hash, "Date": when})
        if self.star_map is not None:
            wish.optin["rating"] = stars_for(pct, self.star_map)
        if self.label is not None:
            top, colour = self.label
            picked = (in_top(pct, top) if self.label_picks is None
                      else ranked.item.path in self.label_picks)
            wish.optin["label"] = colour if picked else None
        if self.keywords:
            band = keyword_band(pct)
            wish.optin["keywords"] = None if band is None else f"top {band}%"
        return wish


def in_top(percentile: float, top: float) -> bool:
    """Whether a photo at ``percentile`` is among the top ``top`` percent (``--label``)."""
    return percentile >= 100 - top


def diverse_label_picks(ranked: Sequence[Ranked], top: float, trade_off: float
                        ) -> frozenset[str]:
    """As many photos as the top ``top`` percent holds, picked varied
    (:func:`memocli.selection.diverse`): the photos ``--label --diverse`` marks."""
    from .selection import diverse

    count = sum(1 for r in ranked if in_top(r.percentile, top))
    return frozenset(r.item.path for r in diverse(ranked, count, trade_off)[:count])


@dataclass
class XmpSummary:
    """What a run changed."""

    changed: int = 0  # sidecars and files written (or that would be, with dry_run)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    no_sidecar: int = 0  # photos the naming gives no sidecar (adobe: not RAW)
    embedded: list[ScoredFile] = field(default_factory=list)  # photos rewritten by exiftool


def carry_scores(cache: Cache, model_id: str, embedded: Sequence[ScoredFile]) -> None:
    """File each rewritten photo's new content under its old score (and the model id that
    gave it; ``model_id`` when the file names none): exiftool changed its XMP only, not
    the pixels memo scores, so the next scan needs no model for it."""
    files, metas = [], {}
    scores: dict[str, tuple[list, list]] = {}  # model id -> (scores, vectors)
    for f in embedded:
        try:
            st = os.stat(f.path)
            digest = hash_file(f.path)
        except OSError:
            continue  # gone again: the next scan sees it
        files.append((f.abspath, digest, st.st_size, st.st_mtime_ns))
        metas[digest] = f.meta
        model_scores, vectors = scores.setdefault(f.model_id or model_id, ([], []))
        model_scores.append((digest, f.raw_score))
        if f.features is not None:
            vectors.append((digest, f.features))
    cache.record_files(files, metas)
    for model, (model_scores, vectors) in scores.items():
        cache.record_scores(model, model_scores, vectors)


def write_xmp(ranked: Sequence[Ranked], model_id: str, plan: XmpPlan, progress: Progress,
              show: Echo) -> XmpSummary:
    """Merge memo's results for ``ranked`` into their sidecars (and files, with embed).

    ``progress`` shows a bar and gets problems (stderr); ``show`` gets what would change,
    one line per sidecar or file, with ``dry_run`` (stdout).
    """
    writer = _Writer(plan, progress.echo, show)
    when = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    embedded = {}
    tool = shutil.which("exiftool")
    if (plan.star_map or plan.label) and not plan.overwrite and tool:
        try:  # the user's ratings and labels inside the photos win too
            embedded = read_packets([r.item.path for r in ranked], tool)
        except EmbedError as e:
            progress.echo(f"ratings inside the photos not read: {e}")
    with progress.stage(len(ranked), "writing XMP") as advance:
        for r in ranked:
            wish = plan.wish(r, len(ranked), model_id, when)
            if not plan.overwrite:
                for name in users_fields(r.item.path, embedded.get(r.item.path)):
                    if name.lower() in wish.optin:  # the user's, in another sidecar or file
                        wish.optin[name.lower()] = None
            # no memo:ContentHash inside a photo: writing it would change the hash
            inside = Wish({k: v for k, v in wish.score.items() if k != "ContentHash"},
                          wish.optin)
            writer.photo(r.item.path, lambda packet, created, wish=wish: apply(
                packet, wish, plan.overwrite, created), lambda packet, created, w=inside: apply(
                packet, w, plan.overwrite, created), r.item)
            advance(1)
    return writer.summary


def remove_xmp(paths: Sequence[str], plan: XmpPlan, progress: Progress,
               show: Echo) -> XmpSummary:
    """Take what memo wrote out of the sidecars (and files, with embed) of ``paths``."""
    writer = _Writer(plan, progress.echo, show)
    with progress.stage(len(paths), "removing XMP") as advance:
        for path in paths:
            writer.photo(path, lambda packet, created: remove(packet))
            advance(1)
    return writer.summary


class _Writer:
    """Applies changes to each photo's sidecars (and file), counting and reporting."""

    def __init__(self, plan: XmpPlan, echo: Echo, show: Echo):
        self.plan, self.echo, self.show = plan, echo, show
        self.summary = XmpSummary()

    def photo(self, path: str, change: Change, inside: Change | None = None,
              scored: ScoredFile | None = None) -> None:
        """Apply ``change`` to every sidecar of ``path``, and with embed ``inside`` (else
        ``change``) to the file; ``scored``: what the photo was when it was scored."""
        plan = self.plan
        # --remove looks in the sidecars of either naming, whichever memo wrote
        targets = sidecar_paths(path, "both" if plan.removing else plan.sidecar)
        if not targets:
            self.summary.no_sidecar += 1
        for target in targets:
            if plan.removing and not os.path.lexists(target):
                continue
            self.one(target, lambda t=target: update_sidecar(t, change, plan.dry_run))
        if plan.embed and can_embed(path):
            scored_hash = scored.content_hash if scored else None
            changed = self.one(path, lambda: update_embedded(
                path, inside or change, plan.embed, plan.dry_run, scored_hash))
            if changed and scored is not None and not plan.dry_run:
                self.summary.embedded.append(scored)

    def one(self, target: str, update: Callable[[], list[str]]) -> bool:
        """Run one sidecar's or file's update; True when it changed something."""
        try:
            changes = update()
        except (SidecarError, EmbedError) as e:
            self.summary.failed.append((target, str(e)))
            self.echo(f"{printable(target)}: {e}")
            return False
        if changes:
            self.summary.changed += 1
            if self.plan.dry_run:
                self.show(f"{printable(target)}: " + "; ".join(changes))
        else:
            self.summary.unchanged += 1
        return bool(changes)
