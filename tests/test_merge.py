"""`memo cache merge`: shard caches combine into one that ranks like a single run."""

import sqlite3

import pytest
from click.testing import CliRunner
from conftest import interrupting, invoke, write_photo

from memocli import merge as merge_mod
from memocli.cache import Cache, ImageMeta
from memocli.cache import migrations as cache_mod
from memocli.cli import cli
from memocli.errors import MemoError
from memocli.merge import merge_caches


def dump(path):
    """Every row of every table, sorted: what a cache holds."""
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name != '_memo_migrations'")]
    rows = {t: sorted(conn.execute(f"SELECT * FROM [{t}]").fetchall(), key=repr) for t in tables}
    conn.close()
    return rows


def small_cache(path, scores, model="m"):
    with Cache(path) as c:
        c.record_files([(f"/lib/{h}.jpg", h, 1, 1) for h in scores],
                       {h: ImageMeta(4, 3) for h in scores})
        c.record_scores(model, scores.items())
    return path


def test_shard_caches_merge_into_one_that_exports_like_a_single_run(tmp_path,
                                                                    tiny_checkpoint):
    lib = tmp_path / "lib"
    for i in range(10):
        write_photo(lib / f"d{i % 2}" / f"p{i}.jpg", color=(25 * i,) * 3)
    write_photo(lib / "copy" / "p0.jpg", color=(0,) * 3)  # same content as d0/p0.jpg
    common = ["-w", str(tiny_checkpoint), "--workers", "0", "--batch-size", "1", "-s"]
    shards = [tmp_path / f"shard{i}.db" for i in (1, 2, 3)]
    for i, db in enumerate(shards, 1):
        invoke(["score", str(lib), "--shard", f"{i}/3", "--cache", str(db), *common])

    merged = tmp_path / "merged.db"
    out = invoke(["cache", "merge", *map(str, shards), "--into", str(merged)]).stdout
    assert out.count("added") == 3
    once = dump(merged)
    assert len(once["files"]) == 11 and len(once["scores"]) == len(once["images"]) == 10

    again = invoke(["cache", "merge", *map(str, shards), "--into", str(merged)]).stdout
    assert "added 0 checkpoints" in again and " 1 " not in again
    assert dump(merged) == once  # idempotent

    single = tmp_path / "single.db"
    invoke(["export", str(lib), str(tmp_path / "single.csv"), "--cache", str(single), *common])
    result = invoke(["export", str(lib), str(tmp_path / "merged.csv"), "--cache", str(merged),
                     *common[:-1]])
    assert "0 scored now" in result.stderr  # every score came from the shards
    assert (tmp_path / "merged.csv").read_text() == (tmp_path / "single.csv").read_text()


def test_prune_after_merging_shards_that_saw_other_paths_keeps_their_scores(tmp_path,
                                                                           tiny_checkpoint):
    """docs/scaling.md's case: the jobs saw the library under another path than the merging
    machine. Pruning must not take their scores for those of deleted photos."""
    job_view = tmp_path / "job-mount" / "lib"
    for i in range(4):
        write_photo(job_view / f"p{i}.jpg", color=(40 * i,) * 3)
    common = ["-w", str(tiny_checkpoint), "--workers", "0", "--precision", "fp32", "-s"]
    shards = [tmp_path / f"shard{i}.db" for i in (1, 2)]
    for i, db in enumerate(shards, 1):
        invoke(["score", str(job_view), "--shard", f"{i}/2", "--cache", str(db), *common])
    here = tmp_path / "archive"
    job_view.parent.rename(here)  # the merging machine sees the photos elsewhere
    (here / "lib" / "p3.jpg").unlink()  # and one photo is deleted for good
    archive = tmp_path / "archive.db"
    invoke(["cache", "merge", *map(str, shards), "--into", str(archive)])

    out = invoke(["cache", "prune", "--cache", str(archive)]).stdout
    assert "removed: 0 missing file(s), 0 score(s)" in out
    assert ("kept: 4 file(s) in folders not here (other machines' paths from `memo cache "
            "merge`, or a disk not mounted) and 4 score(s) only they use; --unreachable "
            "forgets them too") in out
    result = invoke(["export", str(here / "lib"), str(tmp_path / "ranks.csv"), "--cache",
                     str(archive), *common[:-1]])
    assert "3 photo(s): 3 from the cache, 0 scored now" in result.stderr

    # The local paths now use 3 of the contents; forgetting the jobs' paths drops the 4th.
    out = invoke(["cache", "prune", "--cache", str(archive), "--unreachable"]).stdout
    assert ("removed: 0 missing file(s), 4 file(s) in folders not here, 1 score(s)"
            in out) and "kept:" not in out
    with sqlite3.connect(archive) as conn:
        assert conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM files").fetchone()[0] == 3
    again = invoke(["export", str(here / "lib"), str(tmp_path / "again.csv"), "--cache",
                    str(archive), *common[:-1]])
    assert "0 scored now" in again.stderr


