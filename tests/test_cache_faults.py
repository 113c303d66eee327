"""The cache under faults: locked, disk full, read-only, foreign or newer files, hostile merges.

Each fault ends in one line naming the cache (``Error: PATH: ...``), never a traceback.
"""

from __future__ import annotations

import ctypes
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner
from conftest import write_photo

from memocli.cache import Cache, CheckpointSetup, ImageMeta
from memocli.cache import store as cache_mod
from memocli.cli import cli
from memocli.errors import MemoError
from memocli.merge import merge_caches

REPO = Path(__file__).resolve().parent.parent


def run(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def score_args(lib: Path, ckpt: Path, db: Path) -> list[str]:
    return ["score", str(lib), "--json", "-w", str(ckpt), "--cache", str(db), "--workers", "0",
            "-s"]


def last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


# --- locked ------------------------------------------------------------------------------

def test_a_locked_cache_is_one_line_naming_the_cache_and_the_lock(tmp_path, tiny_checkpoint,
                                                                  monkeypatch):
    db = tmp_path / "c.db"
    Cache(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Cache(db, busy_timeout_s=0.1) as cache, \
                pytest.raises(MemoError, match="locked by another process"):
            cache.record_files([("/a.jpg", "h", 1, 1)])
        monkeypatch.setattr(cache_mod, "BUSY_TIMEOUT_S", 0.2)
        write_photo(tmp_path / "lib" / "a.jpg")
        result = run(*score_args(tmp_path / "lib", tiny_checkpoint, db))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1
    assert last_line(result) == (f"Error: {db}: the cache is locked by another process "
                                 "(waited 0.2 s); run again when it is done, or use "
                                 "--cache OTHER.db")


# --- disk full ---------------------------------------------------------------------------

@pytest.fixture
def full_disk(monkeypatch):
    """Every new SQLite connection may not grow its file: SQLite's "disk is full"."""
    real = sqlite3.connect

    def connect(*args, **kwargs):
        conn = real(*args, **kwargs)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {max(pages, 1)}")
        return conn

    def fill() -> None:
        monkeypatch.setattr(sqlite3, "connect", connect)

    return fill


def test_disk_full_while_creating_the_cache_says_so(tmp_path, full_disk):
    full_disk()
    with pytest.raises(MemoError) as caught:
        Cache(tmp_path / "c.db")
    assert str(caught.value) == (f"{tmp_path / 'c.db'}: disk full while writing the cache; "
                                 "free some space and run again (what was saved before is kept)")


def test_disk_full_while_scoring_is_one_line_and_the_cache_stays_intact(tmp_path,
                                                                        tiny_checkpoint,
                                                                        full_disk):
    db, lib = tmp_path / "c.db", tmp_path / "lib"
    write_photo(lib / "a.jpg")
    assert run(*score_args(lib, tiny_checkpoint, db)).exit_code == 0
    for i in range(40):
        write_photo(lib / f"new{i:02d}-{'x' * 200}.jpg", color=(i * 5, 0, 0))
    full_disk()
    result = run(*score_args(lib, tiny_checkpoint, db))
    assert result.exit_code == 1
    assert last_line(result).startswith(f"Error: {db}: disk full while writing the cache")
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_memo_never_calls_an_api_newer_than_its_sqlite_utils_minimum(tmp_path, monkeypatch):
    """pyproject says sqlite-utils>=3.35; Database.atomic exists only from 4.0. (The cache
    tests also pass with 3.35 itself on the path: see the commit that added this test.)"""
    callers = []
    real = sqlite_utils.Database.atomic

    def spy(self):
        callers.append(sys._getframe(1).f_globals["__name__"])
        return real(self)

    monkeypatch.setattr(sqlite_utils.Database, "atomic", spy)
    with Cache(tmp_path / "c.db") as cache:
        cache.record_files([("/a.jpg", "h", 1, 1)], {"h": ImageMeta(1, 2)})
        cache.record_scores("m", [("h", 0.5)], [("h", b"\x00\x01")])
        cache.remember_checkpoint(CheckpointSetup("/m.pt", "cpu", "fp32", "torch", 2, 1, 1), "m")
        assert cache.prune(dry_run=True)["files"] == 1  # /a.jpg
    merge_caches([tmp_path / "c.db"], tmp_path / "d.db")
    assert not [c for c in callers if c.startswith("memocli")]


# --- read-only ---------------------------------------------------------------------------

def _without_root_override() -> None:
    """In the child: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so that even root
    obeys file modes (a read-only folder is then read-only to the test)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_memo_obeying_modes(args: list[str]) -> subprocess.CompletedProcess:
    """``memo ARGS`` in a new process that file permissions apply to, even as root."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "memocli", *args], capture_output=True, check=False,
                          text=True, env=env, timeout=120,
                          preexec_fn=_without_root_override if os.geteuid() == 0 else None)


def test_a_read_only_cache_serves_reads_and_refuses_writes_with_advice(tmp_path,
                                                                       tiny_checkpoint):
    lib, store = tmp_path / "lib", tmp_path / "store"
    write_photo(lib / "a.jpg")
    db = store / "c.db"
    assert run(*score_args(lib, tiny_checkpoint, db)).exit_code == 0
    db.chmod(0o444)
    store.chmod(0o555)
    try:
        rescan = run_memo_obeying_modes(score_args(lib, tiny_checkpoint, db))
        assert rescan.returncode == 0, rescan.stderr
        assert [Path(r["path"]).name for r in json.loads(rescan.stdout)] == ["a.jpg"]
        info = run_memo_obeying_modes(["cache", "info", "--cache", str(db), "--json"])
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["rows"]["scores"] == 1

        write_photo(lib / "b.jpg", color=(0, 200, 0))
        write = run_memo_obeying_modes(score_args(lib, tiny_checkpoint, db))
        assert write.returncode == 1
        assert write.stderr.strip().splitlines()[-1] == (
            f"Error: {db}: the cache is read-only; use --no-cache, or --cache with a "
            "writable path")
    finally:
        store.chmod(0o755)


# --- not memo's, or a newer memo's ---------------------------------------------------------

def test_a_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path, tiny_checkpoint):
    other = tmp_path / "app.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    before = other.read_bytes()
    write_photo(tmp_path / "lib" / "a.jpg")
    result = run(*score_args(tmp_path / "lib", tiny_checkpoint, other))
    assert result.exit_code == 1
    assert last_line(result) == (f"Error: {other}: not a memo cache (an SQLite file with other "
                                 "tables); use --cache with another path")
    assert other.read_bytes() == before
    assert not Path(f"{other}-wal").exists()


