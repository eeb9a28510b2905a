"""The whisper family on its tiny checkpoint: golden values hold, and break when they should."""

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
def whisper_family():
    """The whisper family module, imported as pytest imports it."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "families"))
    try:
        import test_hf_whisper
    finally:
        sys.path.remove(str(ROOT / "families"))
    return test_hf_whisper


def run(family, model_id: str = "tiny") -> dict:
    return family.TestWhisperModels(model_id).run_tests("cpu")


def failed_checks(record: dict) -> set[str]:
    return {
        f"{test}.{check['name']}"
        for test, result in record["tests"].items()
        for check in result.get("checks", [])
        if not check["passed"]
    }


def check_names(record: dict, test: str) -> list[str]:
    return [check["name"] for check in record["tests"][test]["checks"]]


def tiny_dir(family) -> Path:
    return Path(family.TestWhisperModels("tiny").source.location)


def test_tiny_checkpoint_passes_with_numbers(whisper_family):
    record = run(whisper_family)
    assert record["status"] == "passed", record["reason"]
    assert record["tier"] == "tiny" and record["model_id"] == "tiny-whisper"
    assert record["pipeline_task"] == "automatic-speech-recognition"
    assert record["loaded"]["class"] == "WhisperForConditionalGeneration"
    assert check_names(record, "pipeline") == [
        "pipeline_decodes_as_whisper",
        "pipeline_text_matches_generate",
        "pipeline_text",
    ]
    assert {
        "features_shape", "first_greedy_token_is_logits_argmax", "weights_sha256",
        "vocab_sha256", "feature_extractor_settings", "decoder_prompt_ids", "text_ids",
        "greedy_ids", "greedy_transcript", "save_load_round_trip",
    } <= set(check_names(record, "from_pretrained"))  # fmt: skip
    comparisons = record["numerics"]["comparisons"]
    assert set(comparisons) == {
        "features_stats", "features_slice", "logits_slice", "logits_stats",
        "save_load_round_trip",
    }  # fmt: skip
    assert comparisons["save_load_round_trip"]["atol"] == 1e-5
    assert all(c["atol"] == 1e-3 for name, c in comparisons.items() if "round_trip" not in name)
    assert record["numerics"]["max_abs_diff"] <= record["numerics"]["atol"] == 1e-3
    assert len(record["checkpoint"]["sha256"]) == 64


def test_rebuilding_the_tiny_checkpoint_gives_identical_bytes(
    whisper_family, tmp_path, monkeypatch
):
    build = whisper_family.TestWhisperModels("tiny").build_tiny
    hashes = []
    for name in ("first", "second"):
        monkeypatch.setenv("HFMATRIX_CACHE", str(tmp_path / name))
        hashes.append(checkpoints.describe(checkpoints.tiny_checkpoint("whisper-v1", build)))
    assert hashes[0]["files"] == hashes[1]["files"]
    assert {"model.safetensors", "tokenizer.json", "processor_config.json"} <= set(
        hashes[0]["files"]
    )


@pytest.mark.parametrize(
    ("parameter", "reaches_outputs"),
    [
        ("model.encoder.conv1.weight", True),  # the audio side, seen through cross-attention
        ("model.decoder.layer_norm.weight", True),
        ("model.decoder.embed_tokens.weight", False),  # the row of "Ġhz": neither fed nor chosen
    ],
)
def test_changing_one_weight_fails(whisper_family, parameter, reaches_outputs):
    import torch
    from safetensors.torch import load_file, save_file

    weights = tiny_dir(whisper_family) / "model.safetensors"
    tensors = load_file(weights)
    vocab, _ = whisper_family.byte_level_bpe()
    index = (vocab["Ġhz"], 0) if "embed_tokens" in parameter else (0,) * tensors[parameter].dim()
    with torch.no_grad():
        tensors[parameter][index] += 0.05
    save_file(tensors, weights, metadata={"format": "pt"})
    record = run(whisper_family)
    assert record["status"] == "failed"
    assert "from_pretrained.weights_sha256" in failed_checks(record)
    if reaches_outputs:
        assert "from_pretrained.logits_slice" in failed_checks(record)


@pytest.mark.parametrize(
    ("first", "second", "expected_failures"),
    [
        ("c", "C", {"pipeline.pipeline_text", "from_pretrained.greedy_transcript"}),  # generated
        ("Ġlow", "Ġhigh", {"from_pretrained.text_ids"}),  # words of TEXT
    ],
)
def test_swapping_two_vocabulary_tokens_fails(whisper_family, first, second, expected_failures):
    path = tiny_dir(whisper_family) / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    path.write_text(json.dumps(data), encoding="utf-8")
    record = run(whisper_family)
    assert record["status"] == "failed"
    assert {*expected_failures, "from_pretrained.vocab_sha256"} <= failed_checks(record)
    # the model's own outputs are untouched: only what the tokenizer makes of them changed
    assert not {"from_pretrained.logits_slice", "from_pretrained.greedy_ids"} & failed_checks(
        record
    )


def set_feature_extractor(family, key: str, value) -> None:
    path = tiny_dir(family) / "processor_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["feature_extractor"][key] = value
    path.write_text(json.dumps(data), encoding="utf-8")


def test_changing_the_feature_extractor_window_fails(whisper_family):
    set_feature_extractor(whisper_family, "n_fft", 512)
    record = run(whisper_family)
    assert record["status"] == "failed"
    assert {
        "from_pretrained.feature_extractor_settings",
        "from_pretrained.features_stats",
        "from_pretrained.features_slice",
        "from_pretrained.logits_slice",
    } <= failed_checks(record)


def test_changing_the_feature_extractor_sampling_rate_fails(whisper_family):
    set_feature_extractor(whisper_family, "sampling_rate", 8000)
    record = run(whisper_family)
    assert record["status"] in {"failed", "error"}
    # the 16 kHz sweep no longer matches what the extractor expects: the direct path refuses it
    assert record["tests"]["from_pretrained"]["status"] == "error"
    assert "sampling rate of 8000" in record["tests"]["from_pretrained"]["error"]
    assert record["tests"]["pipeline"]["status"] in {"failed", "error"}


def test_hub_model_offline_is_skipped_quickly(whisper_family):
    start = time.perf_counter()
    record = run(whisper_family, "openai/whisper-tiny")
    assert record["status"] == "skipped"
    assert "HF_HUB_OFFLINE" in record["reason"]
    assert time.perf_counter() - start < 10


def test_hub_checks_hold_for_any_whisper_checkpoint(whisper_family, isolated, monkeypatch):
    """A cached snapshot serves openai/whisper-tiny offline (here holding the tiny files): the
    hub tier's self-consistency checks run, and pass, without golden values."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(isolated / "hf" / "hub"))
    repo = isolated / "hf" / "hub" / "models--openai--whisper-tiny"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_dir(whisper_family), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    record = run(whisper_family, "openai/whisper-tiny")
    assert record["tier"] == "hub" and record["source"]["origin"] == "HF cache"
    assert record["status"] == "passed", record["reason"]
    assert record["numerics"]["reference"] == "self-consistency"
    assert check_names(record, "pipeline") == [
        "pipeline_decodes_as_whisper",
        "pipeline_text_matches_generate",
    ]
    assert check_names(record, "from_pretrained") == [
        "weights_complete", "finite", "features_shape", "logits_shape", "greedy_length",
        "first_greedy_token_is_logits_argmax", "save_load_round_trip",
    ]  # fmt: skip
