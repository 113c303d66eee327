"""Files that could not be decoded are remembered by content: re-runs name them in one line
without loading the model, --retry-failed tries again, a fixed file is scored."""

import io
import os
import sys

from conftest import invoke, write_photo

from memocli.cache import Cache
from memocli.cli import progress
from memocli.registry import PREPROCESSING_VERSION


def library(tmp_path):
    lib = tmp_path / "lib"
    for i in range(3):
        write_photo(lib / f"ok_{i}.jpg", color=(40 + 60 * i,) * 3)
    broken = lib / "broken.jpg"
    broken.write_bytes(write_photo(tmp_path / "whole.jpg").read_bytes()[:300])
    return lib, broken


def spoil_keeping_stat(path):
    """Overwrite ``path`` with garbage of the same size and mtime: memo still takes it for
    the checkpoint it knows, and loading it would fail."""
    st = os.stat(path)
    path.write_bytes(b"\0" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_failure_is_remembered_and_reported_without_the_model(tmp_path, tiny_checkpoint):
    lib, broken = library(tmp_path)
    args = ["score", str(lib), "-w", str(tiny_checkpoint), "--cache", str(tmp_path / "c.db"),
            "--csv"]
    first = invoke(args, code=1)
    assert f"skipped {broken}: cannot decode image" in first.stderr
    with Cache(tmp_path / "c.db") as cache:
        stored = cache.db.execute("SELECT preprocessing, reason FROM failures").fetchall()
        assert stored == [(PREPROCESSING_VERSION, first.stderr.split(f"{broken}: ")[1]
                           .splitlines()[0])]
    spoil_keeping_stat(tiny_checkpoint)  # any attempt to load the model now fails
    again = invoke(args, code=1)
    lines = again.stderr.splitlines()
    assert lines[0].startswith(f"1 file could not be read earlier: {broken} (cannot decode")
    assert lines[0].endswith("; --retry-failed tries again")
    assert "skipped" not in again.stderr
    assert again.stdout == first.stdout  # the three photos, from the cache
    assert "could not be read in an earlier run" in lines[-1]
    accepted = invoke([*args, "--accept-known-failures"])  # exit 0
    assert accepted.stdout == first.stdout


def test_retry_failed_tries_again_and_a_fixed_file_is_scored(tmp_path, tiny_checkpoint):
    lib, broken = library(tmp_path)
    args = ["score", str(lib), "-w", str(tiny_checkpoint), "--cache", str(tmp_path / "c.db"),
            "--json"]
    invoke(args, code=1)
    retried = invoke([*args, "--retry-failed"], code=1)
    assert f"skipped {broken}: cannot decode image" in retried.stderr
    assert "earlier" not in retried.stderr
    write_photo(broken, color=(250, 10, 10))  # new content at the same path
    fixed = invoke(args)
    assert "earlier" not in fixed.stderr and "skipped" not in fixed.stderr
    assert str(broken) in fixed.stdout and "4 photo(s): 3 from the cache, 1 scored" in \
        fixed.stderr


def test_strict_stops_at_a_known_failure(tmp_path, tiny_checkpoint):
    lib, broken = library(tmp_path)
    args = ["score", str(lib), "-w", str(tiny_checkpoint), "--cache", str(tmp_path / "c.db")]
    invoke(args, code=1)
    stopped = invoke([*args, "--strict"], code=1)
    assert f"{broken}: cannot decode image" in stopped.stderr
    assert "in an earlier run; stopped: --strict; --retry-failed tries again" in stopped.stderr


def test_a_bar_drawn_by_a_problem_line_is_wiped_when_it_closes(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bars = progress.progress_for_stderr(silent=False)
    with bars.stage(1, "scoring") as advance:
        bars.echo("skipped x.jpg: cannot decode image")  # within the bar's first second
        advance(1)
    shown = sys.stderr.getvalue()
    assert "skipped x.jpg" in shown and "scoring:   0%" in shown
    line = ""  # what the terminal's last line shows: each \r writes over it from the left
    for frame in shown.rsplit("\n", 1)[-1].split("\r"):
        line = frame + line[len(frame):]
    assert line.strip() == ""
