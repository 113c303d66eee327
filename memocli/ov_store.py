"""The folder of converted networks (``engines/``): saved whole or not at all, checked
before every use, and kept tidy (a network unused for 90 days goes at the next save).

A converted network is three files named by one stem, ``<checkpoint id>-ov<version>``:
the OpenVINO IR (``.xml`` + ``.bin``) and a manifest (``.json``) with the CRC-32 and size
of both and what scoring needs without the checkpoint (the input size and normalisation).
The manifest is written last, after both files are on disk (fsync), so a network without
one is unfinished and is never read. Before use the files must be regular files (a FIFO
would block memo) whose size and CRC-32 match the manifest: a zeroed, truncated, flipped
or swapped file (the ``.bin`` of another checkpoint of the same architecture) is converted
again instead of crashing OpenVINO or giving wrong scores. CRC-32 guards against damage,
not an attacker (who could rewrite the manifest too); it reads a 100 MB network in about
0.1 s where SHA-256 takes 0.4 s, on every run that scores a photo.

Torch-free.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import re
import socket
import stat
import time
import zlib
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
_PARTS = (".xml", ".bin")
_TEMP = re.compile(r"\.tmp-(?P<host>[^.]*)-(?P<pid>\d+)\.")
STALE_AFTER_S = 3600  # a temporary file this old is a dead save's, on any machine
UNUSED_AFTER_S = 90 * 86400  # a network no run has read for this long goes at the next save


def network_stem(checkpoint_id: str, openvino_version: str) -> str:
    """``vnet_r50-28e4da1c5e57fc0a-ov2026.4.1``: the files' name without suffix."""
    return f"{checkpoint_id}-ov{openvino_version}"


def stem_checkpoint_id(stem: str, openvino_version: str) -> str:
    """The checkpoint id a :func:`network_stem` of ``openvino_version`` was made from."""
    return stem.removesuffix(network_stem("", openvino_version))


def _version_key(stem: str) -> tuple[int, ...]:
    """The OpenVINO version in a stem as numbers (``(2026, 4, 1)``; ``()`` if none)."""
    version = stem.rsplit("-ov", 1)[-1] if "-ov" in stem else ""
    return tuple(int(n) for n in re.findall(r"\d+", version))


