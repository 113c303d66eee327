#!/usr/bin/env python
"""Throughput of ``memo score`` against ResMem on the same photos and device.

For each photo set — the LNSIM photos (about 500x350) and camera-sized 4000x3000 JPEGs made
once by upscaling some of them — it runs, alternating, as separate processes:

* ``memo score`` with a cold cache (first scan: scan, hash, EXIF, decode, model, SQLite),
* ResMem as its documentation shows (``ResMem(pretrained=True)``, its ``transformer``, one
  photo at a time; see ``resmem_score.py``),
* ``memo score`` again on the now-warm cache (re-scan of unchanged photos),

and prints photos/s, the peak resident memory of each process tree, and memo/ResMem.
Photos/s leave out each tool's start-up (Python, torch, loading the model), measured once on
a single photo, so sets of different sizes compare fairly; the wall time includes it. With
``--fp32`` it also runs memo with ``--precision fp32 --engine torch`` (the reference) and
reports the largest score difference from it. ``--precision`` and ``--engine`` choose
memo's path: ``--precision fp32`` is the path of CPUs without bfloat16 (AVX2 machines).

It ends with the machine's CPU features, the path memo took, and the roofline
(``roofline.py``): GFLOP/s each tool reached once started, against the best matrix-product
rate measured on the same cores. Needs ``pip install resmem``; installs nothing and is not
part of ``make test``. Record results in ``docs/performance.md``.

Usage:
    python benchmarks/score_speed.py [--photos DIR] [--limit 500] [--big 100] [--fp32]
                                     [--precision auto] [--engine auto]
                                     [--device auto] [--work /tmp/memo-speed]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_PHOTOS = HERE.parents[1] / "shared" / "datasets" / "lnsim" / "images"
BIG_SIZE = (4000, 3000)


@dataclass
class Run:
    """One timed process: wall seconds, peak RSS (MiB) and what it printed."""

    seconds: float
    peak_mib: float
    stdout: str


def timed(cmd: list[str]) -> Run:
    """Run ``cmd``: its wall time, and the peak RSS of it or any child it waited for."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # wait4 alone reports that tree's usage
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n"
                             f"{err.read()[-2000:]}")
        scale = 2**20 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
        return Run(seconds, usage.ru_maxrss / scale, out.read())


def pick_photos(folder: Path, limit: int, into: Path) -> Path:
    """A folder of links to the first ``limit`` photos of ``folder`` (sorted by name)."""
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if limit:
        photos = photos[:limit]
    if not photos:
        raise SystemExit(f"no JPEG photos in {folder}")
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    for p in photos:
        os.symlink(p.resolve(), into / p.name)
    return into


def make_big(small: Path, count: int, into: Path) -> Path:
    """4000x3000 JPEGs upscaled from the first ``count`` photos of ``small`` (made once)."""
    into.mkdir(parents=True, exist_ok=True)
    for src in sorted(small.iterdir())[:count]:
        dst = into / src.name
        if not dst.exists():
            with Image.open(src) as img:
                img.convert("RGB").resize(BIG_SIZE, Image.BICUBIC).save(dst, quality=90)
    return into


@dataclass
class MemoPath:
    """memo's path: ``--device``, ``--precision`` and ``--engine`` as asked."""

    device: str = "auto"
    precision: str = "auto"
    engine: str = "auto"

    def resolved(self) -> tuple[str, str, str]:
        """``('cpu', 'bf16', 'openvino')``: what memo picks for these options here."""
        from memocli.device import pick_device
        from memocli.engines import pick_engine
        from memocli.precision import compute_dtype

        device = pick_device(self.device)
        dtype = compute_dtype(self.precision, device.type)
        return str(device), dtype, pick_engine(self.engine, device.type, dtype)


REFERENCE = "fp32", "torch"  # --fp32: full float32 in torch, what scores are held to


def memo_cmd(folder: Path, db: Path, path: MemoPath) -> list[str]:
    return [sys.executable, "-m", "memocli", "score", str(folder), "--csv", "-s",
            "--cache", str(db), "--device", path.device, "--precision", path.precision,
            "--engine", path.engine]


def scores_by_name(csv_text: str) -> dict[str, float]:
    return {Path(r["path"]).name: float(r["raw_score"]) for r in csv.DictReader(csv_text.splitlines())}


def startups(small: Path, work: Path, path: MemoPath) -> dict[str, float]:
    """Seconds each tool needs before its first photo: a cold run on a one-photo folder."""
    one = work / "one"
    shutil.rmtree(one, ignore_errors=True)
    one.mkdir()
    first = min(small.iterdir())
    os.symlink(first.resolve(), one / first.name)
    db = work / "one.db"
    for stale in work.glob("one.db*"):
        stale.unlink()
    timed(memo_cmd(one, db, path))  # converts the network for this engine once (kept)
    for stale in work.glob("one.db*"):
        stale.unlink()
    return {"memo": timed(memo_cmd(one, db, path)).seconds,
            "resmem": timed(resmem_cmd(one, path.device)).seconds}


def resmem_cmd(folder: Path, device: str) -> list[str]:
    return [sys.executable, str(HERE / "resmem_score.py"), str(folder), "--device", device]


