"""What memo writes into an XMP packet, and the rule that the user's own values win.

memo's namespace (:data:`memocli.xmp_packet.MEMO`) always holds the photo's score,
percentile and rank in the run, the model id, the content hash and the time. The opt-in
fields are the catalogues' own: ``xmp:Rating`` (stars), ``xmp:Label`` (a colour label) and
keywords in ``lr:hierarchicalSubject`` (``memo|top 5%``) and ``dc:subject`` (``memo top
5%``). Whatever memo puts there is also recorded in its namespace (``memo:Rating``,
``memo:Label``, ``memo:Keywords``), so a later run or ``memo xmp --remove`` changes only
what memo wrote: a rating or label that differs from memo's record is the user's, and is
never changed without ``--overwrite`` (which records the user's value, for ``--remove`` to
put back).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .xmp_packet import DC, LR, MEMO, XMP, Packet

#: Default stars by percentile: the photo gets the stars of the first band whose least
#: percentile it reaches (top 5% 5 stars, next 15% 4, next 30% 3, next 30% 2, the rest 1).
DEFAULT_STAR_MAP: tuple[tuple[float, int], ...] = ((95, 5), (80, 4), (50, 3), (20, 2), (0, 1))
#: The bands of ``--keywords``: a photo gets the narrowest it is in (none below the top half).
KEYWORD_BANDS = (1, 5, 10, 25, 50)
LABEL_COLOURS = ("Red", "Yellow", "Green", "Blue", "Purple")
#: memo's properties that describe the score (always written; all removed by --remove).
SCORE_FIELDS = ("Score", "Percentile", "Rank", "Photos", "Model", "ContentHash", "Date")
_RECORDS = ("Rating", "Label", "Keywords", "HierarchicalKeywords", "UserRating",
            "UserLabel", "CreatedSidecar")


def parse_star_map(spec: str) -> tuple[tuple[float, int], ...]:
    """``'95:5,80:4,50:3,20:2,0:1'`` -> bands (least percentile, stars), highest first.

    Raises:
        ValueError: a band is not ``PCT:STARS`` with 0 <= PCT <= 100 and 0 <= STARS <= 5,
            or no band starts at 0 (every photo must get stars).
    """
    bands = []
    for part in spec.split(","):
        pct, sep, stars = part.strip().partition(":")
        try:
            band = (float(pct), int(stars))
        except ValueError:
            raise ValueError(f"'{part.strip()}' is not PERCENTILE:STARS (e.g. 95:5)") from None
        if not sep or not 0 <= band[0] <= 100 or not 0 <= band[1] <= 5:
            raise ValueError(f"'{part.strip()}': percentile 0-100, stars 0-5")
        bands.append(band)
    bands.sort(reverse=True)
    if bands[-1][0] != 0:
        raise ValueError("the last band must start at 0 so every photo gets stars (e.g. 0:1)")
    return tuple(bands)


def stars_for(percentile: float, bands: tuple[tuple[float, int], ...]) -> int:
    """The stars of the first band whose least percentile ``percentile`` reaches."""
    return next(stars for least, stars in bands if percentile >= least)


def keyword_band(percentile: float) -> int | None:
    """The narrowest ``top N%`` band a photo at ``percentile`` is in, or None."""
    return next((n for n in KEYWORD_BANDS if percentile >= 100 - n), None)


@dataclass
class Wish:
    """What memo wants in one photo's packet.

    ``optin`` holds only the fields this run was asked for (``rating``, ``label``,
    ``keywords``); a value None there means "none of memo's for this photo".
    """

    score: dict[str, str]  # SCORE_FIELDS -> value
    optin: dict[str, object] = field(default_factory=dict)


def apply(packet: Packet, wish: Wish, overwrite: bool, created: bool = False) -> list[str]:
    """Merge ``wish`` into ``packet``; returns what changed (for ``--dry-run``)."""
    changes: list[str] = []
    if created:
        packet.set(MEMO, "CreatedSidecar", "True")
    for name, value in wish.score.items():
        if packet.get(MEMO, name) != value:
            packet.set(MEMO, name, value)
            if name not in ("Date",):
                changes.append(f"memo:{name}={value}")
    if "rating" in wish.optin:
        rating = wish.optin["rating"]
        _owned(packet, "Rating", None if rating is None else str(rating), overwrite, changes)
    if "label" in wish.optin:
        _owned(packet, "Label", wish.optin["label"], overwrite, changes)
    if "keywords" in wish.optin:
        _keywords(packet, wish.optin["keywords"], changes)
    return changes


def remove(packet: Packet) -> list[str]:
    """Take memo's namespace and the ratings, labels and keywords memo wrote out of
    ``packet``, putting back the user's values memo replaced; returns what changed."""
    changes: list[str] = []
    for name in ("Rating", "Label"):
        current, mine = packet.get(XMP, name), packet.get(MEMO, name)
        if mine is not None and current == mine:
            users = packet.get(MEMO, f"User{name}")
            if users is None:
                packet.delete(XMP, name)
                changes.append(f"xmp:{name} {mine} removed")
            else:
                packet.set(XMP, name, users)
                changes.append(f"xmp:{name} {mine} -> {users} (the user's, put back)")
    _keywords(packet, None, changes)
    for name in (*SCORE_FIELDS, *_RECORDS):
        if packet.get(MEMO, name) is not None or packet.bag(MEMO, name):
            packet.delete(MEMO, name)
            if name in SCORE_FIELDS[:1]:
                changes.append("memo's namespace removed")
    return changes


