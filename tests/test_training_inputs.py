"""Training inputs an outside attack tried: odd split files, and a run folder in use."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from conftest import write_photo

from memocli import data
from memocli.cli import cli
from memocli.data import DatasetError, load_split
from memocli.errors import MemoError
from memocli.run_folder import check_run_folder


def lamem(root, lines, split="train_1", images=("a.jpg", "b.jpg"), encoding="utf-8"):
    for name in images:
        write_photo(root / "images" / name)
    (root / "splits").mkdir(parents=True, exist_ok=True)
    (root / "splits" / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding=encoding)
    return root


def problems_of(root, split="train_1"):
    with pytest.raises(DatasetError) as caught:
        load_split(root, split)
    return caught.value


# --- split files ---------------------------------------------------------------------------

def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    root = lamem(tmp_path / "ds", ["a.jpg 0.5", "b.jpg 0.25"], encoding="utf-8-sig")
    assert [i.path.name for i in load_split(root, "train_1")] == ["a.jpg", "b.jpg"]
    write_photo(tmp_path / "a.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,score\na.jpg,0.5\n", encoding="utf-8-sig")
    assert [i.score for i in load_split(manifest, None)] == [0.5]


@pytest.mark.parametrize("score", ["1e30", "-1e30", "inf", "nan", "1000.5"])
def test_scores_that_are_not_finite_or_absurdly_large_are_refused_with_file_and_line(
        tmp_path, score):
    root = lamem(tmp_path / "ds", ["a.jpg 0.5", f"b.jpg {score}"])
    err = problems_of(root)
    assert err.problems == [f"splits/train_1.txt:2: score {score} is not a finite number "
                            "within ±1000"]


def test_scores_on_another_scale_are_fine(tmp_path):
    """A teacher's scores may be on another scale: its head learns that scale."""
    root = lamem(tmp_path / "ds", ["a.jpg 0", "b.jpg 7.5"])
    assert [i.score for i in load_split(root, "train_1")] == [0.0, 7.5]
    root = lamem(tmp_path / "ds2", ["a.jpg -3", "b.jpg 1000"])
    assert [i.score for i in load_split(root, "train_1")] == [-3.0, 1000.0]


def test_a_name_listed_twice_with_different_scores_is_refused(tmp_path):
    root = lamem(tmp_path / "ds", ["a.jpg 0.5", "b.jpg 0.2", "./a.jpg 0.9", "b.jpg 0.2"])
    err = problems_of(root)
    assert err.problems == ["splits/train_1.txt:3: ./a.jpg is listed again with another score "
                            "(0.9; splits/train_1.txt:1 says 0.5)"]


def test_images_linked_into_a_shared_store_are_fine_but_dotdot_is_not(tmp_path):
    store = tmp_path / "store"
    write_photo(store / "shared.jpg")
    root = lamem(tmp_path / "ds", ["a.jpg 0.5", "shared.jpg 0.4", "sub/deep.jpg 0.3"])
    os.symlink(store / "shared.jpg", root / "images" / "shared.jpg")
    os.symlink(store, root / "images" / "sub")
    write_photo(store / "deep.jpg")
    assert [i.path.name for i in load_split(root, "train_1")] == ["a.jpg", "shared.jpg",
                                                                  "deep.jpg"]
    write_photo(tmp_path / "ds" / "outside.jpg")
    root = lamem(tmp_path / "ds", ["../outside.jpg 0.5", "sub/../../outside.jpg 0.5",
                                   "/etc/hosts 0.5"])
    assert [p.split(": ", 1)[1] for p in problems_of(root).problems] == [
        f"image path {name!r} leaves {root / 'images'}"
        for name in ("../outside.jpg", "sub/../../outside.jpg", "/etc/hosts")]


def test_a_long_split_of_missing_files_stops_after_a_few_dozen_problems(tmp_path,
                                                                        monkeypatch):
    lines = [f"missing_{i:06d}.jpg 0.5" for i in range(100_000)]
    root = lamem(tmp_path / "ds", lines)
    checked = []
    real = data._check_image
    monkeypatch.setattr(data, "_check_image", lambda path: checked.append(path) or real(path))
    err = problems_of(root)
    assert len(err.problems) == data.MAX_PROBLEMS == len(checked)
    assert err.stopped_at == f"splits/train_1.txt:{data.MAX_PROBLEMS}"
    assert str(err).startswith(f"dataset has at least {data.MAX_PROBLEMS} problem(s) "
                               f"(checking stopped at splits/train_1.txt:{data.MAX_PROBLEMS}):")


