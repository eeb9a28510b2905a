"""The llava family on its tiny checkpoint: golden values hold, and break when they should."""

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

HUB_CHECKS = {
    "pipeline.image_tokens_match_features",
    "pipeline.image_tokens_match_vision_config",
    "pipeline.pipeline_text_is_decoded_greedy_ids",
    "from_pretrained.weights_complete",
    "from_pretrained.finite",
    "from_pretrained.first_greedy_id_is_logits_argmax",
    "from_pretrained.image_reaches_logits",
    "from_pretrained.save_load_round_trip",
}
GOLDEN_CHECKS = {
    "pipeline.generated_text",
    "from_pretrained.weights_sha256",
    "from_pretrained.vocab_sha256",
    "from_pretrained.input_ids",
    "from_pretrained.pixel_values_stats",
    "from_pretrained.logits_slice",
    "from_pretrained.greedy_new_ids",
}


@pytest.fixture
def llava_family():
    """The llava family module, imported as pytest imports it."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "families"))
    try:
        import test_hf_llava
    finally:
        sys.path.remove(str(ROOT / "families"))
    return test_hf_llava


def run(family, model_id: str = "tiny") -> dict:
    return family.TestLlavaModels(model_id).run_tests("cpu")


def check_names(record: dict) -> set[str]:
    return {
        f"{test}.{check['name']}"
        for test, result in record["tests"].items()
        for check in result.get("checks", [])
    }


def failed_checks(record: dict) -> set[str]:
    return {
        f"{test}.{check['name']}"
        for test, result in record["tests"].items()
        for check in result.get("checks", [])
        if not check["passed"]
    }


def tiny_dir(family) -> Path:
    return Path(family.TestLlavaModels("tiny").source.location)


def edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_tiny_checkpoint_passes_with_numbers(llava_family):
    record = run(llava_family)
    assert record["status"] == "passed", record["reason"]
    assert record["tier"] == "tiny" and record["model_id"] == "tiny-llava"
    assert record["pipeline_task"] == "image-text-to-text"
    assert record["loaded"]["class"] == "LlavaForConditionalGeneration"
    assert check_names(record) == HUB_CHECKS | GOLDEN_CHECKS
    comparisons = record["numerics"]["comparisons"]
    assert set(comparisons) == {"pixel_values_stats", "logits_slice", "save_load_round_trip"}
    assert comparisons["save_load_round_trip"]["atol"] == 1e-5
    assert record["numerics"]["max_abs_diff"] <= record["numerics"]["atol"] == 1e-4
    assert len(record["checkpoint"]["sha256"]) == 64


def test_tiny_recipe_is_consistent(llava_family):
    """The golden ids hold 16 image placeholders, as many as the tiny tower has patches, and
    the prompt encodes without unknown tokens."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_dir(llava_family))
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert llava_family.GOLDEN_INPUT_IDS.count(image_id) == llava_family.IMAGE_TOKENS == 16
    assert processor.tokenizer.unk_token_id not in llava_family.GOLDEN_INPUT_IDS
    ids = llava_family.GOLDEN_INPUT_IDS + llava_family.GOLDEN_NEW_IDS
    assert processor.decode(ids, skip_special_tokens=True).endswith(llava_family.GOLDEN_TEXT)


def test_rebuilding_the_tiny_checkpoint_gives_identical_bytes(llava_family, tmp_path, monkeypatch):
    hashes = []
    for name in ("first", "second"):
        monkeypatch.setenv("HFMATRIX_CACHE", str(tmp_path / name))
        build = llava_family.TestLlavaModels("tiny").build_tiny
        hashes.append(checkpoints.describe(checkpoints.tiny_checkpoint("llava-v1", build)))
    assert hashes[0]["files"] == hashes[1]["files"]
    assert {"model.safetensors", "tokenizer.json", "processor_config.json"} <= set(
        hashes[0]["files"]
    )


