"""Training really learns: a tiny V-Net on synthetic photos whose score is their brightness."""

import csv
import json
import random

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import interrupting, invoke, tiny_checkpoint_at
from PIL import Image

from memocli.checkpoint import load_checkpoint
from memocli.cli import cli
from memocli.data import load_split
from memocli.device import pick_device
from memocli.model import VNet
from memocli.registry import get_config
from memocli.sources import Splits, TrainingData
from memocli.train import TrainConfig, fit


def brightness_dataset(root, n_train=96, n_val=32, n_test=32, folds=(1,)):
    """LaMem layout; score = mean brightness of a noisy image (a learnable function)."""
    rng = random.Random(0)
    (root / "images").mkdir(parents=True)
    (root / "splits").mkdir()
    names = []
    for i in range(n_train + n_val + n_test):
        level = rng.random()
        noise = torch.rand(40, 40, 3) * 0.3
        pixels = ((level * 0.7 + noise) * 255).clamp(0, 255).to(torch.uint8).numpy()
        name = f"{i:04d}.jpg"
        Image.fromarray(pixels).save(root / "images" / name)
        names.append(f"{name} {0.2 + 0.6 * level:.6f}")
    for fold in folds:
        rng.shuffle(names)
        parts = {"train": names[:n_train], "val": names[n_train:n_train + n_val],
                 "test": names[n_train + n_val:]}
        for part, lines in parts.items():
            (root / "splits" / f"{part}_{fold}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return brightness_dataset(tmp_path_factory.mktemp("bright") / "ds", folds=(1, 2))


@pytest.mark.slow
def test_frozen_backbone_training_learns_and_keeps_checkpoints(dataset, tmp_path):
    torch.manual_seed(0)
    model = VNet(get_config("vnet_tiny"))
    splits = Splits(str(dataset), load_split(dataset, "train_1"), load_split(dataset, "val_1"),
                    load_split(dataset, "test_1"))
    out = tmp_path / "run"
    result = fit(model, TrainingData.single(splits), out,
                 TrainConfig(epochs=12, batch_size=16, lr_max=3e-3),
                 pick_device("cpu"), {"backbone_init": "random", "init": None}, silent=True,
                 echo=lambda _: None)
    assert result["val_rho"] > 0.8
    assert result["test_rho"] > 0.8
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert len(rows) == 12
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 12
    best = load_checkpoint(out / "best.pt")
    assert best.meta["metrics"]["val_rho"] == pytest.approx(result["val_rho"])
    assert best.meta["train_data"]["sizes"] == {"train": 96, "val": 32, "test": 32}
    assert best.meta["training"]["lr_max"] == 3e-3
    assert (out / "last.pt").is_file() and (out / "config.json").is_file()


def epoch_rows(out):
    """metrics.csv without its timing column."""
    rows = csv.DictReader((out / "metrics.csv").read_text().splitlines())
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("augment", ["flip", "crop"], ids=["cached-activations", "full-images"])
def test_a_resumed_run_matches_an_uninterrupted_one(dataset, tmp_path, monkeypatch, augment):
    import memocli.train as train_module

    def args(out, *extra):
        return ["train", str(dataset), "--model", "vnet_tiny", "--out", str(out), "--lr-max",
                "3e-3", "--batch-size", "16", "--epochs", "4", "--augment", augment,
                "--workers", "0", "-s", *extra]

    invoke(args(tmp_path / "whole"))
    out = tmp_path / "run"
    # killed after epoch 3's log row and checkpoints, before its run state was saved
    monkeypatch.setattr(train_module, "save_run_state",
                        interrupting(train_module.save_run_state, 3))
    invoke(args(out), code=130)
    assert torch.load(out / "train_state.pt", weights_only=True)["epoch"] == 2
    assert [r["epoch"] for r in epoch_rows(out)] == ["1", "2", "3"]
    monkeypatch.undo()

    again = invoke(args(out, "--resume"))
    assert "at epoch 3" in again.stderr
    assert epoch_rows(out) == epoch_rows(tmp_path / "whole")  # same losses, rhos and LRs
    resumed = load_checkpoint(out / "last.pt").model.state_dict()
    whole = load_checkpoint(tmp_path / "whole" / "last.pt").model.state_dict()
    assert all(torch.equal(resumed[k], v) for k, v in whole.items())
    assert torch.load(out / "train_state.pt", weights_only=True)["epoch"] == 4


@pytest.mark.slow
def test_resume_refuses_a_changed_run(dataset, tmp_path):
    out = tmp_path / "run"
    args = ["train", str(dataset), "--model", "vnet_tiny", "--out", str(out), "--lr-max", "3e-3",
            "--batch-size", "32", "--epochs", "1", "-s"]
    invoke(args)
    longer = invoke(args[:-3] + ["--epochs", "2", "--resume", "-s"], code=1)
    assert "cannot resume" in longer.output and "length" in longer.output
    other_fold = invoke(args + ["--fold", "2", "--resume"], code=1)
    assert "cannot resume" in other_fold.output and "data changed" in other_fold.output


@pytest.mark.slow
def test_train_cli_reports_folds_and_evaluate_agrees(dataset, tmp_path):
    out = tmp_path / "runs"
    runner = CliRunner()
    # float32 as memo evaluate's default: bf16 training reports its figures in bf16
    result = runner.invoke(cli, ["train", str(dataset), "--folds", "1-2", "--model", "vnet_tiny",
                                 "--epochs", "6", "--lr-max", "3e-3", "--batch-size", "16",
                                 "--precision", "fp32", "--out", str(out), "-s"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "val_rho:" in result.output and "± " in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["folds"]) == {"1", "2"}
    assert "randomly initialised" in result.stderr

    preds = tmp_path / "preds.csv"
    ev = runner.invoke(cli, ["evaluate", str(dataset), "--split", "test_1", "--weights",
                             str(out / "fold_1" / "best.pt"), "--csv", str(preds), "--json"],
                       catch_exceptions=False)
    assert ev.exit_code == 0
    metrics = json.loads(ev.output)
    assert metrics["rho"] == pytest.approx(summary["folds"]["1"]["test_rho"], abs=1e-4)
    rows = list(csv.DictReader(preds.read_text().splitlines()))
    assert len(rows) == 32 and set(rows[0]) == {"path", "target", "prediction"}


@pytest.mark.slow
def test_lr_find_cli_suggests_and_plots(dataset, tmp_path, monkeypatch):
    plot = tmp_path / "lr.png"
    result = CliRunner().invoke(cli, ["lr-find", str(dataset), "--model", "vnet_tiny",
                                      "--steps", "40", "--batch-size", "16", "--plot", str(plot),
                                      "-s"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    suggested = float(result.stdout.split("--lr-max")[1])
    assert 1e-6 < suggested < 1
    with Image.open(plot) as img:
        assert img.size == (800, 500)
    monkeypatch.chdir(tmp_path)  # without --plot: OUT/lr-find.png, never the current folder
    invoke(["lr-find", str(dataset), "--model", "vnet_tiny", "--steps", "20", "--batch-size",
            "16", "--out", str(tmp_path / "runs" / "lr"), "-s"])
    assert (tmp_path / "runs" / "lr" / "lr-find.png").is_file()
    assert not (tmp_path / "lr-find.png").exists()


def test_without_lr_max_the_range_test_says_its_cost_first_and_plots_beside_the_run(
        tmp_path, monkeypatch):
    from memocli import crossval

    monkeypatch.setattr(crossval, "LR_TEST_STEPS", 12)
    root = brightness_dataset(tmp_path / "ds", n_train=24, n_val=8, n_test=8)
    out = tmp_path / "run"
    result = invoke(["train", str(root), "--model", "vnet_tiny", "--out", str(out),
                     "--epochs", "1", "--batch-size", "8", "-s"])
    said = result.stderr
    cost = said.index("LR range test runs first: 12 batches of 8, about 4.0 epoch(s)")
    assert cost < said.index("LR range test suggests")
    assert (out / "lr-find.png").is_file() and (out / "best.pt").is_file()


def test_training_fine_tunes_the_installed_model_by_default():
    from memocli.backbones import RANDOM_BACKBONE_WARNING, initial_model
    from memocli.catalog import bundled_weights_dir

    said = []
    model, meta = initial_model("vnet_r50", None, None, warn=said.append)
    assert meta["init"] == str(bundled_weights_dir() / "memo-vnet-r50.pt")
    assert said[0].startswith("fine-tuning from the installed model ")
    installed = load_checkpoint(meta["init"]).model
    assert model.cfg.heads == ("score", *installed.cfg.heads[1:])  # what it knows is kept
    assert torch.equal(model.mixer.weight, installed.mixer.weight)
    model, meta = initial_model("vnet_tiny", None, None, warn=said.append)  # none installed
    assert meta["backbone_init"] == "random" and said[-1] == RANDOM_BACKBONE_WARNING


@pytest.mark.slow
@pytest.mark.parametrize("augment", ["flip", "crop"], ids=["cached-activations", "full-images"])
def test_lr_range_test_trains_the_stages_the_run_would_train(dataset, augment):
    from memocli.lr_find import lr_range_test

    splits = Splits(str(dataset), load_split(dataset, "train_1"), load_split(dataset, "val_1"))
    torch.manual_seed(0)
    model = VNet(get_config("vnet_tiny"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lr_range_test(model, TrainingData.single(splits), torch.device("cpu"),
                  TrainConfig(batch_size=16, train_stages=1, augment=augment, workers=0),
                  steps=12, start_lr=1e-3, end_lr=1e-2, silent=True)
    after = model.state_dict()
    changed = {k.split(".")[1] for k in before
               if k.startswith("backbone.") and not torch.equal(before[k], after[k])}
    assert changed == {"layer4"}  # (batch-norm statistics included)
    regressor = "heads.score.regressor.weight"
    assert not torch.equal(before[regressor], after[regressor])


def test_bad_dataset_stops_before_training(tmp_path):
    root = brightness_dataset(tmp_path / "ds", n_train=4, n_val=2, n_test=2)
    with open(root / "splits" / "train_1.txt", "a") as f:
        f.write("../escape.jpg 0.5\nbroken-line\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", str(root), "--model", "vnet_tiny", "--out",
                                      str(out), "--lr-max", "1e-3", "-s"])
    assert result.exit_code == 1
    assert "splits/train_1.txt:5:" in result.output and "splits/train_1.txt:6:" in result.output
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("budget", [8 << 30, 0], ids=["cached-activations", "full-images"])
def test_fine_tuning_the_last_stage_learns_and_leaves_frozen_stages_alone(
        dataset, tmp_path, monkeypatch, budget):
    import memocli.training_paths as paths

    monkeypatch.setattr(paths, "CACHE_BUDGET_BYTES", budget)
    torch.manual_seed(0)
    model = VNet(get_config("vnet_tiny"))
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    splits = Splits(str(dataset), load_split(dataset, "train_1"), load_split(dataset, "val_1"))
    result = fit(model, TrainingData.single(splits), tmp_path / "run", TrainConfig(
                 epochs=8, batch_size=16, lr_max=2e-3, train_stages=1), pick_device("cpu"),
                 {"init": None}, silent=True, echo=lambda _: None)
    assert result["val_rho"] > 0.8
    after = model.backbone.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"layer4"}  # frozen weights and batch-norm statistics untouched


@pytest.mark.slow
def test_cached_activations_give_the_same_prediction_as_the_whole_network(dataset):
    from memocli.data import eval_transform
    from memocli.decode import load_image
    from memocli.features import FeatureBank
    from memocli.training_paths import CachedActivations

    model = VNet(get_config("vnet_tiny")).eval()
    items = load_split(dataset, "val_1")[:4]
    for frozen in (4, 3, 1):
        bank = FeatureBank(model, pick_device("cpu"), silent=True, frozen_stages=frozen)
        path = CachedActivations(model, bank, items, torch.zeros(4, dtype=torch.long),
                                 batch_size=4)
        x, = path.eval_batches(items)
        images = torch.stack([eval_transform(model.cfg)(load_image(i.path)) for i in items])
        with torch.no_grad():
            assert torch.allclose(path.predict(x)[:, 0], model(images), atol=2e-3), frozen


def test_feature_cache_is_reused_and_follows_image_changes(dataset, tmp_path, monkeypatch):
    import os

    from memocli.features import FeatureBank

    store = tmp_path / "features"
    items = load_split(dataset, "val_1")[:6]
    torch.manual_seed(0)
    model = VNet(get_config("vnet_tiny")).eval()
    first, _ = FeatureBank(model, pick_device("cpu"), silent=True, store=store).features(items)
    assert len(list(store.iterdir())) == 1

    computed = []
    real_compute = FeatureBank._compute
    monkeypatch.setattr(FeatureBank, "_compute",
                        lambda self, paths: (computed.extend(paths), real_compute(self, paths)))
    again, _ = FeatureBank(model, pick_device("cpu"), silent=True, store=store).features(items)
    assert computed == [] and torch.equal(again, first)

    st = items[0].path.stat()
    os.utime(items[0].path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    FeatureBank(model, pick_device("cpu"), silent=True, store=store).features(items)
    assert computed == [items[0].path.resolve()]

    other = VNet(get_config("vnet_tiny")).eval()  # other random backbone: its own file
    FeatureBank(other, pick_device("cpu"), silent=True, store=store).features(items[:1])
    assert len(list(store.glob("features-*.pt"))) == 2


def multi_head_checkpoint(path):
    """A tiny V-Net like the installed default: a human head, two teacher heads, a gated
    mixer with two domains (all trained-looking, i.e. not at their initial values)."""
    from memocli.checkpoint import save_checkpoint

    torch.manual_seed(3)
    model = VNet(get_config("vnet_tiny").with_heads(("lnsim", "teacher1", "teacher2"), 2))
    with torch.no_grad():
        for p in model.mixer.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return save_checkpoint(path, model, metrics={}, train_data={"data": "none"},
                           backbone_init="random")


def fine_tune(dataset, init, out, *extra):
    return CliRunner().invoke(cli, [
        "train", str(dataset), "--fold", "1", "--model", "vnet_tiny", "--init", str(init),
        "--epochs", "2", "--lr-max", "3e-3", "--batch-size", "16", "--out", str(out), "-s",
        *extra], catch_exceptions=False)


@pytest.mark.slow
def test_fine_tuning_a_multi_head_model_keeps_its_other_heads_and_mixer(dataset, tmp_path):
    init = multi_head_checkpoint(tmp_path / "default.pt")
    result = fine_tune(dataset, init, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "keeping" in result.stderr and "teacher1, teacher2" in result.stderr

    before = load_checkpoint(init).model
    after = load_checkpoint(tmp_path / "run" / "best.pt").model
    assert after.cfg.heads == ("score", "teacher1", "teacher2")
    assert after.cfg.mixer_domains == 2
    for name in ("teacher1", "teacher2"):
        for k, v in before.heads[name].state_dict().items():
            assert torch.equal(v, after.heads[name].state_dict()[k]), (name, k)
    for k, v in before.mixer.state_dict().items():
        assert torch.equal(v, after.mixer.state_dict()[k]), k
    # the user's data did train the first head
    assert not torch.equal(before.heads["lnsim"].regressor.weight,
                           after.heads["score"].regressor.weight)


@pytest.mark.slow
def test_fine_tuning_deeper_stages_warns_that_kept_heads_will_drift(dataset, tmp_path):
    init = multi_head_checkpoint(tmp_path / "default.pt")
    result = fine_tune(dataset, init, tmp_path / "run", "--train-stages", "1")
    assert result.exit_code == 0, result.output
    assert "--train-stages 0 keeps them exactly" in result.stderr


@pytest.mark.slow
def test_fine_tuning_on_several_sources_says_which_heads_are_dropped(dataset, tmp_path):
    init = multi_head_checkpoint(tmp_path / "default.pt")
    result = fine_tune(dataset, init, tmp_path / "run", "--data", f"{dataset}:train_2")
    assert result.exit_code == 0, result.output
    assert "lnsim, teacher1, teacher2 are not among the training sources" in result.stderr
    mixer = load_checkpoint(tmp_path / "run" / "best.pt").model.mixer
    assert mixer.gate is None and mixer.weight.tolist() == [[1.0, 0.0]]


def test_consistency_adds_the_views_disagreement_to_the_loss():
    from memocli.train import training_loss, weighted_loss

    y, sources = torch.tensor([0.5, 0.7]), torch.tensor([0, 1])
    weights = torch.tensor([1.0, 0.5])
    first = torch.tensor([[0.6, 0.1], [0.2, 0.9]])
    moved = first + torch.tensor([[0.1, -0.1], [0.0, 0.2]])
    same = torch.stack([first, first], dim=1)
    assert training_loss(same, y, sources, weights, 10.0) == pytest.approx(
        weighted_loss(first, y, sources, weights).item())
    both = torch.stack([first, moved], dim=1)
    each = [weighted_loss(view, y, sources, weights).item() for view in (first, moved)]
    assert training_loss(both, y, sources, weights, 10.0) == pytest.approx(
        sum(each) / 2 + 10.0 * (0.01 + 0.01 + 0.0 + 0.04) / 4)


@pytest.mark.slow
def test_consistency_shows_two_different_views_and_pulls_their_scores_together(dataset, tmp_path):
    from memocli.train import prepare

    splits = Splits(str(dataset), load_split(dataset, "train_1"), load_split(dataset, "val_1"))
    data = TrainingData.single(splits)

    def disagreement(consistency):
        torch.manual_seed(0)
        model = VNet(get_config("vnet_tiny"))
        tcfg = TrainConfig(epochs=6, batch_size=16, lr_max=3e-3, train_stages=1,
                           augment="reframe", consistency=consistency, workers=0)
        fit(model, data, tmp_path / f"w{consistency}", tcfg, pick_device("cpu"), {"init": None},
            silent=True, echo=lambda _: None)
        path = prepare(model, data, tcfg, pick_device("cpu"))
        model.eval()
        gaps = []
        torch.manual_seed(1)  # the same pairs of views for both models
        with torch.no_grad():
            for x, _, _ in path.train_batches(1):
                assert x.shape[1:] == (2, 3, model.cfg.input_size, model.cfg.input_size)
                assert not torch.equal(x[:, 0], x[:, 1])  # two draws, not one view twice
                scores = path.predict(x)
                assert scores.shape == (len(x), 2, 1)
                gaps.append((scores[:, 0] - scores[:, 1]).abs().mean().item())
        return sum(gaps) / len(gaps)

    assert disagreement(1e4) < 0.5 * disagreement(1e-3)


def test_nudged_consistency_views_differ_by_a_few_pixels_not_a_new_draw(tmp_path):
    from memocli.train import prepare

    root = tmp_path / "ramps"  # smooth left-to-right ramps: a shift changes them a little
    (root / "images").mkdir(parents=True)
    (root / "splits").mkdir()
    ramp = np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (150, 1, 3))
    for i in range(8):
        Image.fromarray(ramp // (i + 1)).save(root / "images" / f"{i}.png")
    lines = "".join(f"{i}.png 0.{i + 1}\n" for i in range(8))
    for part in ("train_1", "val_1"):
        (root / "splits" / f"{part}.txt").write_text(lines)
    data = TrainingData.single(Splits(str(root), load_split(root, "train_1"),
                                      load_split(root, "val_1")))

    def gap(views):
        tcfg = TrainConfig(batch_size=8, train_stages=1, augment="reframe", consistency=1.0,
                           consistency_views=views, workers=0)
        path = prepare(VNet(get_config("vnet_tiny")), data, tcfg, pick_device("cpu"))
        torch.manual_seed(0)
        x, _, _ = next(iter(path.train_batches(0)))
        assert x.shape[:2] == (8, 2) and not torch.equal(x[:, 0], x[:, 1])
        return (x[:, 0] - x[:, 1]).abs().mean().item()

    assert gap("nudged") < 0.25 * gap("independent")


def test_consistency_needs_an_augmentation_that_draws_views(dataset, tmp_path):
    result = CliRunner().invoke(cli, ["train", str(dataset), "--model", "vnet_tiny", "--out",
                                      str(tmp_path / "run"), "--lr-max", "1e-3",
                                      "--consistency", "1", "-s"])
    assert result.exit_code == 2
    assert "--consistency needs --augment crop or reframe" in result.output
    assert not (tmp_path / "run").exists()
    nudged = CliRunner().invoke(cli, ["train", str(dataset), "--model", "vnet_tiny", "--out",
                                      str(tmp_path / "run"), "--lr-max", "1e-3", "--augment",
                                      "crop", "--consistency", "1", "--consistency-views",
                                      "nudged", "-s"])
    assert nudged.exit_code == 2
    assert "--consistency-views nudged needs --augment reframe" in nudged.output
    assert not (tmp_path / "run").exists()


def test_low_passes_are_trained_with_kept_by_fine_tunes_and_can_be_turned_off(dataset, tmp_path):
    init = tiny_checkpoint_at(tmp_path / "plain.pt")
    result = fine_tune(dataset, init, tmp_path / "blurred", "--epochs", "1", "--input-blur",
                       "0.8", "--blur-strides", "--augment", "reframe")
    assert result.exit_code == 0, result.output
    blurred = load_checkpoint(tmp_path / "blurred" / "best.pt").model
    assert blurred.cfg.input_blur == 0.8 and blurred.cfg.blur_strides
    kept = fine_tune(dataset, tmp_path / "blurred" / "best.pt", tmp_path / "kept", "--epochs", "1")
    assert kept.exit_code == 0, kept.output
    assert load_checkpoint(tmp_path / "kept" / "best.pt").model.cfg.input_blur == 0.8
    off = fine_tune(dataset, tmp_path / "blurred" / "best.pt", tmp_path / "off", "--epochs", "1",
                    "--input-blur", "0", "--no-blur-strides")
    assert off.exit_code == 0, off.output
    plain = load_checkpoint(tmp_path / "off" / "best.pt").model.cfg
    assert plain.input_blur == 0 and not plain.blur_strides
    bad = fine_tune(dataset, init, tmp_path / "bad", "--input-blur", "9")
    assert bad.exit_code == 2 and "--input-blur" in bad.output
