"""Named models: `--weights r152`, `$MEMO_WEIGHTS=r152`, `memo models`, and where to put one."""

import json
import shutil

import pytest
from click.testing import CliRunner
from test_score_cli import score_json

from memocli import catalog
from memocli.catalog import bundled_weights_dir, resolve_weights, user_weights_dir
from memocli.cli import cli


@pytest.fixture
def as_from_a_wheel(tmp_path, monkeypatch):
    """memo as a wheel installs it: memocli/weights holds the default model only."""
    package = tmp_path / "site-packages" / "memocli"
    (package / "weights").mkdir(parents=True)
    (package / "weights" / "memo-vnet-r50.pt").symlink_to(
        bundled_weights_dir() / "memo-vnet-r50.pt")
    monkeypatch.setattr(catalog, "_PACKAGE_DIR", package)
    return package / "weights"


def test_a_name_resolves_to_the_user_model_folder_first(tiny_checkpoint, isolated_memo_home):
    assert user_weights_dir() == isolated_memo_home / "weights"
    user_weights_dir().mkdir(parents=True)
    placed = shutil.copy(tiny_checkpoint, user_weights_dir() / "memo-vnet-r152.pt")
    assert resolve_weights("r152") == placed
    assert resolve_weights("R152") == placed
    assert resolve_weights(None) == bundled_weights_dir() / "memo-vnet-r50.pt"


def test_paths_pass_through_and_an_existing_file_beats_a_name(tmp_path, monkeypatch):
    assert str(resolve_weights("runs/f1/best.pt")) == "runs/f1/best.pt"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r152").write_text("a file the user named r152")
    assert str(resolve_weights("r152")) == "r152"


def test_scoring_with_a_model_name(make_photos, tiny_checkpoint, tmp_path, monkeypatch):
    photos = make_photos(2)
    user_weights_dir().mkdir(parents=True)
    shutil.copy(tiny_checkpoint, user_weights_dir() / "memo-vnet-r152.pt")
    rows, _ = score_json(photos[0].parent, "r152", tmp_path / "c.db")
    assert len(rows) == 2 and rows[0]["model_id"].startswith("vnet_tiny-")
    monkeypatch.setenv("MEMO_WEIGHTS", "r152")
    result = CliRunner().invoke(cli, ["score", str(photos[0]), "--json", "--no-cache", "-s"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["model_id"] == rows[0]["model_id"]


def test_a_missing_named_model_says_where_to_put_it(make_photos, isolated_memo_home,
                                                    as_from_a_wheel):
    photos = make_photos(1)
    result = CliRunner().invoke(cli, ["score", str(photos[0]), "--weights", "r152"])
    assert result.exit_code == 2
    assert (f"model 'r152' is not installed: put memo-vnet-r152.pt into "
            f"{isolated_memo_home / 'weights'}") in result.stderr


def test_memo_models_lists_names_paths_sizes(tiny_checkpoint, isolated_memo_home,
                                             as_from_a_wheel):
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("r50 ") and str(as_from_a_wheel) in lines[0]
    assert "MB" in lines[0] and "default" in lines[1]
    assert lines[2].startswith("r152 ") and "not installed: put memo-vnet-r152.pt into" in lines[2]
    user_weights_dir().mkdir(parents=True)
    shutil.copy(tiny_checkpoint, user_weights_dir() / "memo-vnet-r152.pt")
    listed = json.loads(CliRunner().invoke(cli, ["models", "--json"]).stdout)
    r152 = next(m for m in listed if m["name"] == "r152")
    assert r152["path"] == str(isolated_memo_home / "weights" / "memo-vnet-r152.pt")
    assert r152["size_bytes"] == tiny_checkpoint.stat().st_size and not r152["default"]
