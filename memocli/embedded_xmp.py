"""XMP inside photo files, read and written through exiftool only.

memo never rewrites a photo itself: exiftool (Phil Harvey's, Perl, GPL or Artistic
licence, run as a separate program) knows every format's layout and keeps every other
tag. To change a file's XMP memo reads its packet (``exiftool -b -XMP``), merges into it
like into a sidecar, and has exiftool write a copy of the photo with that packet
(``-o``) beside it; the copy is fsynced and renamed over the photo only if the photo did
not change meanwhile, so a crash leaves the old photo or the new one, never half of one.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable

from .errors import MemoError
from .files import hash_file
from .xmp_packet import Packet, PacketError

#: Files memo embeds XMP into (Lightroom reads these files' own XMP, not sidecars).
EMBED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".tif", ".tiff", ".dng"})
INSTALL_HINT = ("install exiftool: `apt install libimage-exiftool-perl` (Debian, Ubuntu), "
                "`brew install exiftool` (macOS) or see https://exiftool.org")
_CHUNK = 200  # files per exiftool call when reading
_TIMEOUT = 120


class EmbedError(Exception):
    """A photo whose XMP memo could not read or write (the message says why)."""


def exiftool_path(purpose: str) -> str:
    """exiftool's path, or a :class:`MemoError` saying how to install it."""
    found = shutil.which("exiftool")
    if found is None:
        raise MemoError(f"{purpose} needs exiftool, which is not installed; {INSTALL_HINT}")
    return found


def can_embed(path: str) -> bool:
    """True for the formats ``--embed`` writes (JPEG, TIFF, DNG)."""
    return os.path.splitext(path)[1].lower() in EMBED_EXTENSIONS


def read_packets(paths: Iterable[str], tool: str) -> dict[str, bytes]:
    """The embedded XMP packet of each of ``paths`` that has one (one exiftool per chunk)."""
    paths = list(paths)
    found: dict[str, bytes] = {}
    for start in range(0, len(paths), _CHUNK):
        chunk = paths[start:start + _CHUNK]
        run = _run([tool, "-j", "-b", "-XMP", "-charset", "filename=utf8", "--", *chunk])
        try:
            rows = json.loads(run.stdout or "[]")
        except json.JSONDecodeError:
            continue  # exiftool found nothing it could read in this chunk
        for row in rows:
            value = row.get("XMP")
            if isinstance(value, str):
                data = (base64.b64decode(value[7:]) if value.startswith("base64:")
                        else value.encode("utf-8"))
                found[row["SourceFile"]] = data
    return found


def update_embedded(path: str, change: Callable[[Packet, bool], list[str]], tool: str,
                    dry_run: bool = False, scored_hash: str | None = None) -> list[str]:
    """Merge ``change`` into the XMP inside ``path`` (see the module's docstring).

    ``scored_hash``: the content hash the photo had when it was scored; a photo that
    changed since is left alone (what is written would describe other pixels).

    Raises:
        EmbedError: exiftool failed, the packet cannot be parsed, or the photo changed.
    """
    before = os.stat(path)
    data = read_packets([path], tool).get(path)
    try:
        packet = Packet.parse(data) if data else Packet.new()
    except PacketError as e:
        raise EmbedError(f"embedded XMP left untouched: {e}") from None
    changes = change(packet, False)
    if not changes or dry_run:
        return changes
    if scored_hash is not None and hash_file(path) != scored_hash:
        raise EmbedError("photo changed since it was scored; run memo xmp again")
    folder, name = os.path.split(path)
    tag = f"{os.getpid()}-{threading.get_ident()}"
    packet_file = os.path.join(folder, f".{name}.{tag}.xmp")
    out = os.path.join(folder, f".{name}.{tag}.tmp{os.path.splitext(name)[1]}")
    try:
        with open(packet_file, "xb") as f:
            f.write(packet.to_bytes())
        run = _run([tool, "-q", "-q", f"-xmp<={packet_file}", "-o", out, "--", path])
        if run.returncode != 0 or not os.path.isfile(out):
            reason = (run.stderr.strip().splitlines() or ["exiftool failed"])[-1]
            raise EmbedError(f"cannot embed XMP: {reason}")
        with open(out, "rb+") as f:
            os.fchmod(f.fileno(), before.st_mode & 0o7777)
            os.fsync(f.fileno())
        now = os.stat(path)
        if (now.st_size, now.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise EmbedError("photo changed while memo embedded XMP; run again")
        os.replace(out, path)
    except OSError as e:
        raise EmbedError(f"cannot embed XMP: {e.strerror or e}") from None
    finally:
        for leftover in (packet_file, out):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
    return changes


def _run(args: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EmbedError(f"exiftool failed: {e}") from None
