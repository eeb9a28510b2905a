"""The vit family on its tiny checkpoint: golden values hold, and break when they should."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from hfmatrix import checkpoints

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.fixture
def vit_family():
    """The vit family module, imported as pytest imports it."""
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    sys.path.insert(0, str(ROOT / "families"))
    try:
        import test_hf_vit
    finally:
        sys.path.remove(str(ROOT / "families"))
    return test_hf_vit


def run(family, model_id: str = "tiny", hardware: str = "cpu") -> dict:
    return family.TestVitModels(model_id).run_tests(hardware)


def failed_checks(record: dict) -> set[str]:
    return {
        f"{test}.{check['name']}"
        for test, result in record["tests"].items()
        for check in result.get("checks", [])
        if not check["passed"]
    }


def tiny_dir(family) -> Path:
    return Path(family.TestVitModels("tiny").source.location)


def edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_tiny_checkpoint_passes_with_numbers(vit_family):
    record = run(vit_family)
    assert record["status"] == "passed", record["reason"]
    assert record["tier"] == "tiny" and record["model_id"] == "tiny-vit"
    assert {t: r["status"] for t, r in record["tests"].items()} == {
        "pipeline": "passed",
        "from_pretrained": "passed",
    }
    names = {c["name"] for r in record["tests"].values() for c in r["checks"]}
    assert {"top_k_labels", "weights_sha256", "image_processor_settings",
            "predicted_labels", "pipeline_matches_logits_labels"} <= names  # fmt: skip
    comparisons = record["numerics"]["comparisons"]
    assert set(comparisons) == {
        "top_k_scores",
        "pipeline_matches_logits_scores",
        "pixel_values_stats",
        "logits_slice",
        "save_load_round_trip",
    }
    assert all(c["max_abs_diff"] <= c["atol"] for c in comparisons.values())
    assert comparisons["logits_slice"]["atol"] == vit_family.ATOL == 1e-4
    assert comparisons["save_load_round_trip"]["atol"] == 1e-5
    assert record["numerics"]["max_abs_diff"] <= record["numerics"]["atol"]
    assert record["loaded"]["class"] == "ViTForImageClassification"
    assert record["loaded"]["processor"].startswith("ViTImageProcessor")
    assert len(record["checkpoint"]["sha256"]) == 64


def test_golden_predictions_are_well_separated(vit_family):
    """Neighbouring top-k scores differ by far more than the tolerance: no near-ties."""
    scores = vit_family.GOLDEN_TOP_SCORES
    assert min(a - b for a, b in itertools.pairwise(scores)) > 50 * vit_family.ATOL


def test_rebuilding_the_tiny_checkpoint_gives_identical_bytes(vit_family, tmp_path, monkeypatch):
    hashes = []
    for name in ("first", "second"):
        monkeypatch.setenv("HFMATRIX_CACHE", str(tmp_path / name))
        path = checkpoints.tiny_checkpoint("vit-v1", vit_family.TestVitModels("tiny").build_tiny)
        hashes.append(checkpoints.describe(path))
    assert hashes[0]["files"] == hashes[1]["files"]
    assert {"model.safetensors", "config.json", "preprocessor_config.json"} <= set(
        hashes[0]["files"]
    )


@pytest.mark.parametrize(
    "parameter",
    [
        "vit.embeddings.patch_embeddings.projection.weight",
        "vit.encoder.layer.1.output.dense.weight",
        "classifier.bias",
    ],
)
def test_changing_one_weight_fails(vit_family, parameter):
    import torch
    from safetensors.torch import load_file, save_file

    weights = tiny_dir(vit_family) / "model.safetensors"
    tensors = load_file(weights)
    with torch.no_grad():
        tensors[parameter][0] += 0.05
    save_file(tensors, weights, metadata={"format": "pt"})
    record = run(vit_family)
    assert record["status"] == "failed"
    assert {"from_pretrained.weights_sha256", "from_pretrained.logits_slice",
            "pipeline.top_k_scores"} <= failed_checks(record)  # fmt: skip
    # the model still agrees with its own pipeline: only golden checks fail
    assert not {"from_pretrained.pipeline_matches_logits_scores",
                "from_pretrained.save_load_round_trip"} & failed_checks(record)  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("image_std", [0.5, 0.5, 0.5]),  # normalisation
        ("resample", 0),  # nearest instead of bilinear resizing
    ],
)
def test_changing_the_image_processor_fails(vit_family, key, value):
    edit_json(
        tiny_dir(vit_family) / "preprocessor_config.json", lambda data: data.update({key: value})
    )
    record = run(vit_family)
    assert record["status"] == "failed"
    assert {"from_pretrained.image_processor_settings", "from_pretrained.pixel_values_stats",
            "from_pretrained.logits_slice"} <= failed_checks(record)  # fmt: skip
    assert "from_pretrained.weights_sha256" not in failed_checks(record)


def test_renaming_a_label_fails(vit_family):
    def rename(config):
        config["id2label"]["5"] = "wolf"  # "dog", the second prediction
        config["label2id"] = {"wolf" if k == "dog" else k: v for k, v in config["label2id"].items()}

    edit_json(tiny_dir(vit_family) / "config.json", rename)
    record = run(vit_family)
    assert record["status"] == "failed"
    assert failed_checks(record) == {"pipeline.top_k_labels", "from_pretrained.predicted_labels"}


def test_hub_model_offline_is_skipped_quickly(vit_family):
    start = time.perf_counter()
    record = run(vit_family, "google/vit-base-patch16-224")
    assert record["status"] == "skipped"
    assert "HF_HUB_OFFLINE" in record["reason"]
    assert time.perf_counter() - start < 10


def test_hub_tier_checks_self_consistency_only(vit_family, isolated, monkeypatch):
    """A cached snapshot of a hub id (holding the tiny files) passes the hub-tier checks,
    which compare the pipeline with the model's own logits, not with golden values."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(isolated / "hf" / "hub"))
    repo = isolated / "hf" / "hub" / "models--google--vit-base-patch16-224"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_dir(vit_family), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    record = run(vit_family, "google/vit-base-patch16-224")
    assert record["tier"] == "hub" and record["status"] == "passed", record["reason"]
    assert record["numerics"]["reference"] == "self-consistency"
    names = {c["name"] for r in record["tests"].values() for c in r["checks"]}
    assert {"pipeline_matches_logits_labels", "pipeline_matches_logits_scores",
            "scores_are_probabilities", "pixel_values_shape"} <= names  # fmt: skip
    assert not {"logits_slice", "top_k_labels", "weights_sha256"} & names
