"""Symbolic links in a photo folder: a link to a folder is followed only inside the folders
given (``--follow-links``: anywhere), never into /proc, /sys or /dev; the summary and -v
say what was not entered. Every link here is a real one."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from conftest import invoke, write_photo

from memocli.scan import LINK_OUT, SYSTEM_FOLDER, scan


@pytest.fixture
def library(tmp_path) -> Path:
    """photos/ with a photo, a subfolder reached twice (itself and a link inside), links to
    /proc, /sys, /dev and /, a link to a folder of photos beside it, and a file link into
    /proc named like a photo."""
    lib = tmp_path / "photos"
    write_photo(lib / "a.jpg")
    write_photo(lib / "sub" / "b.jpg")
    write_photo(tmp_path / "elsewhere" / "c.jpg", color=(200, 40, 40))
    for name, target in [("proc", "/proc"), ("sys", "/sys"), ("dev", "/dev"), ("root", "/"),
                         ("away", "../elsewhere"), ("inside", "sub"),
                         ("status.jpg", "/proc/self/status")]:
        os.symlink(target, lib / name)
    return lib


def names(result) -> list[str]:
    return sorted(f.relpath for f in result.files)


def test_links_out_of_the_folder_and_into_the_system_are_not_followed(library, caplog):
    with caplog.at_level(logging.INFO, logger="memocli.scan"):
        found = scan([library])
    assert names(found) == ["a.jpg", "inside/b.jpg"]  # sub/ reached through its link first
    assert found.passed_over[LINK_OUT] == 2  # away -> ../elsewhere, root -> /
    assert found.passed_over[SYSTEM_FOLDER] == 4  # /proc, /sys, /dev, status.jpg
    assert f"not entered (link out of the folders): {library / 'root'} -> /" in caplog.text
    assert f"not entered (system folder): {library / 'proc'} -> /proc" in caplog.text


def test_follow_links_follows_links_out_but_never_into_the_system(library):
    os.remove(library / "root")  # followed, it would scan the whole machine
    found = scan([library], follow_links=True)
    assert "away/c.jpg" in names(found)
    assert not any(f.relpath.startswith(("proc", "sys", "dev", "status")) for f in found.files)
    assert not any(in_system(f.abspath) for f in found.files)
    assert found.passed_over[SYSTEM_FOLDER] >= 4


def in_system(path: str) -> bool:
    return os.path.realpath(path).startswith(("/proc/", "/sys/", "/dev/"))


def test_a_link_to_a_folder_given_as_well_is_followed(library, tmp_path):
    found = scan([library, tmp_path / "elsewhere"])
    assert "away/c.jpg" in names(found) or "c.jpg" in names(found)
    assert found.passed_over[LINK_OUT] == 1  # root -> / only


def test_a_system_folder_named_on_the_command_line_is_not_scanned(library):
    found = scan(["/proc", library / "root" / "sys"])  # also through a link to /
    assert found.files == []
    assert [reason for _, reason in found.problems] == [
        "in a system folder (/proc, /sys, /dev): never scanned"] * 2


@pytest.mark.slow
def test_score_says_what_it_did_not_enter(library, tiny_checkpoint, tmp_path):
    os.remove(library / "root")  # --follow-links below would follow it to the whole machine
    opts = ["-w", str(tiny_checkpoint), "--cache", str(tmp_path / "c.db"), "--workers", "0"]
    result = invoke(["score", str(library), *opts])
    assert ("2 photo(s): 0 from the cache, 2 scored now" in result.stderr
            and "; not entered: 1 link out of the folders (--follow-links), 4 system folders "
                "(/proc, /sys, /dev)\n" in result.stderr), result.stderr
    result = invoke(["score", str(library), "--follow-links", *opts])
    assert "3 photo(s): 2 from the cache, 1 scored now" in result.stderr
    assert "; not entered: 4 system folders (/proc, /sys, /dev)\n" in result.stderr
