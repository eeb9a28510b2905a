"""The sam family on its tiny checkpoint: golden values hold, and break when they should."""

from __future__ import annotations

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
def sam_family():
    """The sam family module, imported as pytest imports it."""
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    sys.path.insert(0, str(ROOT / "families"))
    try:
        import test_hf_sam
    finally:
        sys.path.remove(str(ROOT / "families"))
    return test_hf_sam


def run(family, model_id: str = "tiny") -> dict:
    return family.TestSamModels(model_id).run_tests("cpu")


def failed_checks(record: dict) -> set[str]:
    return {
        f"{test}.{check['name']}"
        for test, result in record["tests"].items()
        for check in result.get("checks", [])
        if not check["passed"]
    }


def tiny_dir(family) -> Path:
    return Path(family.TestSamModels("tiny").source.location)


def test_tiny_checkpoint_passes_with_numbers(sam_family):
    record = run(sam_family)
    assert record["status"] == "passed", record["reason"]
    assert record["tier"] == "tiny" and record["model_id"] == "tiny-sam"
    assert record["pipeline_task"] == "mask-generation"
    assert record["loaded"]["class"] == "SamModel"
    assert {t: r["status"] for t, r in record["tests"].items()} == {
        "pipeline": "passed",
        "from_pretrained": "passed",
    }
    comparisons = record["numerics"]["comparisons"]
    assert {
        "mask_scores",
        "pipeline_matches_model_scores",
        "pixel_values_stats",
        "pixel_values_slice",
        "iou_scores",
        "pred_masks_slice",
        "pred_masks_stats",
        "save_load_round_trip",
    } <= set(comparisons)
    assert comparisons["save_load_round_trip"]["atol"] == 1e-5
    assert record["numerics"]["max_abs_diff"] <= record["numerics"]["atol"] == 1e-4
    names = {c["name"] for r in record["tests"].values() for c in r["checks"]}
    assert {"mask_pixels", "weights_sha256", "image_processor_settings", "input_points",
            "pipeline_matches_model_masks", "mask_shapes_match_image"} <= names  # fmt: skip
    assert set(record["checkpoint"]["files"]) == {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    }


def test_rebuilding_the_tiny_checkpoint_gives_identical_bytes(sam_family, tmp_path, monkeypatch):
    hashes = []
    for name in ("first", "second"):
        monkeypatch.setenv("HFMATRIX_CACHE", str(tmp_path / name))
        path = checkpoints.tiny_checkpoint("sam-v1", sam_family.TestSamModels("tiny").build_tiny)
        hashes.append(checkpoints.describe(path))
    assert hashes[0]["files"] == hashes[1]["files"]


OUTPUTS = {"from_pretrained.iou_scores", "from_pretrained.pred_masks_slice"}


@pytest.mark.parametrize(
    ("parameter", "index", "expected_failures"),
    [
        # the image encoder's last layer: every output changes
        ("vision_encoder.layers.1.mlp.lin2.weight", (0, 0), OUTPUTS),
        # the IoU of the first multimask output: the scores change, the masks do not
        ("mask_decoder.iou_prediction_head.proj_out.bias", 1, {"from_pretrained.iou_scores"}),
        # the single-mask output's hypernetwork, unused with multimask_output: only the hash sees it
        ("mask_decoder.output_hypernetworks_mlps.0.proj_out.bias", 0, set()),
    ],
)
def test_changing_one_weight_fails(sam_family, parameter, index, expected_failures):
    import torch
    from safetensors.torch import load_file, save_file

    weights = tiny_dir(sam_family) / "model.safetensors"
    tensors = load_file(weights)
    with torch.no_grad():
        tensors[parameter][index] += 0.05
    save_file(tensors, weights, metadata={"format": "pt"})
    record = run(sam_family)
    assert record["status"] == "failed"
    failed = failed_checks(record)
    assert {"from_pretrained.weights_sha256", *expected_failures} <= failed
    if not expected_failures:
        assert failed == {"from_pretrained.weights_sha256"}


@pytest.mark.parametrize(
    ("key", "value", "expected_failure"),
    [
        ("image_mean", [0.5, 0.5, 0.5], "from_pretrained.pixel_values_stats"),
        ("image_std", [0.5, 0.5, 0.5], "from_pretrained.pixel_values_stats"),
        ("resample", 3, "from_pretrained.pixel_values_slice"),  # bicubic for bilinear
    ],
)
def test_changing_the_image_processor_fails(sam_family, key, value, expected_failure):
    path = tiny_dir(sam_family) / "preprocessor_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data[key] = value
    path.write_text(json.dumps(data), encoding="utf-8")
    record = run(sam_family)
    assert record["status"] == "failed"
    assert {expected_failure, "from_pretrained.image_processor_settings"} <= failed_checks(record)


def test_hub_model_offline_is_skipped_quickly(sam_family):
    start = time.perf_counter()
    record = run(sam_family, "facebook/sam-vit-base")
    assert record["status"] == "skipped"
    assert "HF_HUB_OFFLINE" in record["reason"]
    assert time.perf_counter() - start < 10


def test_hub_checks_run_on_a_cached_snapshot(sam_family, isolated, monkeypatch):
    """A cached snapshot serves the Hub id offline (here holding the tiny files); the hub-tier
    checks run, and random weights fail exactly the ones only a trained SAM passes."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(isolated / "hf" / "hub"))
    repo = isolated / "hf" / "hub" / "models--facebook--sam-vit-base"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_dir(sam_family), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    record = run(sam_family, "facebook/sam-vit-base")
    assert record["tier"] == "hub" and record["source"]["origin"] == "HF cache"
    assert record["loaded"]["class"] == "SamModel"
    names = {c["name"] for r in record["tests"].values() for c in r["checks"]}
    assert {"found_masks", "scores_pass_threshold", "pipeline_matches_model_masks"} <= names
    assert not names & {"weights_sha256", "mask_pixels", "iou_scores"}  # no golden values
    assert failed_checks(record) == {
        "from_pretrained.iou_scores_in_range",
        "from_pretrained.point_in_best_mask",
    }