@pytest.mark.parametrize(
    ("parameter", "reaches_outputs"),
    [
        ("language_model.model.layers.1.mlp.down_proj.weight", True),  # the decoder
        ("vision_tower.encoder.layers.0.self_attn.q_proj.weight", True),  # only via the image
        ("vision_tower.post_layernorm.weight", False),  # LLaVA never uses CLIP's pooled output
    ],
)
def test_changing_one_weight_fails(llava_family, parameter, reaches_outputs):
    import torch
    from safetensors.torch import load_file, save_file

    weights = tiny_dir(llava_family) / "model.safetensors"
    tensors = load_file(weights)
    with torch.no_grad():
        tensors[parameter].view(-1)[0] += 0.05
    save_file(tensors, weights, metadata={"format": "pt"})
    record = run(llava_family)
    assert record["status"] == "failed"
    failed = failed_checks(record)
    assert "from_pretrained.weights_sha256" in failed
    if reaches_outputs:
        assert "from_pretrained.logits_slice" in failed
    else:
        assert failed == {"from_pretrained.weights_sha256"}


@pytest.mark.parametrize(
    ("token", "replacement", "expected_failure"),
    [
        ("L", "#", "pipeline.generated_text"),  # renamed: generated, in no merge
        ("▁picture", "▁image", "from_pretrained.input_ids"),  # ids swapped: a prompt word
    ],
)
def test_changing_the_vocabulary_fails(llava_family, token, replacement, expected_failure):
    def edit(data):
        vocab = data["model"]["vocab"]
        if replacement in vocab:
            vocab[token], vocab[replacement] = vocab[replacement], vocab[token]
        else:
            vocab[replacement] = vocab.pop(token)

    edit_json(tiny_dir(llava_family) / "tokenizer.json", edit)
    record = run(llava_family)
    assert record["status"] == "failed"
    assert {expected_failure, "from_pretrained.vocab_sha256"} <= failed_checks(record)


@pytest.mark.parametrize("setting", ["image_mean", "image_std"])
def test_changing_the_image_processor_fails(llava_family, setting):
    def edit(data):
        data["image_processor"][setting][1] += 0.05  # the green channel only

    edit_json(tiny_dir(llava_family) / "processor_config.json", edit)
    record = run(llava_family)
    assert record["status"] == "failed"
    assert {"from_pretrained.pixel_values_stats", "from_pretrained.logits_slice"} <= (
        failed_checks(record)
    )


def test_a_wrong_image_token_expansion_is_reported(llava_family):
    """A processor that expands <image> for another patch size: the count check says so."""
    edit_json(
        tiny_dir(llava_family) / "processor_config.json",
        lambda data: data.update(patch_size=16),
    )
    record = run(llava_family)
    assert record["status"] == "error"  # the direct model refuses the mismatched inputs
    assert failed_checks(record) == {
        "pipeline.image_tokens_match_features",
        "pipeline.image_tokens_match_vision_config",
    }
    assert "pipeline.image_tokens_match_features: got 4, expected 16" in record["reason"]
    assert "do not match" in record["tests"]["from_pretrained"]["error"]


def test_a_projector_that_ignores_the_image_fails_the_hub_check(llava_family):
    """Hub-tier checks can fail too: with a zero projector the image reaches nothing."""
    from safetensors.torch import load_file, save_file

    weights = tiny_dir(llava_family) / "model.safetensors"
    tensors = load_file(weights)
    for name in ("multi_modal_projector.linear_2.weight", "multi_modal_projector.linear_2.bias"):
        tensors[name].zero_()
    save_file(tensors, weights, metadata={"format": "pt"})
    record = run(llava_family)
    assert "from_pretrained.image_reaches_logits" in failed_checks(record)


def test_hub_model_offline_is_skipped_quickly(llava_family):
    start = time.perf_counter()
    record = run(llava_family, "llava-hf/llava-1.5-7b-hf")
    assert record["status"] == "skipped"
    assert "HF_HUB_OFFLINE" in record["reason"]
    assert time.perf_counter() - start < 10


def test_hub_tier_checks_hold_for_a_cached_snapshot(llava_family, isolated, monkeypatch):
    """A cached snapshot (here holding the tiny files) gets the hub tier's checks, no goldens,
    and they hold: they are true of any working model of the class."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(isolated / "hf" / "hub"))
    repo = isolated / "hf" / "hub" / "models--llava-hf--llava-1.5-7b-hf"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_dir(llava_family), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    record = run(llava_family, "llava-hf/llava-1.5-7b-hf")
    assert record["tier"] == "hub" and record["source"]["origin"] == "HF cache"
    assert record["status"] == "passed", record["reason"]
    assert check_names(record) == HUB_CHECKS
