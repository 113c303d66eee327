"""The SQLite score cache: schema and migrations, WAL, lookups, prune, `memo cache`."""

import json
import sqlite3
import subprocess
import sys

import pytest
import sqlite_utils
from click.testing import CliRunner
from conftest import invoke

from memocli.cache import Cache, CheckpointSetup, ImageMeta
from memocli.cache import migrations as cache_mod
from memocli.cli import cli
from memocli.errors import MemoError
from memocli.folders import default_cache_path


def test_schema_is_the_documented_one(tmp_path):
    with Cache(tmp_path / "m.db") as c:
        db = c.db
        assert db.table("scores").columns_dict == {
            "content_hash": str, "model": str, "score": float, "scored_at": str}
        assert db.table("scores").pks == ["content_hash", "model"]
        assert db.table("files").columns_dict == {
            "path": str, "content_hash": str, "size": int, "mtime_ns": int, "seen_at": str}
        assert db.table("files").pks == ["path"]
        assert ["content_hash"] in [i.columns for i in db.table("files").indexes]
        assert db.table("images").columns_dict == {
            "content_hash": str, "width": int, "height": int, "taken_at": str, "camera": str,
            "kind": str}
        assert db.table("images").pks == ["content_hash"]
        assert db.table("checkpoints").pks == ["path", "device", "precision", "engine",
                                               "preprocessing"]
        assert db.table("failures").columns_dict == {
            "content_hash": str, "preprocessing": int, "reason": str, "failed_at": str}
        assert db.table("failures").pks == ["content_hash"]
        assert c.info()["migrations"] == [m.__name__ for m in cache_mod.MIGRATIONS]


def test_wal_mode_and_busy_timeout(tmp_path):
    with Cache(tmp_path / "m.db") as c:
        assert c.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.db.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_migrations_run_once_and_upgrade_an_old_cache(tmp_path, monkeypatch):
    path = tmp_path / "m.db"
    monkeypatch.setattr(cache_mod, "MIGRATIONS", cache_mod.MIGRATIONS[:1])
    with Cache(path) as c:  # a cache from the first release: scores and files only
        c.record_files([("/p/a.jpg", "h1", 10, 20)])
        c.record_scores("m1", [("h1", 0.5)])
        assert "images" not in c.db.table_names()
    monkeypatch.undo()
    db = sqlite_utils.Database(path)
    assert cache_mod.migrate(db) == [m.__name__ for m in cache_mod.MIGRATIONS[1:]]
    assert cache_mod.migrate(db) == []  # nothing twice
    db.close()
    with Cache(path) as c:
        assert c.lookup_paths(["/p/a.jpg"], "m1")["/p/a.jpg"].score == 0.5


def test_lookups_join_scores_of_the_asked_model_and_content_metadata(tmp_path):
    with Cache(tmp_path / "m.db") as c:
        meta = ImageMeta(4, 3, "2020-01-01T00:00:00", "Cam")
        c.record_files([("/a.jpg", "h1", 1, 2), ("/b.jpg", "h2", 3, 4)], {"h1": meta})
        c.record_scores("m1", [("h1", 0.7)])
        c.record_scores("m2", [("h1", 0.2), ("h2", 0.3)])
        known = c.lookup_paths(["/a.jpg", "/b.jpg", "/c.jpg"], "m1")
        assert set(known) == {"/a.jpg", "/b.jpg"}
        assert (known["/a.jpg"].score, known["/a.jpg"].meta) == (0.7, meta)
        assert (known["/b.jpg"].score, known["/b.jpg"].meta) == (None, None)
        contents = c.lookup_contents(["h1", "h2", "h3"], "m2")
        assert contents["h1"].score == 0.2 and contents["h1"].meta == meta
        assert contents["h2"].score == 0.3 and "h3" not in contents


def test_lookup_handles_more_paths_than_one_query_takes(tmp_path):
    with Cache(tmp_path / "m.db") as c:
        rows = [(f"/p/{i}.jpg", f"h{i}", i, i) for i in range(1234)]
        c.record_files(rows)
        assert len(c.lookup_paths([r[0] for r in rows], "m")) == 1234


