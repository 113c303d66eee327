"""``memo explain``: Grad-CAM maths, localisation on a trained model, and the CLI's files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TEST_DEVICE, invoke, tiny_checkpoint_at, write_photo
from PIL import Image

from memocli import checkpoint
from memocli.checkpoint import load_checkpoint, save_checkpoint
from memocli.cli import cli
from memocli.errors import MemoError
from memocli.explain import explain_images
from memocli.gradcam import GradCAM
from memocli.model import VNet
from memocli.predictor import iter_predictions
from memocli.registry import get_config


@pytest.fixture(autouse=True)
def in_a_work_folder(tmp_path, monkeypatch):
    """memo explain's default folder, ./memo-explain, lands in the test's own folder."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a busy 2-core box: one thread is far faster than two spin-waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(*args):
    """``memo explain ARGS`` in-process (stdout and stderr kept apart)."""
    return CliRunner().invoke(cli, ["explain", *map(str, args)], catch_exceptions=False)


def size_of(path):
    with Image.open(path) as img:
        return img.size


# --- Grad-CAM maths -----------------------------------------------------------------------

@pytest.mark.parametrize("layer,block", [("layer2", "layer2.0"), ("layer4.0", "layer4.0")])
def test_gradcam_is_the_score_gradient_through_the_lstm(layer, block):
    """Reference: a zero probe added to the block output, each image's score back-propagated
    on its own through the whole model (layer4.0 reaches the score only via its own
    GAP -> projection -> LSTM step)."""
    torch.manual_seed(0)
    model = VNet(get_config("vnet_tiny")).double().eval()  # float64: compare tightly
    x = torch.rand(3, 3, 64, 64, dtype=torch.float64)
    with GradCAM(model, layer) as gcam:
        got = gcam(x)

    seen = {}

    def probe(module, inputs, output):
        seen["A"] = output.detach()
        seen["delta"] = torch.zeros_like(output, requires_grad=True)
        return output + seen["delta"]

    handle = model.backbone.get_submodule(block).register_forward_hook(probe)
    try:
        for b in range(3):
            score = model(x[b:b + 1])
            score.sum().backward()
            weights = seen["delta"].grad.mean(dim=(2, 3), keepdim=True)
            cam = torch.relu((weights * seen["A"]).sum(dim=1))[0]
            assert cam.max() > 0
            assert got.scores[b] == pytest.approx(score.item(), abs=1e-5)
            assert got.peaks[b] == pytest.approx(cam.max().item(), rel=1e-5)
            torch.testing.assert_close(got.cams[b], cam / cam.max(), atol=1e-5, rtol=0)
    finally:
        handle.remove()


def test_gradcam_leaves_the_model_as_it_was_and_works_under_inference_mode():
    torch.manual_seed(0)
    model = VNet(get_config("vnet_tiny"))
    model.freeze_backbone(train_stages=1)  # layer2 output has no grad path: a leaf
    model.train()
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    with torch.inference_mode():
        x = torch.rand(2, 3, 64, 64)
        with GradCAM(model, "layer2") as gcam:
            result = gcam(x)
    assert result.cams.shape == (2, 8, 8)
    assert torch.isfinite(result.cams).all()
    assert (result.cams.amax(dim=(1, 2)).eq(1) | result.flat).all()  # normalised per image
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training and model.backbone.layer4.training
    assert not model.backbone.layer2.training  # frozen parts keep eval-mode batch norm


def test_a_flat_map_stays_zero_instead_of_blowing_up_noise():
    model = VNet(get_config("vnet_tiny")).eval()
    with torch.no_grad():
        model.primary_head.regressor.weight.zero_()  # score no longer depends on the image
    with GradCAM(model) as gcam:
        result = gcam(torch.rand(2, 3, 64, 64))
    assert result.flat.all()
    assert result.cams.eq(0).all()


# --- localisation -------------------------------------------------------------------------