def newer_cache(path: Path) -> Path:
    with Cache(path) as c:
        c.record_scores("m", [("h", 0.5)])
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO _memo_migrations VALUES ('m999_future', 'now')")
    return path


def test_a_cache_from_a_newer_memo_is_neither_scored_into_nor_merged_into(tmp_path,
                                                                          tiny_checkpoint):
    newer = newer_cache(tmp_path / "newer.db")
    write_photo(tmp_path / "lib" / "a.jpg")
    result = run(*score_args(tmp_path / "lib", tiny_checkpoint, newer))
    assert result.exit_code == 1
    assert "written by a newer memo (m999_future); upgrade memo" in last_line(result)
    src = tmp_path / "src.db"
    Cache(src).close()
    with pytest.raises(MemoError, match="newer memo"):
        merge_caches([src], newer)
    with sqlite3.connect(newer) as conn:
        assert conn.execute("SELECT count(*) FROM files").fetchone()[0] == 0


# --- hostile merge sources -----------------------------------------------------------------

def hostile_source(path: Path) -> Path:
    with Cache(path) as c:
        c.record_files([("/lib/good.jpg", "good", 1, 1)], {"good": ImageMeta(4, 3, None, "Cam")})
        c.record_scores("m", [("good", 0.5)])
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO scores VALUES (?, 'm', ?, 'now')",
                         [("text", "abc"), ("huge", 9e999), ("minus_huge", -9e999)])
        columns = "INSERT INTO images (content_hash, width, height, taken_at, camera) VALUES"
        conn.execute(f"{columns} ('bytes', 4, 3, NULL, ?)", [b"\xff camera"])
        conn.execute(f"{columns} ('wide', 'wide', 3, NULL, NULL)")
    return path


def test_merge_refuses_values_of_the_wrong_type_and_says_how_many(tmp_path, tiny_checkpoint):
    src, dst = hostile_source(tmp_path / "src.db"), tmp_path / "dst.db"
    result = run("cache", "merge", str(src), "--into", str(dst))
    assert result.exit_code == 1
    assert (f"{src}: refused 2 images row(s), 3 scores row(s) (a value of the wrong type, "
            "or not a finite number)") in result.stderr
    assert last_line(result) == "Error: 5 row(s) refused"
    with sqlite3.connect(dst) as conn:
        assert conn.execute("SELECT content_hash, score FROM scores").fetchall() == [
            ("good", 0.5)]
        assert conn.execute("SELECT content_hash FROM images").fetchall() == [("good",)]