def memo_wrote(packet: Packet, name: str) -> bool:
    """True when ``xmp:<name>`` holds the value memo recorded writing there."""
    mine = packet.get(MEMO, name)
    return mine is not None and packet.get(XMP, name) == mine


def user_set(packet: Packet, name: str) -> bool:
    """True when ``xmp:<name>`` holds a value the user set: not memo's, and for ``Rating``
    not 0 (the XMP specification's "unrated", which memo's stars may replace)."""
    value = packet.get(XMP, name)
    if value is None or memo_wrote(packet, name):
        return False
    return not (name == "Rating" and value.strip() in ("0", "0.0"))


def _owned(packet: Packet, name: str, wanted: str | None, overwrite: bool,
           changes: list[str]) -> None:
    """Set ``xmp:<name>`` to ``wanted`` unless the user's own value is there."""
    current = packet.get(XMP, name)
    mine = packet.get(MEMO, name)
    owned = mine is not None and current == mine
    if mine is not None and not owned:  # the user changed memo's value: it is theirs now
        packet.delete(MEMO, name)
        packet.delete(MEMO, f"User{name}")
        changes.append(f"xmp:{name} {current} is the user's now (was memo's {mine})")
    if current is not None and not owned:
        if not overwrite and user_set(packet, name):
            return
        if wanted is not None:  # kept for --remove (an unrated 0, or --overwrite)
            packet.set(MEMO, f"User{name}", current)
    if wanted is None:
        if owned:
            users = packet.get(MEMO, f"User{name}")
            if users is None:
                packet.delete(XMP, name)
            else:
                packet.set(XMP, name, users)
            packet.delete(MEMO, name)
            packet.delete(MEMO, f"User{name}")
            changes.append(f"xmp:{name} {current} removed")
        return
    if current != wanted:
        changes.append(f"xmp:{name}={wanted}")
    packet.set(XMP, name, wanted)
    packet.set(MEMO, name, wanted)


def _keywords(packet: Packet, wanted: str | None, changes: list[str]) -> None:
    """Replace memo's keywords with ``memo|<wanted>`` and ``memo <wanted>`` (None: none)."""
    for ns, name, record, form in ((LR, "hierarchicalSubject", "HierarchicalKeywords", "|"),
                                   (DC, "subject", "Keywords", " ")):
        current = packet.bag(ns, name)
        mine = set(packet.bag(MEMO, record))
        kept = [k for k in current if k not in mine]
        added = []
        if wanted is not None:
            keyword = f"memo{form}{wanted}"
            if keyword not in kept:
                added = [keyword]
        if kept + added != current:
            packet.set_bag(ns, name, kept + added)
            changes.append(f"{name}: " + ", ".join(
                [f"-{k}" for k in current if k in mine and k not in added]
                + [f"+{k}" for k in added if k not in current]))
        packet.set_bag(MEMO, record, added)