PATCH = 16


def patch_images(n: int, gen: torch.Generator):
    """64x64 dark noisy images (random background level) with a bright square at a random
    place; the score is the square's brightness, so only the square explains it."""
    x = torch.rand(n, 3, 64, 64, generator=gen) * 0.2 + 0.2 * torch.rand(n, 1, 1, 1, generator=gen)
    level = 0.3 + 0.7 * torch.rand(n, generator=gen)
    corners = torch.randint(0, 64 - PATCH + 1, (n, 2), generator=gen)
    masks = torch.zeros(n, 64, 64, dtype=torch.bool)
    for i, (y0, x0) in enumerate(corners.tolist()):
        x[i, :, y0:y0 + PATCH, x0:x0 + PATCH] = level[i]
        masks[i, y0:y0 + PATCH, x0:x0 + PATCH] = True
    return x, level, masks


def explain_heatmaps(checkpoint, images, folder) -> list[np.ndarray]:
    """Run ``memo explain --heatmap-only --layer layer2`` on the images, read the maps back."""
    photos = []
    for i, img in enumerate(images):
        # Saved at 128x96 (not the 64x64 input): the map must come back at the photo's own,
        # non-square size, and in the right place.
        pixels = (img.permute(1, 2, 0) * 255).round().byte().numpy()
        path = folder / f"held_out_{i:02d}.png"
        Image.fromarray(pixels).resize((128, 96), Image.NEAREST).save(path)
        photos.append(path)
    result = run(*photos, "-w", checkpoint, "--layer", "layer2", "--heatmap-only",
                 "--out", folder / "maps")
    assert result.exit_code == 0, result.output
    heats = [np.asarray(Image.open(folder / "maps" / f"{p.stem}.memo.png"), dtype=np.float64)
             for p in photos]
    assert all(h.shape == (96, 128) for h in heats)
    return heats


def inside_outside_ratio(heats, masks) -> float:
    """Mean map inside the squares over the mean outside, over all images."""
    inside, outside = [], []
    for heat, mask in zip(heats, masks):
        big = np.asarray(Image.fromarray(mask.numpy()).resize((128, 96), Image.NEAREST))
        inside.append(heat[big].mean())
        outside.append(heat[~big].mean())
    return float(np.mean(inside) / np.mean(outside))


