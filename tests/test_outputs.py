"""Where memo's output files land: one policy for every output (export, report, explain).

Missing folders are created; a symlink is written through to its target (which is replaced
atomically, beside itself) and stays a symlink; a device or FIFO is written in place; a
name as long as the file system allows works; a file in the way is refused before any
scoring.
"""

from __future__ import annotations

import csv
import os
import stat
import threading
from pathlib import Path

import pytest
from conftest import invoke

from memocli.files import atomic_write


@pytest.fixture
def export(tmp_path, make_photos, tiny_checkpoint):
    """``export(out, code=0)``: ``memo export`` of 3 photos to ``out``."""
    photos = make_photos(3)

    def run(out: Path | str, code: int = 0):
        return invoke(["export", str(photos[0].parent), str(out), "-w", str(tiny_checkpoint),
                       "--cache", str(tmp_path / "c.db"), "-s"], code=code)

    return run


def rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.read_text().splitlines()))


def test_export_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path, export):
    target = tmp_path / "ranks-2026.csv"
    target.write_text("old\n")
    link = tmp_path / "ranks.csv"
    link.symlink_to(target.name)
    export(link)
    assert link.is_symlink() and os.readlink(link) == target.name
    assert len(rows(target)) == 3
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_export_through_a_symlink_into_another_folder_writes_beside_the_target(tmp_path,
                                                                              export):
    shared = tmp_path / "shared"
    shared.mkdir()
    target = shared / "ranks.csv"
    target.write_text("old\n")
    os.chmod(target, 0o600)
    here = tmp_path / "here"
    here.mkdir()
    (here / "ranks.csv").symlink_to(target)
    os.chmod(here, 0o555)  # the link's folder is read-only: nothing may be written there
    try:
        export(here / "ranks.csv")
    finally:
        os.chmod(here, 0o755)
    assert (here / "ranks.csv").is_symlink()
    assert len(rows(target)) == 3
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # a private file stays private
    assert sorted(p.name for p in shared.iterdir()) == ["ranks.csv"]  # no temp file left


def test_export_through_a_dangling_symlink_creates_its_target(tmp_path, export):
    link = tmp_path / "ranks.csv"
    link.symlink_to(tmp_path / "out" / "new.csv")
    export(link)
    assert link.is_symlink()
    assert len(rows(tmp_path / "out" / "new.csv")) == 3


def test_export_to_a_fifo_writes_into_it_and_leaves_the_fifo(tmp_path, export):
    fifo = tmp_path / "ranks.csv"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    export(fifo)
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert received and len(list(csv.DictReader(received[0].splitlines()))) == 3


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="making a device node needs root")
def test_export_to_a_device_node_leaves_the_device(tmp_path, export):
    null = tmp_path / "null"  # a second /dev/null: the real one is never put at risk
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    export(null)
    assert stat.S_ISCHR(os.stat(null).st_mode)
    assert os.stat(null).st_rdev == os.makedev(1, 3)


def test_a_249_character_name_is_written(tmp_path, export):
    out = tmp_path / ("r" * 245 + ".csv")  # 249 bytes: the temporary name must be shorter
    export(out)
    assert len(rows(out)) == 3


def test_export_creates_missing_folders_as_report_and_explain_do(tmp_path, export):
    out = tmp_path / "missing" / "dir" / "ranks.csv"
    export(out)
    assert len(rows(out)) == 3


def test_a_file_in_the_way_of_the_folder_is_refused_before_scoring(tmp_path, make_photos,
                                                                  tiny_checkpoint, export):
    (tmp_path / "notes").write_text("mine\n")
    result = export(tmp_path / "notes" / "ranks.csv", code=1)
    assert result.stderr == (f"Error: {tmp_path}/notes/ranks.csv: {tmp_path}/notes is a "
                             "file, not a folder\n")
    result = invoke(["report", str(make_photos(1)[0]), "--out",
                     str(tmp_path / "notes" / "sub" / "r.html"), "-w", str(tiny_checkpoint),
                     "--cache", str(tmp_path / "c.db")], code=1)
    assert result.stderr == (f"Error: {tmp_path}/notes/sub/r.html: cannot create folder "
                             f"{tmp_path}/notes/sub: {tmp_path}/notes is a file\n")
    assert not (tmp_path / "c.db").exists()  # refused before the cache was opened
    assert (tmp_path / "notes").read_text() == "mine\n"


def test_export_to_a_folder_is_refused(tmp_path, export):
    result = export(tmp_path, code=1)
    assert result.stderr == (f"Error: {tmp_path}: is a folder; give the name of a file to "
                             "write\n")


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    out = tmp_path / "ranks.csv"
    out.write_text("old\n")
    with pytest.raises(KeyboardInterrupt), atomic_write(out, "w") as f:
        f.write("half")
        raise KeyboardInterrupt
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["ranks.csv"]
