"""The user's own star ratings and rejects, from sidecars and from the photos' own XMP.

A photo's rating is taken from the first of these that holds one the user set: its
darktable/digiKam sidecar (``IMG_1.JPG.xmp``), its RAW twin's (``IMG_1.CR2.xmp``), the
Adobe-style ``IMG_1.xmp``, then the XMP inside the photo (read with exiftool when it is
installed). A rating memo wrote (``memo xmp --stars``: the value recorded in memo's
namespace) is not the user's and is passed over. ``xmp:Rating`` -1 is a reject, 0 or none
is unrated, 1-5 are stars.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .embedded_xmp import EmbedError, read_packets
from .files import printable
from .sidecars import SidecarError, read_sidecar, sidecar_paths
from .xmp_fields import memo_wrote, user_set
from .xmp_packet import XMP, Packet, PacketError

REJECT = -1


@dataclass
class UserRatings:
    """What was found: ``stars`` maps a photo's path to -1 (reject) or 1-5."""

    stars: dict[str, int] = field(default_factory=dict)
    memo_written: int = 0  # ratings passed over because memo wrote them
    problems: list[tuple[str, str]] = field(default_factory=list)
    embedded_read: bool = True  # False: exiftool missing, embedded XMP not read


def user_rating(packet: Packet) -> int | None:
    """The user's rating in ``packet`` (-1 reject, 1-5), or None (unrated, or memo's)."""
    value = packet.get(XMP, "Rating")
    if value is None or memo_wrote(packet, "Rating"):
        return None
    try:
        rating = round(float(value))
    except ValueError:
        return None
    return rating if rating == REJECT or 1 <= rating <= 5 else None


def read_user_ratings(photos: Sequence[str], echo: Callable[[str], None]) -> UserRatings:
    """The user's ratings of ``photos`` (see the module's docstring); unreadable sidecars
    are reported through ``echo`` and passed over."""
    found = UserRatings()
    unrated = []
    for photo in photos:
        rating = None
        for sidecar in sidecar_paths(photo, "both"):
            try:
                packet = read_sidecar(sidecar)
            except SidecarError as e:
                found.problems.append((sidecar, str(e)))
                echo(f"{printable(sidecar)}: {e}")
                continue
            rating = _rating_of(packet, found)
            if rating is not None:
                break
        if rating is None:
            unrated.append(photo)
        else:
            found.stars[photo] = rating
    tool = shutil.which("exiftool")
    if tool is None:
        found.embedded_read = False
        return found
    try:
        packets = read_packets(unrated, tool)
    except EmbedError as e:
        echo(f"embedded XMP not read: {e}")
        found.embedded_read = False
        return found
    for photo, data in packets.items():
        try:
            rating = _rating_of(Packet.parse(data), found)
        except PacketError as e:
            echo(f"{printable(photo)}: embedded XMP not read: {e}")
            continue
        if rating is not None:
            found.stars[photo] = rating
    return found


def users_fields(photo: str, embedded: bytes | None) -> set[str]:
    """Which of ``Rating`` and ``Label`` the user set for ``photo`` in any of its sidecars
    (either naming) or in ``embedded`` (its own XMP packet): memo then sets neither
    anywhere else. Sidecars memo cannot read count as holding the user's values."""
    packets: list[Packet | None] = []
    for sidecar in sidecar_paths(photo, "both"):
        try:
            packets.append(read_sidecar(sidecar))
        except SidecarError:
            return {"Rating", "Label"}
    if embedded:
        try:
            packets.append(Packet.parse(embedded))
        except PacketError:
            return {"Rating", "Label"}
    return {name for packet in packets if packet is not None for name in ("Rating", "Label")
            if user_set(packet, name)}


def _rating_of(packet: Packet | None, found: UserRatings) -> int | None:
    if packet is None:
        return None
    if memo_wrote(packet, "Rating"):
        found.memo_written += 1
    return user_rating(packet)