@pytest.mark.slow
def test_heatmap_localises_what_drives_the_score(tmp_path, capsys):
    cfg = get_config("vnet_tiny")
    mean = torch.tensor(cfg.mean)[:, None, None]
    std = torch.tensor(cfg.std)[:, None, None]
    gen = torch.Generator().manual_seed(0)
    train_x, train_y, _ = patch_images(40 * 16, gen)
    test_x, test_y, test_masks = patch_images(24, gen)

    torch.manual_seed(0)
    model = VNet(cfg)
    model.freeze_backbone(train_stages=3)  # stem + layer1 stay random: faster on a CPU
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    for step in range(40):
        batch = slice(step * 16, (step + 1) * 16)
        loss = torch.nn.functional.mse_loss(model((train_x[batch] - mean) / std),
                                            train_y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model((test_x - mean) / std)
    assert torch.corrcoef(torch.stack([pred, test_y]))[0, 1] > 0.8  # it learnt the task

    weights = save_checkpoint(tmp_path / "trained.pt", model, metrics={})
    heats = explain_heatmaps(weights, test_x, tmp_path)
    ratio = inside_outside_ratio(heats, test_masks)
    # Control: the same maps scored against other images' squares (which, like the maps,
    # lean to the centre) must do much worse: the mass follows each image's own square.
    control = np.mean([inside_outside_ratio(heats, test_masks.roll(k, dims=0))
                       for k in range(1, 5)])
    with capsys.disabled():
        print(f"\n  Grad-CAM mean inside/outside the square: {ratio:.2f} "
              f"(other images' squares: {control:.2f})")
    assert ratio > 2.0
    assert ratio > 2.0 * control


# --- CLI ----------------------------------------------------------------------------------

def test_explain_writes_into_memo_explain_outside_the_library_by_default(
        tiny_checkpoint, tmp_path, in_a_work_folder):
    photo = write_photo(tmp_path / "photos" / "img.jpg", size=(48, 40))
    before = photo.read_bytes()
    result = run(photo, "-w", tiny_checkpoint)
    assert result.exit_code == 0, result.output
    out = in_a_work_folder / "memo-explain" / "img.memo.jpg"
    assert result.stdout.startswith(f"{photo} -> memo-explain/img.memo.jpg  (score 0.")
    assert len(result.stdout.splitlines()) == 1
    assert result.stderr == f"1 picture(s) in {in_a_work_folder / 'memo-explain'}\n"
    assert size_of(out) == (48, 40)
    assert sorted(p.name for p in photo.parent.iterdir()) == ["img.jpg"]  # library untouched
    assert photo.read_bytes() == before


def test_explain_beside_writes_next_to_the_photo(tiny_checkpoint, tmp_path,
                                                 in_a_work_folder):
    photo = write_photo(tmp_path / "photos" / "img.jpg", size=(48, 40))
    result = run(photo, "-w", tiny_checkpoint, "--beside")
    assert result.exit_code == 0, result.output
    out = tmp_path / "photos" / "img.memo.jpg"
    assert result.stdout.startswith(f"{photo} -> {out}  (score 0.")
    assert size_of(out) == (48, 40)
    assert list(in_a_work_folder.iterdir()) == []
    result = run(photo, "-w", tiny_checkpoint, "--beside", "--out", "maps")
    assert result.exit_code == 2 and "--beside and --out exclude each other" in result.stderr


def test_explain_takes_folders_as_score_does(tiny_checkpoint, tmp_path, in_a_work_folder):
    library = tmp_path / "photos"
    photos = [write_photo(library / "a.jpg"), write_photo(library / "trip" / "b.png"),
              write_photo(library / ".hidden" / "c.jpg")]
    write_photo(library / "old.memo.jpg")  # memo's own picture: passed over
    (library / "notes.txt").write_text("not a photo\n")
    result = run(library, "-w", tiny_checkpoint)
    assert result.exit_code == 0, result.output
    assert [line.split(" -> ")[0] for line in result.stdout.splitlines()] == [
        str(photos[0]), str(photos[1])]
    assert sorted(p.name for p in (in_a_work_folder / "memo-explain").iterdir()) == [
        "a.memo.jpg", "b.memo.jpg"]
    result = run(library, "-w", tiny_checkpoint, "--hidden", "--out", "all")
    assert len(result.stdout.splitlines()) == 3


def test_side_by_side_and_heatmap_only_sizes(tiny_checkpoint, tmp_path):
    photo = write_photo(tmp_path / "img.png", size=(60, 44))
    result = run(photo, "-w", tiny_checkpoint, "--side-by-side", "--out", tmp_path / "sbs")
    assert result.exit_code == 0, result.output
    width, height = size_of(tmp_path / "sbs" / "img.memo.jpg")
    assert width == 120 and height > 44  # photo | overlay, score band underneath

    result = run(photo, "-w", tiny_checkpoint, "--heatmap-only", "--layer", "layer3",
                 "--out", tmp_path / "maps")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "maps" / "img.memo.png") as heat:
        assert heat.mode == "L" and heat.size == (60, 44)
        assert heat.text["memo:layer"] == "layer3"
        assert f"(score {float(heat.text['memo:score']):.2f})" in result.stdout


