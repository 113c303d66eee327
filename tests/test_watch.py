"""memo watch, run as a real process: photos copied in slowly, in bursts and into new,
renamed and deleted folders are each scored once; Ctrl-C keeps what was scored. Each batch
scores with the model the first one loaded."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import write_photo
from xmp_samples import exiv2_xmp, needs_exiv2

from memocli.cache import Cache
from memocli.score import score_paths


class Watcher:
    """``memo watch`` in a child process, its output collected as it comes."""

    def __init__(self, args):
        self.proc = subprocess.Popen([sys.executable, "-m", "memocli", "watch", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out, self.err = [], []
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, ls=lines: ls.extend(iter(s.readline, "")),
                             daemon=True).start()

    def wait_for(self, predicate, timeout=90):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            assert self.proc.poll() is None, "".join(self.err)
            time.sleep(0.2)
        raise AssertionError(f"timed out; out={self.out} err={self.err}")

    def scored(self) -> list[str]:
        return [line.split("\t")[0] for line in self.out]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        time.sleep(0.2)  # the reader threads take the last lines
        return code


def slow_copy(source, target, pieces=5, pause=0.2):
    """Copy ``source`` a piece at a time, as a card reader or a sync would."""
    data = source.read_bytes()
    step = len(data) // pieces + 1
    with open(target, "wb") as f:
        for start in range(0, len(data), step):
            f.write(data[start:start + step])
            f.flush()
            time.sleep(pause)


def test_a_later_batch_scores_with_the_model_already_loaded(tmp_path, tiny_checkpoint,
                                                           make_photos):
    photos = make_photos(4)
    with Cache(tmp_path / "memo.db") as cache:
        first = score_paths(photos[:2], cache, weights=tiny_checkpoint, engine="torch")
    predictor = first.source.load()
    with Cache(tmp_path / "memo.db") as cache:  # memo watch opens it per batch
        second = score_paths(photos[2:], cache, weights=tiny_checkpoint, engine="torch",
                             source=first.source)
    assert second.scored == 2 and second.source.load() is predictor


@pytest.mark.slow
@needs_exiv2
def test_photos_arriving_every_way_are_each_scored_once(tmp_path, tiny_checkpoint):
    inbox, stock = tmp_path / "inbox", tmp_path / "stock"
    photos = [write_photo(stock / f"s{i}.jpg", color=(25 * i, 90, 200 - 20 * i))
              for i in range(10)]
    inbox.mkdir()
    shutil.copy(photos[0], inbox / "old.jpg")
    watcher = Watcher([str(inbox), "-w", str(tiny_checkpoint), "--settle", "1.5", "--xmp",
                       "--stars"])
    never_done = inbox / "never_done.jpg"
    stop_growing = threading.Event()

    def grow():  # a copy that never finishes: it must hold up nothing
        with open(never_done, "wb") as f:
            f.write(photos[9].read_bytes()[:100])
            while not stop_growing.wait(0.1):
                f.write(b"\0")
                f.flush()

    try:
        watcher.wait_for(lambda: any("watching" in line for line in watcher.err))
        threading.Thread(target=grow, daemon=True).start()
        slow_copy(photos[1], inbox / "slow.jpg")
        for i in (2, 3, 4, 5):  # a burst
            shutil.copy(photos[i], inbox / f"burst{i}.jpg")
        (inbox / "new" / "deeper").mkdir(parents=True)  # a new folder, filled at once
        shutil.copy(photos[6], inbox / "new" / "deeper" / "n6.jpg")
        (inbox / "tmpname").mkdir()  # created, filled and renamed before it settles
        shutil.copy(photos[7], inbox / "tmpname" / "r7.jpg")
        os.rename(inbox / "tmpname", inbox / "renamed")
        (inbox / "gone").mkdir()  # created and deleted: nothing to score
        shutil.copy(photos[8], inbox / "gone" / "g8.jpg")
        shutil.rmtree(inbox / "gone")
        expected = {str(inbox / n) for n in (
            "old.jpg", "slow.jpg", "burst2.jpg", "burst3.jpg", "burst4.jpg", "burst5.jpg",
            "new/deeper/n6.jpg", "renamed/r7.jpg")}
        watcher.wait_for(lambda: set(watcher.scored()) >= expected)
        time.sleep(2)  # anything scored twice would show by now
    finally:
        stop_growing.set()
        code = watcher.stop()

    assert sorted(watcher.scored()) == sorted(expected)  # each once, never_done not at all
    scored_now = sum(int(m.group(1)) for line in watcher.err
                     if (m := re.search(r"(\d+) scored now", line)))
    assert scored_now == len(expected)  # the model ran once per photo
    stopped = next(line for line in watcher.err if line.startswith("stopped:"))
    assert "8 photo(s) scored and saved" in stopped and "1 still arriving" in stopped
    assert code == 130
    for path in expected:
        assert exiv2_xmp(f"{path}.xmp")["Xmp.memo.Rating"]
    assert not (inbox / "gone").exists() and not (inbox / "tmpname").exists()


def test_a_file_is_handed_over_once_per_version(tmp_path):
    from memocli.watch import ArrivalQueue

    photo = write_photo(tmp_path / "a.jpg")
    queue = ArrivalQueue(settle=0.5)
    queue.add(str(photo))
    assert queue.take(now=100.0) == []  # first seen: its clock starts
    assert queue.take(now=100.6) == [str(photo)]
    queue.add(str(photo))  # an event without a change (opened, metadata read)
    queue.take(now=101.0)
    assert queue.take(now=102.0) == [] and queue.waiting() == 0
    write_photo(photo, color=(9, 9, 9), size=(50, 40))  # a new version
    queue.add(str(photo))
    queue.take(now=103.0)
    assert queue.take(now=104.0) == [str(photo)]
