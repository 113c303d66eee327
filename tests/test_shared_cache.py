"""One score cache shared by several machines (a network home, merged shard caches,
``CUDA_VISIBLE_DEVICES`` toggled): each machine scores under the model id its own setup
resolves to, and where ``--precision`` is ``auto`` a score another variant of the same model
made serves instead of the model running again (issue 22, §1 and §2 item 7)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from conftest import invoke, score_in_a_fresh_process, write_photo

from memocli import device, setup_key
from memocli.model_id import family_of
from memocli.predictor import Predictor

REAL_PREDICT = Predictor.iter_predictions


def machine(monkeypatch, bf16: bool) -> None:
    """Be a CPU with bfloat16 in hardware (or without)."""
    monkeypatch.setattr(device, "native_bf16_cpu", lambda: bf16)


def score(lib, ckpt, db, *extra):
    """``memo score --json``: rows by file name, and the run's summary line."""
    result = invoke(["score", str(lib), "--json", "-w", str(ckpt), "--cache", str(db),
                     "--workers", "0", *extra])
    rows = {os.path.basename(r["path"]): r for r in json.loads(result.stdout)}
    return rows, result.stderr.strip().splitlines()[-1]


def stored_models(db) -> dict[str, str]:
    """Each stored score's model id, by content hash."""
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT content_hash, model FROM scores"))


def test_two_machines_alternating_on_one_cache_each_keep_their_own_id(
        tmp_path, tiny_checkpoint, monkeypatch):
    """The issue's reproduction: a bfloat16 CPU and a float32 one take turns on one cache.
    Neither reports "checkpoint changed", neither scores under the other's id, and each
    new photo is stored under the id of the machine that scored it."""
    lib, db = tmp_path / "lib", tmp_path / "shared.db"
    ids = {}
    for step, (bf16, new_photo) in enumerate([(True, "a"), (False, "b"), (False, None),
                                             (True, "c"), (True, None), (False, "d")]):
        machine(monkeypatch, bf16)
        if new_photo:
            write_photo(lib / f"{new_photo}.jpg", color=(40 * step, 90, 200 - 30 * step))
        rows, summary = score(lib, tiny_checkpoint, db)
        model = summary.rsplit("(model ", 1)[1].rstrip(")")
        assert model.endswith("-bf16" if bf16 else "-fp32"), summary
        assert ids.setdefault(bf16, model) == model  # the same id on every turn
        assert f"{1 if new_photo else 0} scored now" in summary  # the others: from the cache
        if new_photo:
            assert rows[f"{new_photo}.jpg"]["model_id"] == model
    assert family_of(ids[True]) == family_of(ids[False])
    by_photo = {name: stored_models(db)[row["content_hash"]] for name, row in rows.items()}
    assert by_photo == {"a.jpg": ids[True], "b.jpg": ids[False], "c.jpg": ids[True],
                        "d.jpg": ids[False]}
    with sqlite3.connect(db) as conn:
        keys = {r[0]: r[1] for r in conn.execute("SELECT precision, model FROM checkpoints")}
    assert keys == {"auto (cpu bf16)": ids[True], "auto (cpu without bf16)": ids[False]}


def test_a_named_precision_takes_only_its_own_scores(tmp_path, tiny_checkpoint, monkeypatch):
    lib, db = tmp_path / "lib", tmp_path / "shared.db"
    write_photo(lib / "a.jpg")
    machine(monkeypatch, True)
    bf16, _ = score(lib, tiny_checkpoint, db)
    fp32, summary = score(lib, tiny_checkpoint, db, "--precision", "fp32")
    assert "0 from the cache, 1 scored now" in summary
    assert fp32["a.jpg"]["model_id"].endswith("-fp32")
    assert fp32["a.jpg"]["raw_score"] != bf16["a.jpg"]["raw_score"]


def test_shard_jobs_in_another_precision_leave_nothing_to_score_after_the_merge(
        tmp_path, tiny_checkpoint, make_photos, monkeypatch):
    """docs/scaling.md's workflow: shard jobs on other hardware (here bfloat16 CPUs), a
    merge, then the merging machine (here without bfloat16) ranks without running a model;
    each row names the variant that scored it."""
    photos = make_photos(6)
    lib = photos[0].parent
    machine(monkeypatch, True)
    for i in (1, 2):
        invoke(["score", str(lib), "--shard", f"{i}/2", "--cache", str(tmp_path / f"s{i}.db"),
                "-w", str(tiny_checkpoint), "--workers", "0", "-s"])
    invoke(["cache", "merge", str(tmp_path / "s1.db"), str(tmp_path / "s2.db"),
            "--into", str(tmp_path / "merged.db")])
    machine(monkeypatch, False)
    monkeypatch.setattr(Predictor, "iter_predictions",
                        lambda *a, **k: pytest.fail("the merging machine ran the model"))
    rows, summary = score(lib, tiny_checkpoint, tmp_path / "merged.db")
    assert "6 from the cache, 0 scored now" in summary and "-fp32)" in summary
    assert {r["model_id"].rsplit("-", 1)[1] for r in rows.values()} == {"bf16"}