def test_orientation_is_respected(tiny_checkpoint, tmp_path):
    upright = Image.new("RGB", (40, 60), (90, 90, 90))
    upright.paste((255, 0, 0), (0, 0, 15, 15))  # red corner at the upright top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to display
    photo = tmp_path / "camera.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(photo, exif=exif, quality=95)
    assert size_of(photo) == (60, 40)

    result = run(photo, "-w", tiny_checkpoint, "--side-by-side", "--beside")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "camera.memo.jpg") as out:
        assert out.width == 80 and out.height > 60
        assert "exif" not in out.info or Image.Exif().load(out.info["exif"]).get(0x0112, 1) == 1
        r, g, b = out.convert("RGB").getpixel((5, 5))  # left half = the upright photo
        assert r > 180 and g < 80 and b < 80
        assert out.convert("RGB").getpixel((35, 55))[0] < 150

    result = run(photo, "-w", tiny_checkpoint, "--heatmap-only", "--beside")
    assert result.exit_code == 0, result.output
    assert size_of(tmp_path / "camera.memo.png") == (40, 60)


def test_out_folder_never_clobbers_or_overwrites_inputs(tiny_checkpoint, tmp_path):
    a = write_photo(tmp_path / "a" / "img.jpg")
    b = write_photo(tmp_path / "b" / "img.jpg", color=(200, 30, 30))
    result = run(a, b, "-w", tiny_checkpoint, "--out", tmp_path / "heat" / "maps")
    assert result.exit_code == 0, result.output
    outs = sorted(p.name for p in (tmp_path / "heat" / "maps").iterdir())
    assert outs == ["img-2.memo.jpg", "img.memo.jpg"]
    assert f"{b} -> {tmp_path / 'heat' / 'maps' / 'img-2.memo.jpg'}" in result.stdout

    # An input that is itself named like an output is not overwritten.
    photo = write_photo(tmp_path / "c" / "x.jpg")
    lookalike = write_photo(tmp_path / "c" / "x.memo.jpg", color=(10, 200, 10))
    before = lookalike.read_bytes()
    result = run(photo, lookalike, "-w", tiny_checkpoint, "--beside")
    assert result.exit_code == 0, result.output
    assert lookalike.read_bytes() == before
    assert (tmp_path / "c" / "x-2.memo.jpg").is_file()
    assert (tmp_path / "c" / "x.memo.memo.jpg").is_file()