def test_bad_scores_stop_memo_train_before_any_epoch(tmp_path):
    root = lamem(tmp_path / "ds", ["a.jpg 1e30", "b.jpg 0.5"])
    lamem(root, ["a.jpg 0.5"], split="val_1")
    result = CliRunner().invoke(cli, ["train", str(root), "--out", str(tmp_path / "run"),
                                      "--model", "vnet_tiny", "-s"])
    assert result.exit_code == 1
    assert "splits/train_1.txt:1: score 1e30 is not a finite number within ±1000" in (
        result.output)
    assert not (tmp_path / "run").exists()


# --- the run folder ------------------------------------------------------------------------

FINGERPRINTS = {"fingerprints": {"train": "aaaa", "val": "bbbb"}, "data": "/here"}


def earlier_run(folder, description=FINGERPRINTS):
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"an earlier run's weights")
    (folder / "config.json").write_text(json.dumps({"data": description}))
    return folder


def test_a_new_or_empty_folder_is_fine(tmp_path):
    check_run_folder(tmp_path / "new", {tmp_path / "new": FINGERPRINTS}, False, False)
    (tmp_path / "empty").mkdir()
    check_run_folder(tmp_path / "empty", {tmp_path / "empty": FINGERPRINTS}, False, False)


def test_a_folder_holding_a_run_is_refused_unless_resumed_on_the_same_data_or_forced(
        tmp_path):
    run = earlier_run(tmp_path / "run")
    with pytest.raises(MemoError, match="already holds a run .*--resume .*--force"):
        check_run_folder(run, {run: FINGERPRINTS}, resume=False, force=False)
    check_run_folder(run, {run: {**FINGERPRINTS, "data": "/moved/there"}}, resume=True,
                     force=False)
    other = {"fingerprints": {"train": "cccc", "val": "bbbb"}}
    with pytest.raises(MemoError, match=r"cannot resume, the training data changed \(the run there"):
        check_run_folder(run, {run: other}, resume=True, force=False)
    check_run_folder(run, {run: other}, resume=False, force=True)
    (run / "config.json").unlink()
    with pytest.raises(MemoError, match="cannot tell what data"):
        check_run_folder(run, {run: FINGERPRINTS}, resume=True, force=False)


def test_several_sources_are_compared_by_name_weight_and_fingerprints(tmp_path):
    sources = {"sources": [{"name": "lamem", "weight": 1.0, "fingerprints": {"train": "a"}},
                           {"name": "lnsim", "weight": 0.5, "fingerprints": {"train": "b"}}]}
    run = earlier_run(tmp_path / "run", sources)
    check_run_folder(run, {run: sources}, resume=True, force=False)
    reweighted = {"sources": [sources["sources"][0], {**sources["sources"][1], "weight": 2.0}]}
    with pytest.raises(MemoError, match="the training data changed"):
        check_run_folder(run, {run: reweighted}, resume=True, force=False)


def test_each_fold_folder_is_compared_on_resume(tmp_path):
    out = tmp_path / "runs"
    earlier_run(out / "fold_1")
    earlier_run(out / "fold_2", {"fingerprints": {"train": "zzzz", "val": "bbbb"}})
    folds = {out / "fold_1": FINGERPRINTS, out / "fold_2": FINGERPRINTS,
             out / "fold_3": FINGERPRINTS}
    with pytest.raises(MemoError, match="fold_2: cannot resume, the training data changed"):
        check_run_folder(out, folds, resume=True, force=False)


def test_memo_train_refuses_an_out_folder_holding_another_run(tmp_path):
    root = lamem(tmp_path / "ds", ["a.jpg 0.5", "b.jpg 0.25"])
    lamem(root, ["a.jpg 0.5"], split="val_1")
    run = earlier_run(tmp_path / "run")
    result = CliRunner().invoke(cli, ["train", str(root), "--out", str(run), "--model",
                                      "vnet_tiny", "-s"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {run}: already holds a run (or other files); use another --out, --resume to "
        "continue that run, or --force to overwrite it")
    resumed = CliRunner().invoke(cli, ["train", str(root), "--out", str(run), "--model",
                                       "vnet_tiny", "-s", "--resume"])
    assert resumed.exit_code == 1 and "the training data changed" in resumed.output
    assert (run / "last.pt").read_bytes() == b"an earlier run's weights"
