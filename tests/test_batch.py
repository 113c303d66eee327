"""`memo batch`: Ray Data scoring into Parquet, on a real local Ray instance (2 CPUs).

One session-scoped Ray instance serves every test; one module-scoped run scores a
library of about 100 generated and real photos (JPEG, PNG, HEIC, DNG, LNSIM photos, one
corrupt file), and the tests check it against `memo export` on the same photos.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHARED_DATASETS, invoke, tiny_checkpoint_at, write_photo
from photo_formats import write_dng, write_heic

from memocli.catalog import resolve_weights

LNSIM = SHARED_DATASETS / "lnsim" / "images"
RAY_REASON = "memo batch needs Ray Data, pyarrow and polars: pip install 'memocli[ray]'"
SCORING = ["--engine", "torch", "--device", "cpu", "--precision", "fp32"]


@pytest.fixture(scope="session")
def ray_address():
    """A local Ray instance for the session (2 CPUs, no GPU); its address."""
    for module in ("ray", "ray.data", "pyarrow", "polars"):
        pytest.importorskip(module, reason=RAY_REASON)
    import ray

    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """About 100 photos: generated JPEGs and a PNG, a HEIC, a DNG, LNSIM photos, and one
    corrupt file."""
    lib = tmp_path_factory.mktemp("batch") / "lib"
    for i in range(88):
        write_photo(lib / f"d{i % 4}" / f"p{i:03d}.jpg", color=(i * 3 % 256, 90, 255 - i),
                    size=(48 + i % 7, 40 + i % 5))
    write_photo(lib / "flat.png", color=(10, 200, 30))
    write_heic(lib / "phone.heic")
    write_dng(lib / "camera.dng", preview="jpeg")
    (lib / "lnsim").mkdir()
    for photo in sorted(LNSIM.glob("*.jpg"))[:5]:
        shutil.copy(photo, lib / "lnsim" / photo.name)
    (lib / "d0" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a whole JPEG")
    return lib


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_checkpoint_at(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def batch_rows(dest: Path) -> list[dict]:
    """Every row of DEST's part files (not DEST/ranked)."""
    import pyarrow.parquet as pq

    rows = []
    for part in sorted(dest.glob("*.parquet")):
        rows += pq.read_table(part).to_pylist()
    return rows


@pytest.fixture(scope="module")
def scored(ray_address, library, checkpoint, tmp_path_factory):
    """One `memo batch --rank` run over the library: (DEST, its rows, the CLI result)."""
    dest = tmp_path_factory.mktemp("out") / "scores"
    result = invoke(["batch", str(library), "--out", str(dest), "-w", str(checkpoint),
                     *SCORING, "--rank", "--rows-per-file", "25", "-s"], code=1)
    return dest, batch_rows(dest), result


