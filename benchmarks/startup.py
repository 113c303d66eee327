#!/usr/bin/env python
"""Time to first photo: ``memo score`` of one new photo in a library already scored, with
the converted network already on disk (engines warm), as a whole process, and where the
time goes.

In a fresh ``MEMO_HOME`` it scores a few LNSIM photos once (converting the network), then,
for each precision asked (``auto``, ``fp32``), adds one photo not seen before and times
``memo score LIBRARY`` as a separate process, ``--runs`` times, the precisions alternating.
It prints the median and the range of each (the CPU may be shared: medians of several runs,
compared only within one run of this script; ``--before PYTHON`` times another memo,
such as an older checkout's, in the same alternation), then one breakdown of a run:

* imports (``python -X importtime``): torch, torchvision, openvino, numpy, PIL, memocli;
* in one process: the converted network checked (CRC-32) and read, compiled (from
  OpenVINO's compiled-model cache after the first run), the photo decoded and made a
  network input, the network run;

and the CPU's features. Needs the LNSIM photos and memo's default weights.

Usage:
    python benchmarks/startup.py [--runs 5] [--precision auto --precision fp32]
                                 [--photos DIR] [--weights PATH] [--before PYTHON]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_PHOTOS = HERE.parents[1] / "shared" / "datasets" / "lnsim" / "images"
IMPORTS = ("torch", "torchvision", "openvino", "numpy", "PIL", "memocli.cli")


def memo(home: Path, *args: str, python: tuple[str, ...] = (),
         interpreter: str = sys.executable) -> tuple[float, float, str]:
    """Seconds a ``memo`` process took, its peak resident memory (MiB), and its stderr."""
    env = {**os.environ, "MEMO_HOME": str(home)}
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([interpreter, *python, "-m", "memocli", *args],
                                   env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    if process.returncode:
        raise SystemExit(f"memo {' '.join(args)} failed:\n{stderr}")
    return seconds, usage.ru_maxrss / 1024, stderr


def import_times(stderr: str) -> dict[str, float]:
    """Seconds each top-level package of :data:`IMPORTS` took to import (cumulative)."""
    found: dict[str, float] = {}
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if match and match[3] in IMPORTS and match[3] not in found:
            found[match[3]] = int(match[1]) / 1e6
    return found


def phases(home: Path, weights: Path, library: Path, precision: str) -> dict[str, float]:
    """Seconds of each step of scoring one photo, in this process (after the imports)."""
    os.environ["MEMO_HOME"] = str(home)
    from memocli import ov_store
    from memocli.decode import load_image
    from memocli.engines import engine_cache_dir, openvino_core
    from memocli.ov_network import CompiledVNet
    from memocli.precision import Precision, compute_dtype
    from memocli.preprocess import net_input

    folder = engine_cache_dir()
    stem = next(folder.glob("*.json")).name.removesuffix(".json")
    out = {}
    started = time.perf_counter()
    found = ov_store.checked_paths(folder, stem)
    out["network checked (CRC-32)"] = time.perf_counter() - started
    started = time.perf_counter()
    network = openvino_core().read_model(found[0])
    out["network read"] = time.perf_counter() - started
    cfg = found[1]["cfg"]
    started = time.perf_counter()
    compiled = CompiledVNet(network, Precision.scoring(compute_dtype(precision, "cpu")),
                            tuple(cfg["stage_blocks"]), folder / "compiled")
    out["compiled (OpenVINO's cache)"] = time.perf_counter() - started
    photo = next(library.glob("*.jpg"))
    started = time.perf_counter()
    x = net_input(load_image(photo, cfg["input_size"]), cfg["input_size"], cfg["mean"],
                  cfg["std"])
    out["photo decoded and resized"] = time.perf_counter() - started
    started = time.perf_counter()
    compiled(x[None])
    out["network run (1 photo)"] = time.perf_counter() - started
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--precision", action="append", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--before", metavar="PYTHON",
                        help="also time the memo this Python runs (an older checkout's "
                             "venv), alternating with this one")
    args = parser.parse_args()
    precisions = args.precision or ["auto", "fp32"]
    photos = sorted(args.photos.glob("*.jpg"))
    weights = args.weights or Path(subprocess.run(
        [sys.executable, "-c", "from memocli.files import default_weights_path as d; "
         "print(d())"], capture_output=True, text=True, check=True).stdout.strip())
    work = Path(tempfile.mkdtemp(prefix="memo-startup-"))
    try:
        home, library = work / "home", work / "library"
        library.mkdir()
        for photo in photos[:5]:
            shutil.copy(photo, library)
        fresh = iter(photos[5:])
        common = ["-w", str(weights), "-s"]
        tools = {"this memo": sys.executable}
        if args.before:
            tools["--before"] = args.before
        runs = [(tool, p) for tool in tools for p in precisions]
        for tool, precision in runs:  # convert, and fill OpenVINO's compiled-model cache
            memo(home / tool, "score", str(library), "--precision", precision, *common,
                 interpreter=tools[tool])
        times: dict[tuple, list[float]] = {r: [] for r in runs}
        memory: dict[tuple, list[float]] = {r: [] for r in runs}
        for _ in range(args.runs):
            shutil.copy(next(fresh), library)  # new to every memo home
            for tool, precision in runs:
                seconds, mib, stderr = memo(home / tool, "score", str(library), "--precision",
                                            precision, *common[:-1], interpreter=tools[tool])
                assert "1 scored now" in stderr, stderr
                times[tool, precision].append(seconds)
                memory[tool, precision].append(mib)
        print("memo score of 1 new photo, engines warm, whole process "
              f"(median of {args.runs} alternating runs, range; peak memory):")
        for (tool, precision), values in times.items():
            print(f"  {tool}, --precision {precision}: {statistics.median(values):.2f} s "
                  f"({min(values):.2f}-{max(values):.2f}); "
                  f"{statistics.median(memory[tool, precision]):.0f} MiB")
        home = home / "this memo"
        shutil.copy(next(fresh), library)
        _, _, stderr = memo(home, "score", str(library), *common,
                            python=("-X", "importtime"))
        print("imports (python -X importtime, one run, cumulative):")
        for name, seconds in import_times(stderr).items():
            print(f"  {name}: {seconds:.2f} s")
        for name in IMPORTS:
            if name not in import_times(stderr):
                print(f"  {name}: not imported")
        for precision in precisions:
            print(f"in one process, --precision {precision}:")
            for step, seconds in phases(home, weights, library, precision).items():
                print(f"  {step}: {seconds:.3f} s")
        from memocli.machine import describe_cpu

        print(f"CPU: {describe_cpu()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
