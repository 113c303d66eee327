#!/usr/bin/env python
"""Build memo's default model: the LNSIM V-Net plus a teacher head and a gated mixer.

The result is one checkpoint, one backbone pass, two V-Net heads:

* ``lnsim``: the head of ``--base`` (trained on LNSIM's human scores, with its backbone's
  last stage), unchanged;
* ``teacher1`` .. ``teacherK``: new V-Net heads (seeds 0..K-1) on the same frozen backbone, trained on ``--teacher``
  (``scripts/teacher_scores.py``: ResMem's scores of the diverse ``pool`` photos), never on
  the held-out fifth of the pool (``sha1(name) % 5 == 0``);

and a mixer (``memocli.model.HeadMixer``) with two domains:

* a gate, logistic regression on the last block's pooled features, trained to tell LNSIM's
  training photos (outdoor natural scenes) from the pool's training photos;
* "scene" domain: both heads standardised, blended ``(1 - alpha) * lnsim + alpha * teacher``,
  mapped to LNSIM's hit-rate scale by least squares on LNSIM's validation split;
* "other" domain: ``(1 - beta) * teacher + beta * lnsim``, mapped to the teacher's
  (LaMem) hit-rate scale by least squares on the pool's training photos.

Features are computed once and kept in ``--work``. Test photos are scored only to report
the final figures; no choice is made on them.

Usage:
    python scripts/teacher_scores.py ../shared/datasets/pool/images pool-teacher.txt
    python scripts/build_default.py --teacher pool-teacher.txt --work build/ \\
        --out weights/memo-vnet-r50.pt
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from memocli.checkpoint import load_checkpoint, save_checkpoint
from memocli.data import load_split
from memocli.metrics import regression_metrics
from memocli.model import VNet, VNetHead
from memocli.predictor import Predictor

HELD_OUT = 0  # pool photos with sha1(name) % 5 == HELD_OUT are never trained on


def pool_fold(name: str) -> int:
    """The pool photo's fifth (0-4), fixed by its name."""
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % 5


def pooled_features(predictor: Predictor, paths: list[Path], views: int, store: Path
                    ) -> np.ndarray:
    """``[N, views, D]`` float16 pooled block features (second view: mirrored).

    Kept in ``store`` (``.npy``) beside ``store.names`` (one file name a line): photos
    already there are not computed again.
    """
    names_file = store.with_suffix(".names")
    have: dict[str, np.ndarray] = {}
    if store.is_file() and names_file.is_file():
        saved = np.load(store, mmap_mode="r")
        if saved.shape[1] >= views:
            have = {n: saved[i, :views] for i, n in enumerate(names_file.read_text().split())}
    todo = [p for p in paths if p.name not in have]
    with torch.inference_mode():
        for start in range(0, len(todo), 32):
            chunk = todo[start:start + 32]
            batch = torch.stack([predictor.net_input(predictor.load_photo(p)) for p in chunk])
            out = []
            for v in range(views):
                _, pooled = predictor.predict(batch.flip(3) if v else batch)
                out.append(torch.cat(pooled, 1).cpu().numpy().astype(np.float16))
            for k, p in enumerate(chunk):
                have[p.name] = np.stack([o[k] for o in out])
            print(f"features {store.stem}: {start + len(chunk)}/{len(todo)}", flush=True)
    feats = np.stack([have[p.name] for p in paths])
    if todo:
        np.save(store, feats)
        names_file.write_text("".join(f"{p.name}\n" for p in paths))
    return feats


def split_blocks(x: torch.Tensor, channels: list[int]) -> list[torch.Tensor]:
    """``[B, D]`` -> the per-block ``[B, C_i]`` list a head takes."""
    return list(torch.split(x, channels, dim=1))


