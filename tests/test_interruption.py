"""Real processes: killed mid-run, interrupted with Ctrl-C, or two at once on one cache.

Each test runs ``python -m memocli score`` in subprocesses on a few hundred tiny photos and
checks the cache afterwards with plain sqlite3.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import interrupting, write_photo

from memocli import score
from memocli.cli import cli
from memocli.predictor import Predictor

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def photo_library(folder: Path, n: int, start: int = 0) -> list[Path]:
    """``n`` PNGs with distinct content (lossless, so no two files are byte-equal)."""
    return [write_photo(folder / f"p{i:04d}.png", color=(i % 256, i // 256 * 40, 90))
            for i in range(start, start + n)]


def memo_score(*args: str) -> list[str]:
    return [sys.executable, "-m", "memocli", "score", *args, "--csv", "--device", "cpu"]


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def count(db: Path, sql: str = "SELECT count(*) FROM scores") -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def start_and_stop_after(cmd: list[str], db: Path, scores: int, sig: signal.Signals):
    """Start ``cmd``; once ``scores`` rows are committed, send ``sig`` to its process group
    (as a terminal's Ctrl-C reaches the decode workers too). Returns (exit code, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=child_env(), start_new_session=True)
    deadline = time.monotonic() + 120
    while count(db) < scores:
        assert proc.poll() is None, f"memo ended early:\n{proc.stderr.read()}"
        assert time.monotonic() < deadline, "no scores were committed in time"
        time.sleep(0.01)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.mark.slow
def test_sigkill_loses_nothing_committed_and_the_rerun_scores_only_the_rest(
        tmp_path, tiny_checkpoint, monkeypatch):
    n = 300
    lib = tmp_path / "lib"
    photo_library(lib, n)
    db = tmp_path / "c.db"
    code, _ = start_and_stop_after(
        memo_score(str(lib), "--cache", str(db), "-w", str(tiny_checkpoint), "-s",
                   "--batch-size", "4", "--workers", "0"), db, 12, signal.SIGKILL)
    assert code == -signal.SIGKILL
    saved = count(db)
    assert 12 <= saved < n
    assert integrity(db) == "ok"

    given_to_model = []
    real = Predictor.iter_predictions

    def counting(predictor, paths, *args, **kwargs):
        given_to_model.extend(paths)
        yield from real(predictor, paths, *args, **kwargs)

    monkeypatch.setattr(Predictor, "iter_predictions", counting)
    result = CliRunner().invoke(cli, ["score", str(lib), "--csv", "-s", "--cache", str(db),
                                      "-w", str(tiny_checkpoint), "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert len(given_to_model) == n - saved  # only what the killed run had not committed
    assert len(result.stdout.splitlines()) == 1 + n
    assert count(db) == n == count(db, "SELECT count(DISTINCT content_hash) FROM scores")
    assert count(db, "SELECT count(*) FROM files") == n
    assert integrity(db) == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_ends_with_one_line_saying_what_was_saved(tmp_path,
                                                                    tiny_checkpoint, sig):
    lib = tmp_path / "lib"
    photo_library(lib, 200)
    db = tmp_path / "c.db"
    code, err = start_and_stop_after(
        memo_score(str(lib), "--cache", str(db), "-w", str(tiny_checkpoint), "-s",
                   "--batch-size", "4", "--workers", "1"), db, 8, sig)
    assert code == 128 + sig  # 130 for Ctrl-C, 143 for SIGTERM
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    summary = (f"interrupted: the {count(db)} new score(s) so far are saved; "
               "run the same command again to continue")
    assert lines == [summary]


def test_ctrl_c_before_scoring_says_interrupted(tmp_path, tiny_checkpoint, monkeypatch):
    write_photo(tmp_path / "a.png")
    monkeypatch.setattr(score, "scan", interrupting(score.scan, 1))
    result = CliRunner().invoke(cli, ["score", str(tmp_path / "a.png"), "-w",
                                      str(tiny_checkpoint)])
    assert result.exit_code == 130
    assert result.stderr.strip() == "interrupted"


@pytest.mark.slow
def test_two_scorers_on_overlapping_folders_share_one_cache(tmp_path, tiny_checkpoint):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    photo_library(a, 60)
    photo_library(b, 60, start=60)
    photo_library(c, 60, start=120)
    db = tmp_path / "shared.db"
    common = ["--cache", str(db), "-w", str(tiny_checkpoint), "-s", "--batch-size", "2",
              "--workers", "0"]
    procs = [subprocess.Popen(memo_score(*folders, *common), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=child_env())
             for folders in ((str(a), str(b)), (str(b), str(c)))]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err
        assert len(out.splitlines()) == 1 + 120
    assert count(db) == 180 == count(db, "SELECT count(DISTINCT content_hash) FROM scores")
    assert count(db, "SELECT count(*) FROM files") == 180
    assert integrity(db) == "ok"
