import pickle

import pytest
import torch
from conftest import tiny_checkpoint_at
from PIL import Image

from memocli.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from memocli.errors import MemoError
from memocli.model import VNet
from memocli.registry import get_config


@pytest.mark.slow
def test_round_trip_gives_identical_scores_and_metadata(tmp_path):
    torch.manual_seed(1)
    model = VNet(get_config("vnet_tiny")).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, metrics={"val_rho": 0.5},
                           train_data={"data": "x"}, backbone_init="random")
    loaded = load_checkpoint(path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    assert loaded.meta["arch"] == "vnet_tiny"
    assert loaded.meta["metrics"] == {"val_rho": 0.5}
    assert loaded.meta["cfg"]["mean"] == list(model.cfg.mean)
    assert loaded.checkpoint_id.startswith("vnet_tiny-")
    # plain data only: the strict loader accepts it
    assert torch.load(path, weights_only=True)["format"] == "memo-checkpoint"


@pytest.mark.slow
def test_half_storage_loads_back_close(tmp_path):
    model = VNet(get_config("vnet_tiny")).eval()
    path = save_checkpoint(tmp_path / "h.pt", model, half=True)
    loaded = load_checkpoint(path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), model(x), atol=1e-2)
    assert next(loaded.model.parameters()).dtype == torch.float32


def test_normalisation_travels_with_the_checkpoint(tmp_path):
    cfg = get_config("vnet_tiny").with_normalisation((0, 0, 0), (1, 1, 1))
    path = save_checkpoint(tmp_path / "n.pt", VNet(cfg))
    assert load_checkpoint(path).cfg.mean == (0.0, 0.0, 0.0)


def test_different_models_get_different_ids(tmp_path):
    a = load_checkpoint(tiny_checkpoint_at(tmp_path / "a.pt", seed=1)).checkpoint_id
    b = load_checkpoint(tiny_checkpoint_at(tmp_path / "b.pt", seed=2)).checkpoint_id
    assert a != b


def test_wrapper_prefixes_are_stripped(tmp_path):
    model = VNet(get_config("vnet_tiny"))
    path = save_checkpoint(tmp_path / "p.pt", model)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = {f"module.{k}": v for k, v in payload["state_dict"].items()}
    torch.save(payload, path)
    load_checkpoint(path)


def test_weights_of_another_shape_are_refused_not_half_loaded(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", VNet(get_config("vnet_tiny")))
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["heads.score.regressor.weight"] = torch.zeros(1, 99)
    torch.save(payload, path)
    with pytest.raises(MemoError, match="weights do not match"):
        load_checkpoint(path)


def test_config_that_contradicts_its_architecture_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", VNet(get_config("vnet_tiny")))
    payload = torch.load(path, weights_only=True)
    payload["cfg"]["lstm_hidden"] = 64
    torch.save(payload, path)
    with pytest.raises(MemoError, match="lstm_hidden"):
        load_checkpoint(path)


def test_expected_architecture_is_enforced(tiny_checkpoint):
    with pytest.raises(MemoError, match="not 'vnet_r50'"):
        load_checkpoint(tiny_checkpoint, expect_arch="vnet_r50")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_bearing_file_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "memo-checkpoint", "payload": Evil()}, path)
    with pytest.raises(MemoError, match="refused"):
        read_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_garbage_and_truncated_files_are_refused(tmp_path, tiny_checkpoint, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    with pytest.raises(MemoError, match="bad.pt"):
        read_checkpoint(bad)
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:2000])
    with pytest.raises(MemoError, match="trunc.pt"):
        load_checkpoint(truncated)


@pytest.mark.parametrize("name", ["notes.txt", "photo.jpg", "README.md", "legacy.pt"])
def test_a_file_that_is_not_a_checkpoint_is_named_in_one_line(tmp_path, name):
    path = tmp_path / name
    if name == "photo.jpg":
        Image.new("RGB", (8, 8)).save(path)
    elif name == "legacy.pt":  # torch's pre-1.6 pickle format: memo never writes it
        torch.save({"format": "memo-checkpoint"}, path, _use_new_zipfile_serialization=False)
    else:
        path.write_text("hello\nworld\n" if name == "notes.txt" else "# memo\n\nA README.")
    with pytest.raises(MemoError) as err:
        load_checkpoint(path)
    assert str(err.value) == f"{path} is not a memo checkpoint"


def test_pickle_refusal_never_advises_unsafe_loading(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "memo-checkpoint", "payload": Evil()}, path)
    with pytest.raises(MemoError) as err:
        read_checkpoint(path)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)


def test_foreign_dict_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(VNet(get_config("vnet_tiny")).state_dict(), path)
    with pytest.raises(MemoError, match="not a memo checkpoint"):
        load_checkpoint(path)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    save_checkpoint(tmp_path / "m.pt", VNet(get_config("vnet_tiny")))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_pickle_module_error_type_is_what_torch_raises(tmp_path):
    # guards the except clause in read_checkpoint: torch raises UnpicklingError
    path = tmp_path / "evil.pt"
    torch.save(Evil(), path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