def export_rows(library: Path, checkpoint: Path, cache: Path, out: Path,
                include_all: bool = False) -> dict[str, dict]:
    """`memo export` of the library: every picture, or (as by default outside the tests,
    whose conftest sets $MEMO_INCLUDE_ALL) the photos alone."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MEMO_INCLUDE_ALL", raising=False)
        invoke(["export", str(library), str(out), "-w", str(checkpoint), "--cache",
                str(cache), *SCORING, "-s", *["--include-all"] * include_all],
               code=1)  # 1: the corrupt file
    with open(out, newline="") as f:
        return {os.path.abspath(r["path"]): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def exported(library, checkpoint, tmp_path_factory) -> dict[str, tuple[dict[str, dict], Path]]:
    """`memo export` of the library scored directly, of every picture (``all``) and of
    the photos alone, as it ranks by default (``photos``): rows by path, the CSV file."""
    work = tmp_path_factory.mktemp("export")
    out = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MEMO_HOME", str(work / "memo-home"))
        for name, include_all in (("all", True), ("photos", False)):
            csv_file = work / f"{name}.csv"
            out[name] = (export_rows(library, checkpoint, work / "c.db", csv_file, include_all),
                         csv_file)
    return out


@pytest.mark.slow
def test_every_score_equals_memo_exports(scored, library, exported):
    dest, rows, _ = scored
    by_path, _ = exported["all"]
    ok = {r["path"]: r for r in rows if r["error"] is None}
    assert len(rows) == len(list(p for p in library.rglob("*") if p.is_file())) >= 95
    assert set(ok) == set(by_path)
    for path, row in ok.items():
        assert abs(row["raw_score"] - float(by_path[path]["raw_score"])) <= 1e-6, path
        assert row["model_id"] == by_path[path]["model_id"]
        assert row["sha256"] == by_path[path]["content_hash"]
        assert row["kind"] == by_path[path]["kind"]
        assert (row["width"], row["height"]) == (int(by_path[path]["width"]),
                                                 int(by_path[path]["height"]))
        assert row["size"] == os.stat(path).st_size
        assert row["mtime_ns"] == os.stat(path).st_mtime_ns


@pytest.mark.slow
def test_a_corrupt_file_is_an_error_row_and_the_others_are_scored(scored, library):
    dest, rows, result = scored
    bad = [r for r in rows if r["error"] is not None]
    assert [r["path"] for r in bad] == [str(library / "d0" / "corrupt.jpg")]
    assert bad[0]["score"] is None and bad[0]["raw_score"] is None
    assert "cannot decode image" in bad[0]["error"] or "not a recognised" in bad[0]["error"]
    assert all(0 <= r["score"] <= 1 for r in rows if r["error"] is None)
    assert "corrupt.jpg" in result.output and "1 photo(s) could not be scored" in result.output


@pytest.mark.slow
def test_rank_matches_memo_exports_ranking(scored, exported):
    import pyarrow.parquet as pq

    dest, rows, _ = scored
    ranked = pq.read_table(dest / "ranked").to_pylist()
    by_path, _ = exported["photos"]
    assert sorted(r["rank"] for r in ranked) == list(range(1, len(by_path) + 1))
    for row in ranked:
        theirs = by_path[row["path"]]
        assert row["rank"] == int(theirs["rank"]), row["path"]
        assert round(row["percentile"], 2) == pytest.approx(float(theirs["percentile"]))


@pytest.mark.slow
def test_parquet_merged_into_a_cache_exports_as_scoring_directly(scored, library, checkpoint,
                                                                  exported, tmp_path):
    dest, _, _ = scored
    _, direct = exported["photos"]
    merged_cache = tmp_path / "merged.db"
    result = invoke(["cache", "merge", str(dest), "--into", str(merged_cache)])
    assert "added" in result.output
    merged = tmp_path / "merged.csv"
    export_rows(library, checkpoint, merged_cache, merged)
    assert merged.read_text() == direct.read_text()


@pytest.mark.slow
def test_a_killed_job_run_again_scores_only_what_was_missing(ray_address, library, checkpoint,
                                                             tmp_path):
    dest = tmp_path / "scores"
    args = [str(library), "--out", str(dest), "-w", str(checkpoint), *SCORING,
            "--batch-size", "2", "--rows-per-file", "4", "-s"]
    job = subprocess.Popen([sys.executable, "-m", "memocli", "batch", *args],
                           env={**os.environ, "RAY_ADDRESS": ray_address},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(dest.glob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    first = batch_rows(dest)
    total = len([p for p in library.rglob("*") if p.is_file()])
    assert 0 < len(first) < total, "the job was not stopped half-way"
    corrupt_left = all("corrupt" not in r["path"] for r in first)
    result = invoke(["batch", *args[:-1]], code=1 if corrupt_left else 0)
    rows = batch_rows(dest)
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == total
    assert f"{total - len(first)} photo(s) written" in result.output


@pytest.mark.slow
def test_a_manifest_names_the_photos(ray_address, library, checkpoint, scored, tmp_path):
    picked = sorted(p for p in library.rglob("*.jpg") if "corrupt" not in p.name)[:6]
    manifest = tmp_path / "photos.csv"
    lines = ["path"] + [os.path.relpath(p, tmp_path) for p in picked] + ["gone.jpg"]
    manifest.write_text("\n".join(lines) + "\n")
    dest = tmp_path / "scores"
    result = invoke(["batch", str(manifest), "--out", str(dest), "-w", str(checkpoint),
                     *SCORING, "-s"], code=1)
    rows = {r["path"]: r for r in batch_rows(dest)}
    before = {r["path"]: r for r in scored[1]}
    assert set(rows) == {str(p) for p in picked} | {str(tmp_path / "gone.jpg")}
    for p in picked:
        assert rows[str(p)]["raw_score"] == pytest.approx(before[str(p)]["raw_score"], abs=1e-6)
    assert rows[str(tmp_path / "gone.jpg")]["error"] == "file vanished before it could be read"
    assert "gone.jpg" in result.output


@pytest.mark.slow
def test_a_uri_glob_goes_through_pyarrows_file_systems(ray_address, library, checkpoint,
                                                       scored, tmp_path):
    dest = tmp_path / "scores"
    invoke(["batch", f"file://{library}/d1/*.jpg", "--out", f"file://{dest}", "-w",
            str(checkpoint), *SCORING, "-s"])
    rows = batch_rows(dest)
    before = {r["path"]: r for r in scored[1]}
    assert sorted(r["path"] for r in rows) == [f"file://{p}" for p in
                                               sorted((library / "d1").glob("*.jpg"))]
    for row in rows:
        twin = before[row["path"].removeprefix("file://")]
        assert row["raw_score"] == pytest.approx(twin["raw_score"], abs=1e-6)
        assert row["sha256"] == twin["sha256"] and row["size"] == twin["size"]


def test_without_ray_one_line_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from memocli.cli import cli; "
            f"cli(['batch', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: {RAY_REASON}"]


def test_an_ensemble_manifest_is_refused_in_one_line_before_ray_starts(ray_address, library,
                                                                       tmp_path):
    result = invoke(["batch", str(library), "--out", str(tmp_path / "out"), "--weights",
                     "stable", "-s"], 1)
    said = (f"Error: {resolve_weights('stable')}: memo batch scores with one checkpoint, not "
            "an ensemble manifest (such as accurate or stable); pass a checkpoint")
    assert result.stderr.strip().splitlines() == [said]
    assert not (tmp_path / "out").exists()
