"""The OpenVINO engine: same scores as torch, its own model id, converted once per machine,
never any telemetry; and the choice of engine."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy
import pytest
import torch
from conftest import invoke, tiny_checkpoint_at

from memocli import engines
from memocli.checkpoint import load_checkpoint
from memocli.engines import compiled_vnet, engine_cache_dir, pick_engine
from memocli.errors import MemoError
from memocli.precision import Precision
from memocli.predictor import Predictor
from memocli.setup_key import setup_keys

pytestmark = pytest.mark.skipif(not engines.openvino_installed(),
                                reason="OpenVINO is not installed")

CPU = torch.device("cpu")
FP32 = Precision.scoring("fp32")


@pytest.fixture
def tiny(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint, device="cpu")


def inputs(model, n=5, seed=1):
    size = model.cfg.input_size
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_openvino_float32_matches_torch(tiny):
    x = inputs(tiny.model)
    torch_scores, torch_last = Predictor(tiny.model, CPU, "fp32").predict(x)
    ov = Predictor(tiny.model, CPU, "fp32", engine="openvino", checkpoint_id="tiny")
    ov_scores, ov_last = ov.predict(x)
    assert ov.engine == "openvino"
    torch.testing.assert_close(ov_last, torch_last, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ov_scores, torch_scores, rtol=1e-4, atol=1e-5)


def test_batch_size_is_free(tiny):
    """One converted network serves every batch size, down to one photo."""
    ov = Predictor(tiny.model, CPU, "fp32", engine="openvino", checkpoint_id="tiny")
    x = inputs(tiny.model, n=3)
    whole = ov.predict(x)[0]
    one_by_one = torch.cat([ov.predict(x[i:i + 1])[0] for i in range(3)])
    torch.testing.assert_close(one_by_one, whole, rtol=1e-5, atol=1e-6)


def test_model_ids_keep_engines_and_their_releases_apart(tiny):
    torch_id = Predictor(tiny.model, CPU, "fp32", checkpoint_id="c").model_id
    ov_id = Predictor(tiny.model, CPU, "fp32", engine="openvino", checkpoint_id="c").model_id
    assert ov_id == f"{torch_id}-ov{engines.openvino_version()}"


def test_auto_picks_openvino_on_the_cpu_only():
    assert pick_engine("auto", "cpu", "fp32") == "openvino"
    assert pick_engine("auto", "cpu", "bf16") == "openvino"
    assert pick_engine("auto", "cpu", "fp16") == "torch"
    assert pick_engine("auto", "cuda", "fp16") == "torch"
    assert pick_engine("torch", "cpu", "fp32") == "torch"


@pytest.mark.parametrize(("device", "dtype", "reason"), [
    ("cuda", "fp16", "CPU only"), ("mps", "fp32", "CPU only"), ("cpu", "fp16", "not fp16")])
def test_asking_for_openvino_where_it_cannot_run_says_why(device, dtype, reason):
    with pytest.raises(MemoError, match=reason):
        pick_engine("openvino", device, dtype)


def test_without_openvino_auto_falls_back_to_torch(monkeypatch):
    monkeypatch.setattr(engines, "openvino_installed", lambda: False)
    assert pick_engine("auto", "cpu", "fp32") == "torch"
    assert setup_keys("cpu", "fp32", "auto")[2] == "auto (no openvino)"
    with pytest.raises(MemoError, match="pip install openvino"):
        pick_engine("openvino", "cpu", "fp32")


def test_converted_once_then_read_back(tiny, monkeypatch):
    model = tiny.model.eval()
    x = inputs(model).numpy()
    first = compiled_vnet(model, FP32, "tiny-x", engine_cache_dir())(x)
    saved = sorted(p.suffix for p in engine_cache_dir().iterdir() if p.is_file())
    assert saved == [".bin", ".json", ".xml"]

    ov = engines.import_openvino()
    monkeypatch.setattr(ov, "convert_model", lambda *a, **k: pytest.fail("converted again"))
    again = compiled_vnet(model, FP32, "tiny-x", engine_cache_dir())(x)
    for a, b in zip(first, again, strict=True):
        numpy.testing.assert_array_equal(a, b)


def test_a_damaged_converted_file_is_converted_again(tiny):
    model = tiny.model.eval()
    x = inputs(model).numpy()
    expected = compiled_vnet(model, FP32, "tiny-x", engine_cache_dir())(x)
    xml = next(engine_cache_dir().glob("*.xml"))
    xml.write_text("<net", encoding="utf-8")
    got = compiled_vnet(model, FP32, "tiny-x", engine_cache_dir())(x)
    for a, b in zip(expected, got, strict=True):
        numpy.testing.assert_array_equal(a, b)
    assert xml.read_text(encoding="utf-8").startswith("<?xml")  # replaced by a good one


def test_an_unwritable_cache_folder_costs_only_the_conversion(tiny, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    model = tiny.model.eval()
    scores, last = compiled_vnet(model, FP32, "tiny-x", blocker / "engines")(
        inputs(model).numpy())
    assert scores.shape == (5,) and last.shape == (5, model.block_channels[-1])
    assert blocker.read_text(encoding="utf-8") == "x"


def test_openvino_sends_no_telemetry_and_writes_nothing_home(tmp_path):
    """Importing OpenVINO and converting a network must not create OpenVINO's client id
    (``~/intel``) nor load its telemetry sender."""
    code = (
        "import sys, torch\n"
        "from memocli.engines import import_openvino\n"
        "ov = import_openvino()\n"
        "ov.convert_model(torch.nn.Conv2d(3, 4, 3), example_input=torch.zeros(1, 3, 8, 8))\n"
        "print(sys.modules.get('openvino_telemetry'))\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "USERPROFILE": str(tmp_path)}
    env.pop("CI", None)  # OpenVINO's own opt-out for CI must not be what passes this test
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=300)
    assert out.stdout.strip() == "None"
    assert not (tmp_path / "intel").exists()


def test_score_with_each_engine_caches_each_apart(make_photos, tiny_checkpoint):
    folder = make_photos(3)[0].parent
    first = invoke(["score", str(folder), "-w", str(tiny_checkpoint), "--engine", "openvino",
                    "--precision", "fp32", "--json"])
    assert "-ov" in first.output and "3 scored now" in first.stderr
    again = invoke(["score", str(folder), "-w", str(tiny_checkpoint), "--engine", "torch",
                    "--precision", "fp32", "--json"])
    assert "3 scored now" in again.stderr and "-ov" not in again.stdout
    cached = invoke(["score", str(folder), "-w", str(tiny_checkpoint), "--engine", "openvino",
                     "--precision", "fp32", "--json"])
    assert "3 from the cache" in cached.stderr


def test_score_verbose_names_the_cpu_features_and_engine(make_photos, tiny_checkpoint, caplog,
                                                         monkeypatch):
    monkeypatch.delenv("MEMO_ENGINE")  # the default, auto
    folder = make_photos(2)[0].parent
    try:
        invoke(["-v", "score", str(folder), "-w", str(tiny_checkpoint), "--no-cache"])
    finally:
        logging.getLogger("memocli").setLevel(logging.NOTSET)
    assert "with OpenVINO" in caplog.text
    line = next(s for s in caplog.text.splitlines() if "CPU " in s)
    for feature in ("avx2", "avx512", "vnni", "bf16", "amx"):
        assert feature in line


def test_unusable_engine_request_is_one_line_error(make_photos, tiny_checkpoint):
    folder = make_photos(1)[0].parent
    result = invoke(["score", str(folder), "-w", str(tiny_checkpoint), "--engine", "openvino",
                     "--precision", "fp16", "--no-cache"], code=1)
    assert "--engine openvino: it runs fp32 or bf16, not fp16" in result.output
    assert "Traceback" not in result.output


def test_cache_info_lists_the_converted_networks(make_photos, tiny_checkpoint, tmp_path):
    folder = make_photos(2)[0].parent
    db = tmp_path / "c.db"
    invoke(["score", str(folder), "-w", str(tiny_checkpoint), "--cache", str(db),
            "--engine", "openvino", "--precision", "fp32", "-s"])
    facts = json.loads(invoke(["cache", "info", "--cache", str(db), "--json"]).stdout)
    assert facts["engines"]["path"] == str(engine_cache_dir())
    assert facts["engines"]["networks"] == 1 and facts["engines"]["size_bytes"] > 0
    text = invoke(["cache", "info", "--cache", str(db)]).stdout
    assert f"engines:  {engine_cache_dir()}  1 converted network(s)" in text


def test_openvino_failing_on_a_model_is_one_line_error(make_photos, tiny_checkpoint,
                                                       monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("Exception from src/core/convert.cpp:42:\nunsupported operation")

    monkeypatch.setattr(engines.import_openvino(), "convert_model", refuse)
    folder = make_photos(2)[0].parent
    result = invoke(["score", str(folder), "-w", str(tiny_checkpoint), "--engine", "openvino",
                     "--no-cache"], code=1)
    assert ("OpenVINO cannot run it (Exception from src/core/convert.cpp:42: unsupported "
            "operation); use --engine torch") in result.output
    assert "Traceback" not in result.output
    assert invoke(["score", str(folder), "-w", str(tiny_checkpoint), "--engine", "torch",
                   "--no-cache", "-s"]).exit_code == 0


def test_an_openvino_upgrade_replaces_the_old_converted_network(tiny):
    model = tiny.model.eval()
    folder = engine_cache_dir()
    folder.mkdir(parents=True)
    stale = [folder / f"tiny-x-ov2020.1{s}" for s in (".xml", ".bin", ".json")]
    newer = [folder / f"tiny-x-ov9999.1{s}" for s in (".xml", ".bin", ".json")]
    other = folder / "other-ov2020.1.xml"  # another model's: kept
    for f in (*stale, *newer, other):
        f.write_text("old", encoding="utf-8")
    compiled_vnet(model, FP32, "tiny-x", folder)
    assert not any(f.exists() for f in stale) and other.exists()
    # a newer OpenVINO's network, which another memo sharing the folder reads, is kept
    assert all(f.exists() for f in newer)
    assert len(list(folder.glob("tiny-x-ov*.xml"))) == 2


def test_models_without_a_checkpoint_id_are_never_filed_under_one_name(tmp_path):
    """Two different in-memory models named only by their architecture must not share a
    converted network."""
    first, second = (load_checkpoint(tiny_checkpoint_at(tmp_path / f"{s}.pt", seed=s),
                                     device="cpu").model for s in (1, 2))
    x = inputs(first)
    a = Predictor(first, CPU, "fp32", engine="openvino").predict(x)[0]
    b = Predictor(second, CPU, "fp32", engine="openvino").predict(x)[0]
    torch.testing.assert_close(b, Predictor(second, CPU, "fp32").predict(x)[0],
                               rtol=1e-4, atol=1e-5)
    assert not torch.allclose(a, b)
    assert not engine_cache_dir().exists()


def test_each_part_of_a_bf16_network_runs_only_its_own_layers(tiny):
    """In bfloat16 the network is compiled in parts (stem + stage 1, the rest, the heads):
    the heads' part holds the heads' projections and no backbone convolution (the traced
    heads read the batch size from a pooled tensor, which once kept the whole backbone in
    that part, so bf16 ran a second, float32 backbone and was slower than fp32)."""
    from memocli.ov_network import parts

    network = engines.convert_vnet(tiny.model)
    split = parts(network, Precision.scoring("bf16"), tiny.model.cfg.stage_blocks)
    convolutions = [sum(op.get_type_name() == "Convolution" for op in part.get_ops())
                    for part, _ in split]
    blocks, heads = sum(tiny.model.cfg.stage_blocks), len(tiny.model.cfg.heads)
    whole = sum(op.get_type_name() == "Convolution" for op in network.get_ops())
    assert convolutions[-1] == blocks * heads  # one 1x1 projection per block and head
    assert sum(convolutions) == whole  # every convolution in exactly one part