def read_regular(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file (never blocking on a FIFO or device).

    Raises:
        OSError: missing, unreadable, or not a regular file.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def checksum(path: Path) -> tuple[int, int]:
    """``(size, CRC-32)`` of the regular file ``path`` (read through a memory map)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        size = os.fstat(fd).st_size
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        if size == 0:
            return 0, zlib.crc32(b"")
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as view:
            return size, zlib.crc32(view)
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system syncs folders (Windows)
        _fsync(folder)


def checked_paths(folder: Path, stem: str) -> tuple[Path, dict[str, Any]] | None:
    """``(xml path, manifest)`` when the network ``stem`` in ``folder`` is complete and its
    files match their manifest; None (with the reason logged) when it is not there or
    damaged."""
    manifest_path = folder / f"{stem}.json"
    try:
        manifest = json.loads(read_regular(manifest_path))
        files = manifest["files"]
        for suffix in _PARTS:
            size, crc = checksum(folder / f"{stem}{suffix}")
            expected = files[suffix]
            if (size, crc) != (expected["size"], expected["crc32"]):
                raise ValueError(f"{stem}{suffix} does not match its manifest (size {size}, "
                                 f"expected {expected['size']}): damaged or replaced")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
        log.warning("converted network %s in %s is unusable (%s); converting it again",
                    stem, folder, e)
        return None
    return folder / f"{stem}.xml", manifest


def save(network: Any, folder: Path, stem: str, facts: dict[str, Any]) -> bool:
    """Save ``network`` as ``stem`` in ``folder`` with its manifest (``facts`` plus the
    files' checksums): all or nothing, on disk before it counts. A failure only costs the
    conversion next time (False)."""
    from .openvino_runtime import import_openvino

    tmp = folder / f"{stem}.tmp-{socket.gethostname().replace('.', '_')}-{os.getpid()}.xml"
    written = [tmp, tmp.with_suffix(".bin"), tmp.with_suffix(".json")]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(folder)
        # float32 as converted: batch norm is folded into new constants on conversion,
        # which float16 would round (scores moved by up to 0.002)
        import_openvino().save_model(network, tmp, compress_to_fp16=False)
        files = {}
        for suffix in _PARTS:
            part = tmp.with_suffix(suffix)
            _fsync(part)
            size, crc = checksum(part)
            files[suffix] = {"size": size, "crc32": crc}
        manifest = {"format": MANIFEST_FORMAT, **facts, "files": files}
        with open(written[2], "x", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        (folder / f"{stem}.json").unlink(missing_ok=True)  # unfinished until renamed back
        for suffix in (*_PARTS, ".json"):  # the manifest last
            os.replace(tmp.with_suffix(suffix), folder / f"{stem}{suffix}")
        _fsync_folder(folder)
    except (OSError, RuntimeError) as e:  # RuntimeError: OpenVINO could not write
        log.info("cannot keep the converted network in %s (%s)", folder, e)
        for leftover in written:
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)
        return False
    log.info("converted network kept in %s", folder / f"{stem}.xml")
    forget_older_versions(folder, stem)
    forget_unused(folder, stem)
    return True


def _is_stale(path: Path, now: float) -> bool:
    """Whether ``path`` is a temporary file of a save that is over: its process is gone
    (same machine), or it is older than :data:`STALE_AFTER_S`."""
    match = _TEMP.search(path.name)
    if match is None:
        return False
    try:
        if now - path.lstat().st_mtime > STALE_AFTER_S:
            return True
    except OSError:
        return False
    if match["host"] != socket.gethostname().replace(".", "_"):
        return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def remove_stale_temps(folder: Path) -> None:
    """Delete what killed saves left in ``folder`` (never another process's save)."""
    now = time.time()
    for path in folder.glob("*.tmp-*"):
        if _is_stale(path, now):
            with contextlib.suppress(OSError):
                path.unlink()
                log.info("removed %s, left by an interrupted save", path)


def forget_older_versions(folder: Path, stem: str) -> None:
    """Delete the same checkpoint's networks converted by older OpenVINO versions (never
    read again once OpenVINO is upgraded); a newer version's, which another memo sharing
    this folder still reads, is kept."""
    checkpoint, mine = stem.rsplit("-ov", 1)[0], _version_key(stem)
    for path in folder.glob(f"{checkpoint}-ov*"):
        other = path.name.rsplit(".", 1)[0]
        if (".tmp-" not in path.name and path.suffix in (*_PARTS, ".json")
                and other.rsplit("-ov", 1)[0] == checkpoint and _version_key(other) < mine):
            with contextlib.suppress(OSError):
                path.unlink()


def mark_used(folder: Path, stem: str) -> None:
    """Record that a run read the network ``stem`` (its manifest's time; a folder that is
    not writable keeps the old time)."""
    with contextlib.suppress(OSError):
        os.utime(folder / f"{stem}.json")


def _last_used(path: Path) -> float:
    """When ``path`` was last written or (where the file system records it) read."""
    info = path.lstat()
    return max(info.st_mtime, info.st_atime)


def _network_files(manifest: Path) -> list[Path]:
    """The files of the network whose manifest is ``manifest``: the manifest first, then
    the IR (``.xml``, ``.bin``) beside it."""
    return [manifest, *(manifest.with_name(f"{manifest.stem}{suffix}") for suffix in _PARTS)]


def forget_unused(folder: Path, keep: str, now: float | None = None) -> None:
    """Delete the networks no run has read for :data:`UNUSED_AFTER_S` (another model's,
    say the default before an upgrade: about 110 MB each) except ``keep``, and OpenVINO's
    compiled-model files as old (should one still be in use, OpenVINO compiles again:
    about a second). The manifest goes first, so a network is never left half-deleted
    and read."""
    now = time.time() if now is None else now
    for manifest in folder.glob("*.json"):
        with contextlib.suppress(OSError):
            if manifest.stem != keep and now - manifest.lstat().st_mtime > UNUSED_AFTER_S:
                for path in _network_files(manifest):
                    path.unlink(missing_ok=True)
                log.info("removed converted network %s, unused for %d days", manifest.stem,
                         UNUSED_AFTER_S // 86400)
    for compiled in (folder / "compiled").glob("*"):
        with contextlib.suppress(OSError):
            if compiled.is_file() and now - _last_used(compiled) > UNUSED_AFTER_S:
                compiled.unlink()


def folder_facts(folder: Path) -> dict[str, Any]:
    """``{"path", "networks", "size_bytes"}`` of the complete networks in ``folder`` (those
    with a manifest; temporary files of saves are neither counted nor measured), OpenVINO's
    cache of compiled models (``compiled/``) included in the size."""
    networks = size = 0
    with contextlib.suppress(OSError):
        size += sum(f.stat().st_size for f in (folder / "compiled").glob("*") if f.is_file())
    if folder.is_dir():
        for manifest in folder.glob("*.json"):
            parts = _network_files(manifest)
            with contextlib.suppress(OSError):
                sizes = [p.stat().st_size for p in parts if stat.S_ISREG(p.lstat().st_mode)]
                if len(sizes) == len(parts):
                    networks += 1
                    size += sum(sizes)
    return {"path": str(folder), "networks": networks, "size_bytes": size}
