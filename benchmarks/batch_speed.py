#!/usr/bin/env python
"""``memo batch`` (Ray Data, Parquet) against ``memo score`` on the same photos.

Runs each tool as a separate process, alternating, on the first ``--limit`` photos of
``--photos`` and on a quarter of them, with the same ``--engine`` and ``--precision``:

* ``memo score --no-cache`` (scan, hash, EXIF, decode workers, model);
* ``memo batch --out`` a fresh folder (local Ray started by the process, decode tasks,
  one scoring actor, Parquet).

From the two sizes it prints, in whole-process wall time, each tool's cost per photo once
started (the slope) and its start-up (the intercept), and memo batch's overhead on both;
the peak resident memory of every Ray worker (``ray::`` processes, read from
``/proc/PID/status`` VmHWM while they run) at both sizes, to show it does not grow with
the number of photos; and the Parquet bytes per photo. Needs ``pip install
'memocli[ray]'``; Linux (``/proc``). Not part of ``make test``. Record results in
``docs/scaling.md``.

Usage:
    python benchmarks/batch_speed.py [--photos DIR] [--limit 2000] [--engine auto]
                                     [--precision auto] [--work /tmp/memo-batch-speed]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from score_speed import pick_photos  # a sibling script, as score_speed imports roofline

LNSIM = Path("/work/shared/datasets/lnsim/images")


def _parent(pid: str) -> str:
    """The parent process id of ``pid`` (from ``/proc/PID/stat``; '0' when gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        return "0"


def _descends(pid: str, root: int) -> bool:
    while pid not in ("0", "1"):
        if pid == str(root):
            return True
        pid = _parent(pid)
    return False


class WorkerPeaks:
    """Samples the peak resident memory (VmHWM) of every ``ray::`` process started under
    the process ``root`` (a ``memo batch`` that starts its own local Ray), while it lives;
    other Ray instances on the machine are left out."""

    def __init__(self, every_s: float = 0.2):
        self.root = 0  # set once the process is started
        self.peaks: dict[int, tuple[str, float]] = {}  # pid -> (name, MiB)
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WorkerPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
                    if not name.startswith("ray::") or not _descends(pid, self.root):
                        continue
                    status = Path(f"/proc/{pid}/status").read_text()
                except (OSError, UnicodeDecodeError):
                    continue
                hwm = next((int(line.split()[1]) / 1024 for line in status.splitlines()
                            if line.startswith("VmHWM:")), 0.0)
                self.peaks[int(pid)] = (name, max(hwm, self.peaks.get(int(pid), ("", 0))[1]))
            self._stop.wait(self.every_s)

    def largest(self) -> dict[str, float]:
        """The largest peak per kind of worker (``ray::IDLE`` and the like merged by name)."""
        out: dict[str, float] = {}
        for name, mib in self.peaks.values():
            kind = name.split("(")[0].split(".")[0]
            out[kind] = max(out.get(kind, 0.0), mib)
        return out


def timed(cmd: list[str], env: dict[str, str], sampler: WorkerPeaks | None = None) -> float:
    """Run ``cmd``; its wall time (``sampler`` watches its Ray workers)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    if sampler is not None:
        sampler.root = proc.pid
    _, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{err[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=LNSIM)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--work", type=Path, default=Path("/tmp/memo-batch-speed"))
    args = parser.parse_args()

    memo = [sys.executable, "-m", "memocli"]
    path = ["--engine", args.engine, "--precision", args.precision]
    env = {**os.environ, "MEMO_HOME": str(args.work / "home")}
    env.pop("RAY_ADDRESS", None)  # each memo batch starts (and stops) its own local Ray
    sizes = sorted({max(1, args.limit // 4), args.limit})
    folders = {n: pick_photos(args.photos, n, args.work / f"photos{n}") for n in sizes}
    if len(list(folders[args.limit].iterdir())) < args.limit:
        raise SystemExit(f"{args.photos}: fewer than --limit {args.limit} JPEGs")
    timed([*memo, "score", str(folders[sizes[0]]), "--no-cache", "--top", "1", "-s", *path],
          env)  # warm-up: page cache, an OpenVINO conversion kept on disk
    score_s, batch_s, peaks, parquet = {}, {}, {}, {}
    for n in sizes:
        score_s[n] = timed([*memo, "score", str(folders[n]), "--no-cache", "--top", "1", "-s",
                            *path], env)
        out = args.work / f"out{n}"
        shutil.rmtree(out, ignore_errors=True)
        with WorkerPeaks() as sampler:
            batch_s[n] = timed([*memo, "batch", str(folders[n]), "--out", str(out), "-s",
                                *path], env, sampler)
        peaks[n] = sampler.largest()
        parquet[n] = sum(p.stat().st_size for p in out.glob("*.parquet")) / n
        print(f"{n:>6} photos: memo score {score_s[n]:7.1f} s, memo batch {batch_s[n]:7.1f} s; "
              f"Parquet {parquet[n]:.0f} bytes/photo", flush=True)

    small, big = sizes[0], sizes[-1]
    print()
    if small != big:
        for tool, wall in (("memo score", score_s), ("memo batch", batch_s)):
            slope = (wall[big] - wall[small]) / (big - small)
            wall["per_photo"], wall["start"] = slope, wall[small] - slope * small
            print(f"{tool}: {1000 * slope:.1f} ms/photo once started "
                  f"({1 / slope:.1f} photos/s), start-up {wall['start']:.1f} s")
        extra = batch_s["per_photo"] / score_s["per_photo"] - 1
        print(f"memo batch overhead: {100 * extra:+.0f}% per photo once started "
              f"({1000 * (batch_s['per_photo'] - score_s['per_photo']):+.1f} ms), "
              f"{batch_s['start'] - score_s['start']:+.1f} s at start-up")
    for n in sizes:
        shown = ", ".join(f"{k} {v:.0f} MiB" for k, v in sorted(peaks[n].items()))
        print(f"peak memory per Ray worker, {n} photos: {shown}")
    print(f"Parquet: {parquet[big]:.0f} bytes/photo (SQLite cache: 5,632, docs/scaling.md)")

    from memocli.machine import describe_cpu

    print(f"CPU: {describe_cpu()}, {os.cpu_count()} logical; engine {args.engine}, "
          f"precision {args.precision}")


if __name__ == "__main__":
    main()