def test_same_keys_dedupe_and_conflicts_keep_the_destination(tmp_path):
    dst = small_cache(tmp_path / "dst.db", {"a": 0.5, "b": 0.6})
    src = small_cache(tmp_path / "src.db", {"a": 0.5 + 1e-9, "b": 0.9, "c": 0.1})
    (report,) = merge_caches([src], dst)
    assert report.added["scores"] == 1 and report.added["files"] == 1
    assert report.conflicts == 1
    (c,) = report.examples
    assert (c.table, c.key, c.column, c.kept, c.other) == (
        "scores", {"content_hash": "b", "model": "m"}, "score", 0.6, 0.9)
    with Cache(dst) as db:
        assert dict(db.db.execute("SELECT content_hash, score FROM scores").fetchall()) == {
            "a": 0.5, "b": 0.6, "c": 0.1}

    result = CliRunner().invoke(cli, ["cache", "merge", str(src), "--into", str(dst)])
    assert result.exit_code == 1
    assert "conflict in scores (content_hash=b, model=m): kept score 0.600000" in result.stderr
    assert "1 conflicting value(s)" in result.output
    assert invoke(["cache", "merge", str(src), "--into", str(dst), "--tolerance", "0.5"])


def test_destination_is_created_and_sources_must_be_memo_caches(tmp_path):
    src = small_cache(tmp_path / "src.db", {"a": 0.5})
    dst = tmp_path / "new" / "dst.db"
    merge_caches([src], dst)
    assert dump(dst)["scores"] == dump(src)["scores"]

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    text = tmp_path / "notes.db"
    text.write_text("not a database at all " * 100)
    for bad in (other, text):
        result = CliRunner().invoke(cli, ["cache", "merge", str(bad), "--into", str(dst)])
        assert result.exit_code == 1
        assert f"{bad}: not a memo cache" in result.output and "Traceback" not in result.output
    with pytest.raises(MemoError, match="is the destination"):
        merge_caches([dst], dst)


def test_a_source_from_a_newer_memo_is_refused(tmp_path):
    src = small_cache(tmp_path / "src.db", {"a": 0.5})
    with sqlite3.connect(src) as conn:
        conn.execute("INSERT INTO _memo_migrations VALUES ('m999_future', 'now')")
    with pytest.raises(MemoError, match="newer memo.*m999_future"):
        merge_caches([src], tmp_path / "dst.db")


def test_any_table_of_a_migration_merges_and_old_caches_too(tmp_path, monkeypatch):
    def m900_vectors(db):
        db.table("vectors").create({"content_hash": str, "model": str, "vector": bytes},
                                   pk=("content_hash", "model"))

    old = tmp_path / "old.db"
    monkeypatch.setattr(cache_mod, "MIGRATIONS", cache_mod.MIGRATIONS[:1])
    with Cache(old) as c:  # a cache of the first release: scores and files only
        c.record_scores("m", [("old", 0.3)])
    monkeypatch.setattr(cache_mod, "MIGRATIONS", [*cache_mod.MIGRATIONS, m900_vectors])

    src = tmp_path / "src.db"
    with Cache(src) as c:
        c.db.execute("INSERT INTO vectors VALUES ('h', 'm', x'0102')")
        c.db.conn.commit()
    dst = tmp_path / "dst.db"
    reports = merge_caches([src, old], dst)
    assert reports[0].added["vectors"] == 1
    assert reports[1].added == {"files": 0, "scores": 1}  # the tables it has
    assert dump(dst)["vectors"] == [("h", "m", b"\x01\x02")]
    assert dump(dst)["scores"][0][:3] == ("old", "m", 0.3)


def test_every_cache_table_has_a_primary_key(tmp_path):
    """What makes merging idempotent: INSERT OR IGNORE needs a key to ignore on."""
    with Cache(tmp_path / "c.db") as c:
        for name in c.db.table_names():
            assert c.db.table(name).pks != ["rowid"], name


def test_a_failed_merge_leaves_the_destination_as_it_was(tmp_path, monkeypatch):
    dst = small_cache(tmp_path / "dst.db", {"a": 0.5})
    src = small_cache(tmp_path / "src.db", {"b": 0.6, "c": 0.7})
    before = dump(dst)
    monkeypatch.setattr(merge_mod, "_merge_table", interrupting(merge_mod._merge_table, 2))
    with pytest.raises(KeyboardInterrupt):
        merge_caches([src], dst)
    assert dump(dst) == before
    monkeypatch.undo()
    merge_caches([src], dst)
    assert len(dump(dst)["scores"]) == 3
