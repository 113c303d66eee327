#!/usr/bin/env python
"""``memo batch`` (Ray Data, Parquet) against ``memo score`` on the same photos.

Runs each tool as a separate process, alternating, on the first ``--limit`` photos of
``--photos`` and on a quarter of them, with the same ``--engine`` and ``--precision``:

* ``memo score --no-cache`` (scan, hash, EXIF, decode workers, model);
* ``memo batch --out`` a fresh folder (local Ray started by the process, decode tasks,
  one scoring actor, Parquet).

From the two sizes it prints, in whole-process wall time and in CPU time (user + system of
every process the tool started, read from ``/proc``: on a shared machine the fairer of the
two), each tool's cost per photo once started (the slope) and its start-up (the
intercept), and memo batch's overhead on both;
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

LNSIM = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lnsim" / "images"


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


class ProcessTree:
    """Samples, every ``every_s`` while it lives, each process under ``root`` (the tool's
    process, its decode workers; for ``memo batch`` the local Ray it starts, so other Ray
    instances on the machine are left out): peak resident memory (VmHWM) and CPU time
    (user + system, the last value seen)."""

    def __init__(self, every_s: float = 0.2):
        self.root = 0  # set once the process is started
        self.seen: dict[str, tuple[str, float, float]] = {}  # pid -> (name, MiB, CPU s)
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProcessTree:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                if not self.root or not _descends(pid, self.root):
                    continue
                try:
                    name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
                    status = Path(f"/proc/{pid}/status").read_text()
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except (OSError, UnicodeDecodeError, IndexError):
                    continue
                hwm = next((int(line.split()[1]) / 1024 for line in status.splitlines()
                            if line.startswith("VmHWM:")), 0.0)
                cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
                old_name, old_hwm, old_cpu = self.seen.get(pid, ("", 0.0, 0.0))
                name = name or old_name  # an exiting process's command line reads empty
                self.seen[pid] = (name, max(hwm, old_hwm), max(cpu, old_cpu))
            self._stop.wait(self.every_s)

    @property
    def cpu_s(self) -> float:
        return sum(cpu for _, _, cpu in self.seen.values())

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds per kind of process (Ray workers by name, others by program)."""
        out: dict[str, float] = {}
        for name, _, cpu in self.seen.values():
            kind = name.split("(")[0] if name.startswith("ray::") else (
                os.path.basename(name.split()[0]) if name.split() else "unnamed")
            out[kind] = out.get(kind, 0.0) + cpu
        return out

    def ray_workers(self) -> dict[str, float]:
        """The largest peak per kind of Ray worker (``ray::IDLE`` and the like by name)."""
        out: dict[str, float] = {}
        for name, mib, _ in self.seen.values():
            if name.startswith("ray::"):
                kind = name.split("(")[0].split(".")[0]
                out[kind] = max(out.get(kind, 0.0), mib)
        return out


def timed(cmd: list[str], env: dict[str, str], tree: ProcessTree) -> float:
    """Run ``cmd`` watched by ``tree``; its wall time."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    tree.root = proc.pid
    _, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{err[-2000:]}")
    return seconds


def slopes(wall: dict[int, float], small: int, big: int) -> tuple[float, float]:
    """Seconds per photo once started, and start-up seconds, from two sizes."""
    per_photo = (wall[big] - wall[small]) / (big - small)
    return per_photo, wall[small] - per_photo * small


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
    with ProcessTree() as tree:  # warm-up: page cache, an OpenVINO conversion kept on disk
        timed([*memo, "score", str(folders[sizes[0]]), "--no-cache", "--top", "1", "-s",
               *path], env, tree)
    wall: dict[str, dict[int, float]] = {"memo score": {}, "memo batch": {}}
    cpu: dict[str, dict[int, float]] = {"memo score": {}, "memo batch": {}}
    peaks, parquet, split = {}, {}, {}
    for n in sizes:
        out = args.work / f"out{n}"
        shutil.rmtree(out, ignore_errors=True)
        commands = {
            "memo score": [*memo, "score", str(folders[n]), "--no-cache", "--top", "1", "-s"],
            "memo batch": [*memo, "batch", str(folders[n]), "--out", str(out), "-s"]}
        for tool, cmd in commands.items():
            with ProcessTree() as tree:
                wall[tool][n] = timed([*cmd, *path], env, tree)
            cpu[tool][n] = tree.cpu_s
        peaks[n], split = tree.ray_workers(), tree.cpu_by_kind()
        parquet[n] = sum(p.stat().st_size for p in out.glob("*.parquet")) / n
        print(f"{n:>6} photos: memo score {wall['memo score'][n]:6.1f} s wall "
              f"{cpu['memo score'][n]:6.1f} s CPU; memo batch {wall['memo batch'][n]:6.1f} s "
              f"wall {cpu['memo batch'][n]:6.1f} s CPU; Parquet {parquet[n]:.0f} bytes/photo",
              flush=True)

    small, big = sizes[0], sizes[-1]
    print()
    if small != big:
        for kind, figures in (("wall", wall), ("CPU", cpu)):
            (score_each, score_start), (batch_each, batch_start) = (
                slopes(figures[tool], small, big) for tool in ("memo score", "memo batch"))
            extra = 100 * (batch_each / score_each - 1)
            print(f"{kind}: memo score {1000 * score_each:.1f} ms/photo once started, "
                  f"start-up {score_start:.1f} s; memo batch {1000 * batch_each:.1f} ms/photo, "
                  f"start-up {batch_start:.1f} s; overhead {extra:+.0f}% per photo, "
                  f"{batch_start - score_start:+.1f} s at start-up")
    for n in sizes:
        shown = ", ".join(f"{k} {v:.0f} MiB" for k, v in sorted(peaks[n].items()))
        print(f"peak memory per Ray worker, {n} photos: {shown}")
    shown = ", ".join(f"{k} {v:.1f}" for k, v in sorted(split.items(), key=lambda kv: -kv[1]))
    print(f"memo batch CPU seconds by process, {big} photos: {shown}")
    print(f"Parquet: {parquet[big]:.0f} bytes/photo (SQLite cache: 5,632, docs/scaling.md)")

    from memocli.machine import describe_cpu

    print(f"CPU: {describe_cpu()}, {os.cpu_count()} logical; engine {args.engine}, "
          f"precision {args.precision}")


if __name__ == "__main__":
    main()