def test_bad_files_are_reported_and_the_rest_explained(tiny_checkpoint, tmp_path):
    good = write_photo(tmp_path / "good.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    missing = tmp_path / "missing.jpg"
    result = run(broken, good, missing, "-w", tiny_checkpoint, "--batch-size", "2",
                 "--beside")
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{good} -> {tmp_path / 'good.memo.jpg'}")
    errors = result.stderr.splitlines()
    assert errors[0] == f"{missing}: no such file or folder"  # found before the model loads
    assert errors[1].startswith(f"{broken}: ") and "recognised image" in errors[1]
    assert errors[-1] == "Error: 2 of 3 photo(s) failed"
    assert (tmp_path / "good.memo.jpg").is_file()
    assert not (tmp_path / "broken.memo.jpg").exists()


def test_layer_option_is_checked_and_listed(tiny_checkpoint, tmp_path, monkeypatch):
    photo = write_photo(tmp_path / "img.jpg")
    result = run(photo, "-w", tiny_checkpoint, "--layer", "layer4.9")  # no such block
    assert result.exit_code == 2
    assert "layer4.0" in result.stderr and "--layer" in result.stderr
    monkeypatch.setattr(checkpoint, "load_checkpoint", None)  # checked before loading
    result = run(photo, "-w", tiny_checkpoint, "--layer", "layer9")
    assert result.exit_code == 2 and "unknown layer 'layer9'" in result.stderr
    result = run(tmp_path / "nothere.jpg", "-w", tiny_checkpoint)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"{tmp_path / 'nothere.jpg'}: no such file or folder"
    result = run(photo, "-w", tiny_checkpoint, "--side-by-side", "--heatmap-only")
    assert result.exit_code == 2
    help_text = run("--help").stdout
    assert "layer4.0-2" in help_text and "last block of layer4" in help_text


def test_flat_map_is_written_as_zeros_and_reported(tmp_path):
    torch.manual_seed(0)
    model = VNet(get_config("vnet_tiny"))
    with torch.no_grad():
        model.primary_head.regressor.weight.zero_()
    weights = save_checkpoint(tmp_path / "flat.pt", model, metrics={})
    photo = write_photo(tmp_path / "img.jpg")
    result = run(photo, "-w", weights, "--heatmap-only", "--beside")
    assert result.exit_code == 0, result.output
    assert "flat map, no region raises the score at layer4." in result.stderr
    assert np.asarray(Image.open(tmp_path / "img.memo.png")).max() == 0


def test_batched_scores_match_memo_score(make_photos, tmp_path, monkeypatch):
    """The scores beside the heatmaps are float32 torch's (Grad-CAM needs gradients), and
    agree with what `memo score` gives on its default path (OpenVINO, bfloat16 where the CPU
    has it) within the precision budget (0.01, docs/scoring.md)."""
    monkeypatch.delenv("MEMO_ENGINE")  # memo score's default engine
    photos = make_photos(5)
    checkpoint = tiny_checkpoint_at(tmp_path / "t.pt", seed=3)
    loaded = load_checkpoint(checkpoint, device=TEST_DEVICE)
    results = list(explain_images(loaded, photos, tmp_path / "out", batch_size=2, alpha=0.3))
    assert [r.source for r in results] == photos and all(r.ok for r in results)
    fp32 = {}
    for batch in iter_predictions(loaded.model, photos, torch.device(TEST_DEVICE), 2, 0,
                                  precision="fp32"):
        fp32.update(zip(batch.indices, batch.scores))
    assert [r.score for r in results] == pytest.approx([fp32[i] for i in range(5)], abs=1e-5)
    rows = json.loads(invoke(["score", str(photos[0].parent), "-w", str(checkpoint),
                              "--json"]).stdout)
    scored = {Path(r["path"]).name: r["raw_score"] for r in rows}
    assert [r.score for r in results] == pytest.approx([scored[p.name] for p in photos],
                                                       abs=0.01)
    assert all(size_of(r.output) == size_of(p) for r, p in zip(results, photos))
    # Bad arguments fail at the call, before any file is touched (not on first iteration).
    with pytest.raises(MemoError, match="layer4.0"):
        explain_images(loaded, photos, layer="layer5")
    with pytest.raises(MemoError, match="not a folder"):
        explain_images(loaded, photos, photos[0])


@pytest.mark.gpu
def test_gradcam_on_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.manual_seed(0)
    model = VNet(get_config("vnet_tiny")).eval()
    x = torch.rand(4, 3, 64, 64)
    with GradCAM(model, "layer3") as gcam:
        cpu = gcam(x)
    with GradCAM(model.cuda(), "layer3") as gcam:  # cuDNN LSTM needs the head without it
        gpu = gcam(x)
    torch.testing.assert_close(gpu.scores, cpu.scores, atol=1e-3, rtol=0)
    torch.testing.assert_close(gpu.cams, cpu.cams, atol=2e-2, rtol=0)


def test_score_explain_writes_heatmaps_of_the_listed_photos(tmp_path, make_photos, tiny_checkpoint):
    from click.testing import CliRunner

    from memocli.cli import cli

    photos = make_photos(5)
    out = tmp_path / "heatmaps"
    result = CliRunner().invoke(cli, ["score", str(photos[0].parent), "--top", "2", "--json",
                                      "-w", str(tiny_checkpoint), "--explain", str(out), "-s"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    top = [row["path"] for row in json.loads(result.stdout)]
    assert len(top) == 2
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(Path(p).stem + ".memo.jpg" for p in top)
    assert "->" in result.stderr