def test_another_checkpoint_never_serves(tmp_path, make_photos, monkeypatch):
    """Variants share a family (weights and preprocessing); other weights do not."""
    from conftest import tiny_checkpoint_at

    photos = make_photos(2)
    db = tmp_path / "c.db"
    score(photos[0].parent, tiny_checkpoint_at(tmp_path / "a.pt", seed=1), db)
    machine(monkeypatch, False)
    _, summary = score(photos[0].parent, tiny_checkpoint_at(tmp_path / "b.pt", seed=2), db)
    assert "0 from the cache, 2 scored now" in summary


def test_setup_keys_name_what_auto_depends_on_without_torch():
    code = ("import sys\nfrom memocli.setup_key import setup_keys\n"
            "print(setup_keys('auto', 'auto', 'auto'))\n"
            "print('torch loaded' if 'torch' in sys.modules else 'no torch')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().endswith("no torch"), out
    assert "auto (cpu " in out and "auto (" in out


def test_a_gpu_and_the_variables_hiding_it_are_part_of_the_key(monkeypatch):
    listdir = os.listdir
    monkeypatch.setattr(setup_key.sys, "platform", "linux")
    monkeypatch.setattr(setup_key.os, "listdir",
                        lambda p: ["null", "nvidia0", "nvidiactl"] if p == "/dev" else listdir(p))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    visible = setup_key.setup_keys("auto", "fp32", "torch")[0]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    hidden = setup_key.setup_keys("auto", "fp32", "torch")[0]
    assert visible.startswith("auto (nvidia0 ") and "torch " in visible
    assert "CUDA_VISIBLE_DEVICES=" in hidden and hidden != visible
    assert setup_key.setup_keys("cpu", "fp32", "torch") == ("cpu", "fp32", "torch")


def test_a_cached_rescan_with_every_choice_on_auto_imports_no_torch(tmp_path, tiny_checkpoint,
                                                                     make_photos):
    """Keying the model id by what auto resolves by costs no torch: the users' default
    (device, precision and engine all auto) re-scans a cached library without it."""
    lib, db = make_photos(2)[0].parent, tmp_path / "c.db"
    auto = ["--device", "auto", "--precision", "auto", "--engine", "auto"]
    first, _ = score(lib, tiny_checkpoint, db, *auto)
    rows, torch_loaded = score_in_a_fresh_process([lib, "-w", tiny_checkpoint, "--cache", db,
                                                   *auto])
    assert not torch_loaded
    again = {os.path.basename(r["path"]): r for r in rows}
    assert again == first


def test_a_sidecar_names_the_variant_its_score_came_from(tmp_path, tiny_checkpoint,
                                                         monkeypatch):
    from memocli.xmp_packet import Packet

    lib, db = tmp_path / "lib", tmp_path / "shared.db"
    write_photo(lib / "a.jpg")
    machine(monkeypatch, True)
    bf16, _ = score(lib, tiny_checkpoint, db)
    machine(monkeypatch, False)
    invoke(["xmp", str(lib), "-w", str(tiny_checkpoint), "--cache", str(db), "-s"])
    properties = Packet.parse((lib / "a.jpg.xmp").read_bytes()).properties()
    assert bf16["a.jpg"]["model_id"] in properties.values()


def test_a_remembered_id_of_another_variant_is_corrected_not_an_error(
        tmp_path, tiny_checkpoint, monkeypatch):
    """Should a machine's facts ever miss what decides its setup, the id remembered for it
    may be another variant's: the run then scores under its own id and remembers that."""
    lib, db = tmp_path / "lib", tmp_path / "c.db"
    write_photo(lib / "a.jpg")
    machine(monkeypatch, False)
    first, _ = score(lib, tiny_checkpoint, db)
    own = first["a.jpg"]["model_id"]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE checkpoints SET model = ?", [own.replace("-fp32", "-fp16-cuda")])
    write_photo(lib / "b.jpg", color=(10, 200, 30))
    rows, summary = score(lib, tiny_checkpoint, db)
    assert f"1 scored now (model {own})" in summary and rows["b.jpg"]["model_id"] == own
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT DISTINCT model FROM checkpoints").fetchall() == [(own,)]


def test_other_weights_behind_an_unchanged_stat_are_refused(tmp_path, monkeypatch):
    """A checkpoint replaced by other weights with the same size and modification time:
    the id remembered for it is another family's, and the run stops instead of storing
    the new weights' scores under the old weights' id."""
    from conftest import tiny_checkpoint_at

    lib, db, ckpt = tmp_path / "lib", tmp_path / "c.db", tmp_path / "m.pt"
    write_photo(lib / "a.jpg")
    tiny_checkpoint_at(ckpt, seed=1)
    score(lib, ckpt, db)
    st = ckpt.stat()
    tiny_checkpoint_at(tmp_path / "other.pt", seed=2).replace(ckpt)
    assert ckpt.stat().st_size == st.st_size
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns))
    write_photo(lib / "b.jpg", color=(10, 200, 30))
    result = invoke(["score", str(lib), "-w", str(ckpt), "--cache", str(db), "--workers", "0"],
                    code=1)
    assert "checkpoint changed while memo was reading it" in result.output