def test_default_location(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMO_HOME", str(tmp_path / "home"))
    assert default_cache_path() == tmp_path / "home" / "memo.db"
    monkeypatch.delenv("MEMO_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "memo" / "memo.db"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_cache_path() == tmp_path / "user" / ".cache" / "memo" / "memo.db"


def test_a_file_that_is_not_a_database_is_a_clean_error(tmp_path):
    bad = tmp_path / "m.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(MemoError, match="not a memo cache, or corrupt"):
        Cache(bad)


def test_prune_forgets_missing_files_and_unreferenced_scores(tmp_path):
    keep = tmp_path / "keep.jpg"
    keep.write_bytes(b"x")
    with Cache(tmp_path / "m.db") as c:
        c.record_files([(str(keep), "shared", 1, 1), (str(tmp_path / "copy.jpg"), "shared", 1, 1),
                        (str(tmp_path / "gone.jpg"), "lonely", 1, 1)],
                       {"shared": ImageMeta(), "lonely": ImageMeta()})
        c.record_scores("m", [("shared", 0.5), ("lonely", 0.6)],
                        [("shared", b"\0\0"), ("lonely", b"\0\0")])
        old = CheckpointSetup(str(tmp_path / "old.pt"), "auto", "auto", "auto", 2, 1, 1)
        c.remember_checkpoint(old, "m")
        c.record_failures(2, [("lonely", "truncated")])  # a failure of a gone file goes too
        removed = {"files": 2, "checkpoints": 1, "scores": 1, "images": 1, "features": 1,
                   "failures": 1, "unreachable": 0, "kept_scores": 0}
        assert c.prune(dry_run=True) == removed
        assert c.info()["rows"]["files"] == 3  # dry run changed nothing
        assert c.prune() == removed
        rows = c.info()["rows"]
        assert rows == {"files": 1, "images": 1, "scores": 1, "checkpoints": 0, "features": 1,
                        "failures": 0}
        assert list(c.features(["shared", "lonely"], "m")) == ["shared"]
        assert c.lookup_paths([str(keep)], "m")[str(keep)].score == 0.5


def test_cache_cli_info_and_prune(tmp_path):
    db = tmp_path / "c.db"
    with Cache(db) as c:
        c.record_files([(str(tmp_path / "gone.jpg"), "h", 1, 1)])
        c.record_scores("vnet_tiny-abc", [("h", 0.4)])
    facts = json.loads(invoke(["cache", "info", "--cache", str(db), "--json"]).stdout)
    assert facts["rows"]["scores"] == 1 and facts["models"][0]["model"] == "vnet_tiny-abc"
    assert facts["size_bytes"] > 0
    text = invoke(["cache", "info", "--cache", str(db)]).stdout
    assert "vnet_tiny-abc" in text and "scores:   1" in text
    assert "would remove: 1 missing file(s), 1 score(s)" in invoke(
        ["cache", "prune", "--cache", str(db), "--dry-run"]).stdout
    assert "removed: 1 missing file(s), 1 score(s)" in invoke(
        ["cache", "prune", "--cache", str(db), "--vacuum"]).stdout
    assert json.loads(invoke(["cache", "info", "--cache", str(db), "--json"]).stdout)[
        "rows"]["scores"] == 0


@pytest.mark.parametrize("command", ["info", "prune", "clear"])
def test_a_typed_cache_path_that_does_not_exist_is_an_error(tmp_path, command):
    result = invoke(["cache", command, "--cache", str(tmp_path / "typo.db")], code=2)
    assert f"{tmp_path / 'typo.db'}: no such cache file" in result.stderr
    assert not (tmp_path / "typo.db").exists()


def test_the_default_cache_not_created_yet_is_said_so(isolated_memo_home):
    assert "not created yet" in invoke(["cache", "info"]).stdout
    assert invoke(["cache", "path"]).stdout == f"{isolated_memo_home / 'memo.db'}\n"
    assert "nothing to clear" in invoke(["cache", "clear"]).stdout


def test_cache_clear_asks_first_and_deletes_the_database_and_its_log(tmp_path):
    db = tmp_path / "c.db"
    with Cache(db) as c:
        c.record_scores("m", [("h", 0.1)])
    (tmp_path / "c.db-wal").write_bytes(b"")
    result = CliRunner().invoke(cli, ["cache", "clear", "--cache", str(db)], input="n\n")
    assert result.exit_code == 1 and "Delete the score cache" in result.stderr  # Aborted!
    assert db.exists()
    result = CliRunner().invoke(cli, ["cache", "clear", "--cache", str(db)], input="y\n")
    assert result.exit_code == 0 and result.stdout == f"deleted {db}\n"
    assert not db.exists() and not (tmp_path / "c.db-wal").exists()
    with Cache(db) as c:
        c.record_scores("m", [("h", 0.1)])
    invoke(["cache", "clear", "--cache", str(db), "--yes"])
    assert not db.exists()


def test_cache_info_uses_memo_home_by_default(isolated_memo_home):
    with Cache(default_cache_path()) as c:
        c.record_scores("m", [("h", 0.1)])
    assert str(isolated_memo_home / "memo.db") in invoke(["cache", "info"]).stdout


def test_cache_info_does_not_import_torch(tmp_path):
    with Cache(tmp_path / "c.db") as c:
        c.record_scores("m", [("h", 0.1)])
    db = str(tmp_path / "c.db")
    code = ("import sys\nfrom memocli.cli import cli\n"
            f"cli(['cache', 'info', '--cache', {db!r}], standalone_mode=False)\n"
            "print('torch loaded' if 'torch' in sys.modules else 'no torch')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().endswith("no torch"), out


def test_two_connections_write_in_turn(tmp_path):
    path = tmp_path / "m.db"
    with Cache(path) as a, Cache(path) as b:
        a.record_scores("m", [("h1", 0.1)])
        b.record_scores("m", [("h2", 0.2)])
        assert a.info()["rows"]["scores"] == 2
    assert sqlite3.connect(path).execute("SELECT count(*) FROM scores").fetchone()[0] == 2


def test_an_upgraded_cache_scores_tiffs_again_and_keeps_other_scores(tmp_path, monkeypatch):
    """Before m009 a 32-bit float TIFF was scored as a black image, under an unchanged
    model id; the upgrade forgets TIFF scores only."""
    path = tmp_path / "m.db"
    names = [m.__name__ for m in cache_mod.MIGRATIONS]
    monkeypatch.setattr(cache_mod, "MIGRATIONS",
                        cache_mod.MIGRATIONS[:names.index("m009_rescore_tiffs")])
    with Cache(path) as c:
        c.record_files([("/p/float.TIF", "tif", 1, 1), ("/p/deep.tiff", "tiff", 1, 1),
                        ("/p/a.jpg", "jpg", 1, 1)])
        c.record_scores("m", [("tif", 0.1), ("tiff", 0.2), ("jpg", 0.5)],
                        [(h, b"\0\0" * 4) for h in ("tif", "tiff", "jpg")])
    monkeypatch.undo()
    with Cache(path) as c:
        known = c.lookup_contents(["tif", "tiff", "jpg"], "m")
        assert {h: k.score for h, k in known.items() if k.score is not None} == {"jpg": 0.5}
        assert set(c.features(["tif", "tiff", "jpg"], "m")) == {"jpg"}


def test_an_upgraded_cache_describes_again_the_kinds_pixels_decided(tmp_path, monkeypatch):
    """m010: kinds decided by the classifier before it (no camera name) are forgotten, so
    the next scan decides them with the new one; a camera's photos keep theirs."""
    path = tmp_path / "m.db"
    names = [m.__name__ for m in cache_mod.MIGRATIONS]
    monkeypatch.setattr(cache_mod, "MIGRATIONS",
                        cache_mod.MIGRATIONS[:names.index("m010_describe_kinds_again")])
    metas = {"dark": ImageMeta(640, 480, kind="drawing"),
             "phone": ImageMeta(4032, 3024, camera="Apple iPhone 15", kind="photo")}
    with Cache(path) as c:
        c.record_files([("/p/dark.jpg", "dark", 1, 1), ("/p/phone.jpg", "phone", 1, 1)], metas)
        c.record_scores("m", [("dark", 0.4), ("phone", 0.6)])
    monkeypatch.undo()
    with Cache(path) as c:
        known = c.lookup_contents(["dark", "phone"], "m")
    assert known["dark"].meta.kind is None and known["dark"].score == 0.4
    assert known["phone"].meta.kind == "photo"