def bench_set(name: str, folder: Path, work: Path, path: MemoPath, fp32: bool) -> dict:
    n = len(list(folder.iterdir()))
    db = work / f"{name}.db"
    for stale in work.glob(f"{name}.db*"):
        stale.unlink()
    print(f"[{name}] {n} photos: memo first scan ...", file=sys.stderr, flush=True)
    first = timed(memo_cmd(folder, db, path))
    print(f"[{name}] ResMem ...", file=sys.stderr, flush=True)
    resmem = timed(resmem_cmd(folder, path.device))
    print(f"[{name}] memo cached re-scan ...", file=sys.stderr, flush=True)
    cached = timed(memo_cmd(folder, db, path))
    row = {"set": name, "photos": n, "first": first, "cached": cached, "resmem": resmem}
    if fp32:
        print(f"[{name}] memo first scan, reference {REFERENCE} ...", file=sys.stderr,
              flush=True)
        ref = timed(memo_cmd(folder, work / f"{name}-fp32.db", MemoPath(path.device, *REFERENCE)))
        for stale in work.glob(f"{name}-fp32.db*"):
            stale.unlink()
        fast, exact = scores_by_name(first.stdout), scores_by_name(ref.stdout)
        row["fp32"] = ref
        row["max_diff"] = max(abs(fast[k] - exact[k]) for k in exact)
    return row


def machine() -> str:
    import torch

    from memocli.machine import describe_cpu

    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{describe_cpu()}, {os.cpu_count()} logical{gpu}; "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--limit", type=int, default=500, help="photos of the first set (0: all)")
    parser.add_argument("--big", type=int, default=100, help="4000x3000 photos (0: skip)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="memo's --precision")
    parser.add_argument("--engine", default="auto", help="memo's --engine")
    parser.add_argument("--fp32", action="store_true",
                        help="also time memo --precision fp32 --engine torch and compare the "
                             "scores")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "memo-speed")
    args = parser.parse_args()

    work = args.work
    small = pick_photos(args.photos, args.limit, work / "photos")
    sets = [("photos", small)]
    if args.big:
        sets.append(("12mp", make_big(small, args.big, work / f"big-{BIG_SIZE[0]}")))
    print("start-up of each tool (one photo) ...", file=sys.stderr, flush=True)
    path = MemoPath(args.device, args.precision, args.engine)
    start = startups(small, work, path)
    rows = [bench_set(name, folder, work, path, args.fp32) for name, folder in sets]

    def rate(run: Run, n: int, tool: str = "memo") -> float:
        return n / max(run.seconds - start[tool], 1e-9)

    print(f"machine: {machine()}")
    print(f"memo: --device {path.device} --precision {path.precision} --engine {path.engine}"
          f" -> {', '.join(path.resolved())}")
    print(f"start-up: memo {start['memo']:.1f} s, ResMem {start['resmem']:.1f} s")
    header = (f"{'set':<7} {'photos':>6} {'memo s':>7} {'memo img/s':>10} {'ResMem s':>8} "
              f"{'ResMem img/s':>12} {'ratio':>6} {'re-scan s':>9} {'memo MiB':>8} "
              f"{'ResMem MiB':>10}")
    if args.fp32:
        header += f" {'fp32 img/s':>10} {'max |d|':>8}"
    print(header)
    for r in rows:
        n = r["photos"]
        memo_rate, resmem_rate = rate(r["first"], n), rate(r["resmem"], n, "resmem")
        line = (f"{r['set']:<7} {n:>6} {r['first'].seconds:>7.1f} {memo_rate:>10.1f} "
                f"{r['resmem'].seconds:>8.1f} {resmem_rate:>12.1f} "
                f"{memo_rate / resmem_rate:>5.1f}x {r['cached'].seconds:>9.2f} "
                f"{r['first'].peak_mib:>8.0f} {r['resmem'].peak_mib:>10.0f}")
        if args.fp32:
            line += f" {rate(r['fp32'], n):>10.1f} {r['max_diff']:>8.4f}"
        print(line)
    if len(rows) == 2:
        ratio = rate(rows[1]["first"], rows[1]["photos"]) / rate(rows[0]["first"],
                                                                rows[0]["photos"])
        print(f"12 MP photos are scored at {ratio:.0%} of the rate of small ones")
    print_roofline(rate(rows[0]["first"], rows[0]["photos"]),
                   rate(rows[0]["resmem"], rows[0]["photos"], "resmem"), path)


def print_roofline(memo_rate: float, resmem_rate: float, path: MemoPath) -> None:
    """GFLOP/s each tool reached on the first set, against the measured peak."""
    import roofline

    print("roofline (first set, once started):")
    peaks = roofline.gemm_peaks()
    _, dtype, _ = path.resolved()
    memo_peak = peaks.get(dtype, peaks["fp32"])
    for tool, photos_s, gflop, peak in (
            ("memo", memo_rate, roofline.memo_gflop(), memo_peak),
            ("ResMem", resmem_rate, roofline.resmem_gflop(), peaks["fp32"])):
        if gflop is not None:
            print(f"  {tool}: {gflop:.2f} GFLOP/photo x {photos_s:.1f} photos/s = "
                  f"{gflop * photos_s:.0f} GFLOP/s, {gflop * photos_s / peak:.0%} of "
                  f"{peak:.0f} GFLOP/s")
    print("  peak: best measured matrix product, " + ", ".join(
        f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))


if __name__ == "__main__":
    main()
