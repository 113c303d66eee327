"""XMP sidecar files: which ones belong to a photo, and changing one without clobbering it.

Namings: darktable and digiKam use ``<name>.<ext>.xmp`` (``IMG_1.CR2.xmp``); Lightroom
Classic and Capture One read ``<basename>.xmp`` beside RAW files only (``IMG_1.xmp``), and
the ``<basename>.xmp`` of a RAW+JPEG pair belongs to the RAW. memo ranks such a pair once,
as its JPEG, so the pair's score goes to the sidecars of both files.

A sidecar is changed by reading it (a regular file, not a link, at most
:data:`memocli.xmp_packet.MAX_PACKET_BYTES`), merging, writing a temporary file beside it
(fsync), and renaming it over the sidecar (:func:`memocli.files.atomic_write`, which keeps
its permissions); if the sidecar changed in between (darktable
writing it), it is read and merged again.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from .files import atomic_write, os_reason
from .formats import RAW_EXTENSIONS, is_raw
from .xmp_packet import MAX_PACKET_BYTES, MEMO, Packet, PacketError

SIDECAR_STYLES = ("darktable", "adobe", "both")
#: RAW files Lightroom reads a ``<basename>.xmp`` beside (it reads a DNG's embedded XMP).
ADOBE_SIDECAR_EXTENSIONS = RAW_EXTENSIONS - {".dng"}
_RETRIES = 3


class SidecarError(Exception):
    """A sidecar memo will not read or write (the message says why, without the path)."""


def raw_twins(photo: str) -> list[str]:
    """RAW files beside ``photo`` with its name before the extension (any case): the RAW
    of a RAW+JPEG pair memo ranked as its JPEG."""
    if is_raw(photo):
        return []
    folder, name = os.path.split(photo)
    stem = os.path.splitext(name)[0].lower()
    try:
        names = os.listdir(folder or os.curdir)
    except OSError:
        return []
    return sorted(os.path.join(folder, n) for n in names
                  if is_raw(n) and os.path.splitext(n)[0].lower() == stem and n != name)


def sidecar_paths(photo: str, style: str) -> list[str]:
    """The sidecars ``style`` gives ``photo`` (and its RAW twin): darktable names for each
    file, Adobe names for RAW files only."""
    files = [photo, *raw_twins(photo)]
    paths = []
    if style in ("darktable", "both"):
        paths += [f + ".xmp" for f in files]
    if style in ("adobe", "both"):
        paths += [os.path.splitext(f)[0] + ".xmp" for f in files
                  if os.path.splitext(f)[1].lower() in ADOBE_SIDECAR_EXTENSIONS]
    return paths


@dataclass(frozen=True)
class _Seen:
    """What a sidecar was when it was read (None: it did not exist)."""

    key: tuple[int, int, int] | None

    @classmethod
    def of(cls, path: str) -> _Seen:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return cls(None)
        return cls((st.st_ino, st.st_size, st.st_mtime_ns))


def read_sidecar(path: str) -> Packet | None:
    """The packet of the sidecar at ``path``; None when there is none.

    Raises:
        SidecarError: a link, a folder, not a regular file, unreadable, too large, or not a
            packet memo can parse.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SidecarError(f"cannot read sidecar: {os_reason(e)}") from None
    if stat.S_ISLNK(st.st_mode):
        raise SidecarError("sidecar is a symbolic link; memo does not write through links "
                           "(replace it with the file it points to)")
    if stat.S_ISDIR(st.st_mode):
        raise SidecarError("sidecar name is taken by a directory")
    if not stat.S_ISREG(st.st_mode):
        raise SidecarError("sidecar is not a regular file")
    if st.st_size > MAX_PACKET_BYTES:
        raise SidecarError(f"sidecar too large ({st.st_size / 2**20:.1f} MB; memo reads "
                           f"XMP up to {MAX_PACKET_BYTES >> 20} MB)")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_PACKET_BYTES + 1)
    except OSError as e:
        raise SidecarError(f"cannot read sidecar: {os_reason(e)}") from None
    try:
        return Packet.parse(data)
    except PacketError as e:
        raise SidecarError(f"sidecar left untouched: {e}") from None


class _Changed(Exception):
    """The sidecar changed while memo merged into it."""


def update_sidecar(path: str, change: Callable[[Packet, bool], list[str]],
                   dry_run: bool = False) -> list[str]:
    """Read ``path``, let ``change(packet, created)`` edit it, and write it back atomically.

    ``change`` returns what it changed; nothing is written when that is empty, or with
    ``dry_run``. A sidecar memo created that ends up empty (``--remove``) is deleted.

    Raises:
        SidecarError: see :func:`read_sidecar`; or it cannot be written.
    """
    for _ in range(_RETRIES):
        seen = _Seen.of(path)
        packet = read_sidecar(path)
        created = packet is None
        if created:
            packet = Packet.new()
        memo_made = created or packet.get(MEMO, "CreatedSidecar") is not None
        changes = change(packet, created)
        if not changes or dry_run:
            return changes
        if not os.path.isdir(os.path.dirname(path) or os.curdir):
            raise SidecarError("its folder no longer exists")  # never made again by memo
        try:
            if packet.is_empty() and memo_made:
                if not created:
                    _unlink_if_unchanged(path, seen)
                return changes
            with atomic_write(path) as f:
                f.write(packet.to_bytes())  # a replaced sidecar keeps its permissions
                if _Seen.of(path) != seen:
                    raise _Changed
            return changes
        except _Changed:
            continue
        except OSError as e:
            raise SidecarError(f"cannot write sidecar: {os_reason(e)}") from None
    raise SidecarError(f"sidecar kept changing while memo wrote it ({_RETRIES} tries); "
                       "close the program writing it and run again")


def _unlink_if_unchanged(path: str, seen: _Seen) -> None:
    if _Seen.of(path) != seen:
        raise _Changed
    os.unlink(path)
