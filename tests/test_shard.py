"""`--shard I/N`: a deterministic, balanced split of the photos, whatever the mount point."""

import os

import pytest
from click.testing import CliRunner
from conftest import write_photo

from memocli.cli import cli
from memocli.scan import FoundFile, scan
from memocli.shard import Shard


def relpaths(files):
    return {f.relpath for f in files}


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "disk" / "archive"
    for year in ("2019", "2020"):
        for i in range(12):
            write_photo(root / year / f"day{i % 3}" / f"IMG_{i:04d}.jpg", color=(i * 20,) * 3)
    return root


def test_shards_are_disjoint_and_cover_the_library(library):
    found = scan([library]).files
    shards = [Shard(i, 4).select(found) for i in range(1, 5)]
    assert sum(len(s) for s in shards) == len(found) == 24
    assert set().union(*map(relpaths, shards)) == relpaths(found)
    assert all(s for s in shards)
    assert relpaths(found) == {f"{y}/day{i % 3}/IMG_{i:04d}.jpg"
                               for y in ("2019", "2020") for i in range(12)}


def test_shards_are_balanced():
    files = [FoundFile(f"x/{i}", f"/x/{i}", 1, 1, f"2024/{i // 100:03d}/IMG_{i:05d}.jpg")
             for i in range(8000)]
    sizes = [len(Shard(i, 8).select(files)) for i in range(1, 9)]
    assert sum(sizes) == 8000
    assert max(sizes) - min(sizes) < 0.1 * 1000, sizes


def test_shards_do_not_depend_on_where_the_tree_is_mounted(library, tmp_path, monkeypatch):
    elsewhere = tmp_path / "mnt" / "nas" / "photos"
    elsewhere.parent.mkdir(parents=True)
    os.symlink(library, elsewhere)  # the same tree under another path
    monkeypatch.chdir(library.parent)
    for i in (1, 2, 3):
        shard = Shard(i, 3)
        here = shard.select(scan([elsewhere]).files)
        there = shard.select(scan(["archive"]).files)  # relative, from another folder
        assert relpaths(here) == relpaths(there)
        assert {f.path for f in here}.isdisjoint({f.path for f in there})


def test_a_file_named_on_its_own_is_sharded_by_its_name(library):
    photo = library / "2019" / "day0" / "IMG_0000.jpg"
    (found,) = scan([photo]).files
    assert found.relpath == "IMG_0000.jpg"
    assert sum(Shard(i, 5).holds(found.relpath) for i in range(1, 6)) == 1


@pytest.mark.parametrize("text,message", [
    ("0/4", "need 1 <= I <= N"), ("5/4", "need 1 <= I <= N"), ("3", "is not I/N"),
    ("a/b", "is not I/N"), ("1/2/3", "is not I/N"),
])
def test_bad_shard_is_a_usage_error(text, message, library):
    result = CliRunner().invoke(cli, ["score", str(library), "--shard", text])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_score_takes_only_its_shard(library, tiny_checkpoint, tmp_path):
    result = CliRunner().invoke(cli, ["score", str(library), "--shard", "2/3", "--csv",
                                      "-w", str(tiny_checkpoint), "--workers", "0",
                                      "--cache", str(tmp_path / "s.db")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    want = relpaths(Shard(2, 3).select(scan([library]).files))
    rows = result.stdout.strip().splitlines()[1:]
    assert len(rows) == len(want)
    assert f"shard 2/3: {len(want)} of the 24 photo(s) found" in result.stderr
