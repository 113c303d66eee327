"""The model id (memocli/model_id.py): what a score means (its family) and how it was
computed (its variant), and which stored scores a lookup takes (memocli/cache/store.py)."""

from __future__ import annotations

import pytest

from memocli.cache import Cache
from memocli.model_id import Variant, family, family_of, is_variant, model_id
from memocli.registry import PREPROCESSING_VERSION

P = f"p{PREPROCESSING_VERSION}"


@pytest.mark.parametrize(("variant", "text"), [
    (Variant("fp32"), "fp32"),
    (Variant("bf16", "cpu", "openvino", "2026.4.1"), "bf16-ov2026.4.1"),
    (Variant("fp16", "cuda"), "fp16-cuda"),
    (Variant("fp32", "cuda"), "fp32-cuda"),  # TF32 convolutions: not the CPU's fp32
    (Variant("fp32", "mps"), "fp32-mps"),
])
def test_a_variant_names_dtype_device_class_and_engine_release(variant, text):
    assert str(variant) == text
    checkpoint_id = "vnet_r50-28e4da1c5e57fc0a"
    assert model_id(checkpoint_id, variant) == f"{checkpoint_id}-{P}-{text}"
    assert family_of(model_id(checkpoint_id, variant)) == family(checkpoint_id)


def test_ids_of_earlier_memos():
    assert family_of("vnet_r50-28e4-p2-bf16-ov") == "vnet_r50-28e4-p2"  # before the release
    assert family_of("vnet_r50-28e4") is None  # before ids named preprocessing and dtype
    assert not is_variant("vnet_r50-28e4", "vnet_r50-28e4-p2-fp32")


def test_variants_share_weights_and_preprocessing_only():
    assert is_variant("m-abc-p2-fp16-cuda", "m-abc-p2-bf16-ov2026.4.1")
    assert not is_variant("m-abd-p2-fp32", "m-abc-p2-fp32")  # other weights
    assert not is_variant("m-abc-p1-fp32", "m-abc-p2-fp32")  # other preprocessing
    assert not is_variant("m-abc-p2-mirror-fp32", "m-abc-p2-fp32")  # something else computed


def test_a_lookup_takes_its_own_score_first_then_a_variant_never_another_family(tmp_path):
    own, other, cuda = "vnet_t-a_b-p2-bf16", "vnet_t-a_b-p2-fp32", "vnet_t-a_b-p2-fp16-cuda"
    with Cache(tmp_path / "c.db") as c:
        c.record_files([(str(tmp_path / f"{h}.jpg"), h, 1, 1) for h in ("h1", "h2", "h3")])
        c.record_scores(own, [("h1", 0.1)])
        c.record_scores(other, [("h1", 0.2), ("h2", 0.3)], [("h2", b"v2")])
        c.record_scores(cuda, [("h2", 0.4)])
        c.record_scores("vnet_t-axb-p2-bf16", [("h3", 0.5)])  # '_' is no wildcard
        c.record_scores("vnet_t-a_b-p2-mirror-bf16", [("h3", 0.6)])
        paths = [str(tmp_path / f"{h}.jpg") for h in ("h1", "h2", "h3")]
        found = c.lookup_paths(paths, own, variants=True)
        assert [(found[p].score, found[p].model) for p in paths] == \
            [(0.1, own), (0.4, cuda), (None, None)]  # the others: first in id order
        exact = c.lookup_paths(paths, own)
        assert [exact[p].score for p in paths] == [0.1, None, None]
        contents = c.lookup_contents(["h1", "h2", "h3"], own, variants=True)
        assert {h: (k.score, k.model) for h, k in contents.items()} == \
            {"h1": (0.1, own), "h2": (0.4, cuda)}
        assert c.features(["h2"], own, variants=True) == {"h2": b"v2"}
        assert c.features(["h2"], own) == {}