def test_merge_quotes_identifiers_and_refuses_a_table_without_its_key(tmp_path):
    src, dst = hostile_source(tmp_path / "src.db"), tmp_path / "dst.db"
    with sqlite3.connect(src) as conn:
        conn.execute('CREATE TABLE "a""b); DROP TABLE scores; --" (x)')
    reports = merge_caches([src], dst)
    assert reports[0].added["scores"] == 1
    with sqlite3.connect(dst) as conn:
        assert conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 1

    keyless = tmp_path / "keyless.db"
    Cache(keyless).close()
    with sqlite3.connect(keyless) as conn:
        conn.execute("DROP TABLE scores")
        conn.execute("CREATE TABLE scores (model TEXT, score FLOAT)")
    with pytest.raises(MemoError, match="its table 'scores' has no 'content_hash' column"):
        merge_caches([keyless], dst)


def test_rows_of_the_wrong_type_already_in_a_cache_are_rescored_not_crashed_on(
        tmp_path, tiny_checkpoint):
    db, lib = tmp_path / "c.db", tmp_path / "lib"
    write_photo(lib / "a.jpg")
    first = json.loads(run(*score_args(lib, tiny_checkpoint, db)).stdout)[0]
    with sqlite3.connect(db) as conn:  # as an older memo's merge could have left it
        conn.execute("UPDATE scores SET score = 9e999")
        conn.execute("UPDATE images SET camera = ?, width = 'wide'", [b"\xff\x00"])
    result = run(*score_args(lib, tiny_checkpoint, db))
    assert result.exit_code == 0
    again = json.loads(result.stdout)[0]
    assert again["raw_score"] == first["raw_score"] and again["width"] is None
    export = run("export", str(lib), str(tmp_path / "o.json"), "-w", str(tiny_checkpoint),
                 "--cache", str(db), "-s")
    assert export.exit_code == 0
    json.loads((tmp_path / "o.json").read_text())


# --- malformed feature vectors --------------------------------------------------------------

def truncate_vector(db: Path, content_hash: str, length: int = 1024) -> None:
    """Cut one stored feature vector short, as a damaged shard's merge could leave it."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE features SET vector = substr(vector, 1, ?) WHERE content_hash = ?",
                     [length, content_hash])


@pytest.mark.parametrize("command", [
    ["score", "--json"], ["score", "--csv"], ["score", "--one-per-burst"], ["export", "-"],
])
def test_a_malformed_feature_vector_is_recomputed_with_a_warning_not_crashed_on(
        tmp_path, make_photos, tiny_checkpoint, command):
    db = tmp_path / "c.db"
    photos = make_photos(3)
    args = [command[0], str(photos[0].parent), *command[1:], "-w", str(tiny_checkpoint),
            "--cache", str(db), "--workers", "0"]
    first = run(*args)
    assert first.exit_code == 0
    with sqlite3.connect(db) as conn:
        victim = conn.execute("SELECT content_hash FROM files WHERE path = ?",
                              [str(photos[1].resolve())]).fetchone()[0]
    truncate_vector(db, victim)
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout == first.stdout
    assert (f"warning: {photos[1]}: malformed feature vector in the cache (1024 bytes where "
            "this model's have 4096); computing it again") in result.stderr
    assert "2 from the cache, 1 scored now" in result.stderr
    with sqlite3.connect(db) as conn:  # the cache is whole again
        assert conn.execute("SELECT DISTINCT length(vector) FROM features").fetchall() == [
            (4096,)]


def test_merge_refuses_feature_vectors_of_another_length_than_the_models(tmp_path):
    dst, shard, lone = tmp_path / "dst.db", tmp_path / "shard.db", tmp_path / "lone.db"
    with Cache(dst) as c:
        c.record_scores("m", [("a", 0.1)], [("a", bytes(4096))])
    with Cache(shard) as c:
        c.record_scores("m", [("b", 0.2), ("c", 0.3)], [("b", bytes(4096)), ("c", bytes(1024))])
        c.record_scores("n", [("b", 0.2)], [("b", bytes(7))])  # odd: no float16 vector
    with Cache(lone) as c:  # a model the destination has no vectors of: the source's decide
        c.record_scores("k", [("d", 0.4), ("e", 0.5), ("f", 0.6)],
                        [("d", bytes(64)), ("e", bytes(64)), ("f", bytes(32))])
    result = run("cache", "merge", str(shard), str(lone), "--into", str(dst))
    assert result.exit_code == 1
    assert f"{shard}: refused 2 features row(s)" in result.stderr
    assert f"{lone}: refused 1 features row(s)" in result.stderr
    assert "a feature vector of another length than its model's" in result.stderr
    assert last_line(result) == "Error: 3 row(s) refused"
    with sqlite3.connect(dst) as conn:
        assert conn.execute("SELECT model, content_hash, length(vector) FROM features "
                            "ORDER BY 1, 2").fetchall() == [
            ("k", "d", 64), ("k", "e", 64), ("m", "a", 4096), ("m", "b", 4096)]
        assert conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 7  # scores stay