def train_head(model: VNet, feats: np.ndarray, targets: np.ndarray, epochs: int, lr: float,
               weight_decay: float, batch_size: int = 32, seed: int = 0) -> VNetHead:
    """A new V-Net head fitted to ``targets`` on frozen features (MSE, Adam, one-cycle)."""
    torch.manual_seed(seed)
    cfg = model.cfg
    head = VNetHead(model.block_channels, cfg.proj_channels, cfg.lstm_hidden)
    with torch.no_grad():
        head.regressor.bias.fill_(float(targets.mean()))
    x, y = torch.from_numpy(np.ascontiguousarray(feats)), torch.tensor(targets).float()
    n, views = x.shape[:2]
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * -(-n // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=steps, div_factor=10, final_div_factor=10,
        three_phase=True, pct_start=0.45)
    gen = torch.Generator().manual_seed(seed)
    head.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        view = torch.randint(0, views, (n,), generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            pred = head(split_blocks(x[idx, view[idx]].float(), model.block_channels))
            loss = torch.nn.functional.mse_loss(pred, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    return head.eval()


@torch.inference_mode()
def head_scores(model: VNet, feats: np.ndarray) -> np.ndarray:
    """``[N, K]`` every head's score on the first view of ``feats``."""
    x = torch.from_numpy(np.ascontiguousarray(feats[:, 0]))
    return np.concatenate([
        model.head_scores(split_blocks(x[s:s + 256].float(), model.block_channels)).numpy()
        for s in range(0, len(x), 256)])


def fit_gate(model: VNet, scene: np.ndarray, other: np.ndarray, l2: float = 1e-3) -> None:
    """Logistic regression (balanced classes) on the last block's features: scene vs other,
    written into the mixer's gate (domain 0 = scene)."""
    c = model.block_channels[-1]
    f = torch.from_numpy(np.concatenate([scene[:, 0, -c:], other[:, 0, -c:]]).astype(np.float32))
    y = torch.cat([torch.ones(len(scene)), torch.zeros(len(other))])
    weight = torch.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    lin = torch.nn.Linear(c, 1)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            lin(f).squeeze(1), y, weight=weight) + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():  # softmax over [logit, 0] = sigmoid(logit) for domain 0
        model.mixer.gate.weight.copy_(torch.cat([lin.weight, torch.zeros_like(lin.weight)]))
        model.mixer.gate.bias.copy_(torch.cat([lin.bias, torch.zeros_like(lin.bias)]))


def fit_domain(model: VNet, domain: int, blend: np.ndarray, ref: np.ndarray,
               scores: np.ndarray, targets: np.ndarray) -> None:
    """Domain ``domain`` = least-squares affine map of a blend of standardised heads.

    ``blend``: weight per head; ``ref``: head scores ``[N, K]`` the standardisation is taken
    on; ``scores``/``targets``: where the affine map is fitted.
    """
    mu, sd = ref.mean(0), ref.std(0)
    mix = ((scores - mu) / sd) @ blend
    k, c = np.polyfit(mix, targets, 1)
    with torch.no_grad():
        model.mixer.weight[domain] = torch.tensor(k * blend / sd).float()
        model.mixer.bias[domain] = float(c - k * (blend * mu / sd).sum())


def spearman_by(pred: np.ndarray, target: np.ndarray, groups: np.ndarray) -> dict:
    """Overall and per-group Spearman rho."""
    out = {"all": regression_metrics(pred.tolist(), target.tolist())["rho"]}
    for g in sorted(set(groups)):
        m = groups == g
        out[str(g)] = regression_metrics(pred[m].tolist(), target[m].tolist())["rho"]
    return out


def default_meta(base_meta: dict, metrics: dict, args: argparse.Namespace, n_teachers: int,
                 held: np.ndarray) -> dict:
    """Checkpoint metadata: the base model's (LNSIM) with the teacher heads and mixer added."""
    train_data = dict(base_meta.get("train_data") or {})
    train_data["teacher"] = {
        "data": str(args.pool), "labels": "ResMem 1.1.6 (scripts/teacher_scores.py)",
        "photos": int((~held).sum()), "held_out": int(held.sum()),
        "held_out_rule": "sha1(name) % 5 == 0"}
    training = dict(base_meta.get("training") or {})
    training["teacher"] = {"heads": n_teachers, "epochs": args.epochs, "lr_max": args.lr,
                           "weight_decay": args.weight_decay, "precision": args.pool_precision}
    training["mixer"] = {"alpha": args.alpha, "beta": args.beta,
                         "scene_scale": "LNSIM val_1", "other_scale": "teacher, pool train"}
    return {"metrics": metrics, "train_data": train_data, "training": training,
            "backbone_init": base_meta.get("backbone_init", "unknown")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=Path("weights/memo-vnet-r50.pt"))
    parser.add_argument("--lnsim", type=Path, default=Path("../shared/datasets/lnsim"))
    parser.add_argument("--pool", type=Path, default=Path("../shared/datasets/pool"))
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pool-precision", default="bf16",
                        help="compute precision of the pool photos' features (the default "
                             "release used bf16, as memo scores on CPUs with bfloat16)")
    parser.add_argument("--teacher-heads", type=int, default=3,
                        help="teacher heads (seeds), averaged")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=0.35, help="teacher share, scene domain")
    parser.add_argument("--beta", type=float, default=0.1, help="LNSIM share, other domain")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    args.work.mkdir(parents=True, exist_ok=True)

    base = load_checkpoint(args.base)
    predictor = Predictor(base.model, "cpu", "fp32")
    pool_predictor = predictor.in_precision(args.pool_precision)
    lnsim = {k: load_split(args.lnsim, f"{k}_1") for k in ("train", "val", "test")}
    lnsim_paths = [i.path for k in ("train", "val", "test") for i in lnsim[k]]
    feats_l = pooled_features(predictor, lnsim_paths, 2, args.work / "lnsim.npy")
    teacher = {line.split()[0]: float(line.split()[1])
               for line in args.teacher.read_text().splitlines() if line.strip()}
    pool_names = sorted(teacher)
    feats_p = pooled_features(pool_predictor, [args.pool / "images" / n for n in pool_names], 1,
                              args.work / "pool.npy")
    y_pool = np.array([teacher[n] for n in pool_names])
    held = np.array([pool_fold(n) == HELD_OUT for n in pool_names])
    source = np.array([n.split("_")[0] for n in pool_names])

    teachers = tuple(f"teacher{k}" for k in range(1, args.teacher_heads + 1))
    cfg = base.model.cfg.with_heads(("lnsim", *teachers), mixer_domains=2)
    model = VNet(cfg).eval()
    model.backbone.load_state_dict(base.model.backbone.state_dict())
    model.heads["lnsim"].load_state_dict(base.model.primary_head.state_dict())
    for seed, name in enumerate(teachers):
        model.heads[name].load_state_dict(train_head(
            model, feats_p[~held], y_pool[~held], args.epochs, args.lr, args.weight_decay,
            seed=seed).state_dict())
        print(f"trained head {name}", flush=True)

    n_tr, n_va = len(lnsim["train"]), len(lnsim["val"])
    parts = {"train": slice(0, n_tr), "val": slice(n_tr, n_tr + n_va),
             "test": slice(n_tr + n_va, None)}
    y_l = {k: np.array([i.score for i in lnsim[k]]) for k in parts}
    fit_gate(model, feats_l[parts["train"]], feats_p[~held])
    ref = head_scores(model, feats_p[~held])
    share = [1.0 / len(teachers)] * len(teachers)  # the teacher heads, averaged
    fit_domain(model, 0, np.array([1 - args.alpha, *(args.alpha * w for w in share)]), ref,
               head_scores(model, feats_l[parts["val"]]), y_l["val"])
    fit_domain(model, 1, np.array([args.beta, *((1 - args.beta) * w for w in share)]), ref,
               ref, y_pool[~held])

    @torch.inference_mode()
    def scores(feats):
        x = torch.from_numpy(np.ascontiguousarray(feats[:, 0])).float()
        return model.head(split_blocks(x, model.block_channels)).numpy()

    metrics = {"epoch": base.meta.get("metrics", {}).get("epoch")}
    for k in ("val", "test"):
        m = regression_metrics(scores(feats_l[parts[k]]).tolist(), y_l[k].tolist())
        metrics[f"{k}_rho"], metrics[f"{k}_mse"], metrics[f"{k}_n"] = m["rho"], m["mse"], m["n"]
    metrics["pool_heldout_rho_vs_teacher"] = spearman_by(
        scores(feats_p[held]), y_pool[held], source[held])
    print(json.dumps(metrics, indent=2))
    save_checkpoint(args.out, model, half=True, **default_meta(base.meta, metrics, args,
                                                               len(teachers), held))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
