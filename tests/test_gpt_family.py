"""The gpt family on its tiny checkpoint: golden values hold, and break when they should."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from hfmatrix import checkpoints, sources

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("isolated")

HUB_TIER_CHECKS = {
    "pipeline.prompt_kept",
    "pipeline.pipeline_ids_match_direct_greedy",
    "pipeline.text_is_greedy_ids_decoded",
    "from_pretrained.weights_complete",
    "from_pretrained.finite",
    "from_pretrained.logits_shape",
    "from_pretrained.new_token_count",
    "from_pretrained.first_greedy_token_is_argmax",
    "from_pretrained.greedy_ids_are_argmax_without_cache",
    "from_pretrained.pipeline_matches_greedy_text",
    "from_pretrained.decode_round_trip",
    "from_pretrained.bytes_decode_round_trip",
    "from_pretrained.save_load_round_trip",
}
GOLDEN_CHECKS = {
    "pipeline.generated_ids",
    "pipeline.generated_text",
    "from_pretrained.weights_sha256",
    "from_pretrained.vocab_sha256",
    "from_pretrained.input_ids",
    "from_pretrained.bytes_input_ids",
    "from_pretrained.logits_slice",
    "from_pretrained.logits_stats",
    "from_pretrained.greedy_ids",
}


@pytest.fixture
def gpt_family():
    """The gpt family module, imported as pytest imports it."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "families"))
    try:
        import test_hf_gpt
    finally:
        sys.path.remove(str(ROOT / "families"))
    return test_hf_gpt


def run(family, model_id: str = "tiny", hardware: str = "cpu") -> dict:
    return family.TestGptModels(model_id).run_tests(hardware)


def check_names(record: dict, passed: bool | None = None) -> set[str]:
    return {
        f"{test}.{check['name']}"
        for test, result in record["tests"].items()
        for check in result.get("checks", [])
        if passed is None or check["passed"] == passed
    }


def failed_checks(record: dict) -> set[str]:
    return check_names(record, passed=False)


def tiny_dir(family) -> Path:
    return Path(family.TestGptModels("tiny").source.location)


def edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_tiny_checkpoint_passes_with_numbers(gpt_family):
    record = run(gpt_family)
    assert record["status"] == "passed", record["reason"]
    assert record["tier"] == "tiny" and record["model_id"] == "tiny-gpt"
    assert record["pipeline_task"] == "text-generation"
    assert record["loaded"]["class"] == "GPT2LMHeadModel"
    assert check_names(record) == HUB_TIER_CHECKS | GOLDEN_CHECKS
    comparisons = record["numerics"]["comparisons"]
    assert set(comparisons) == {
        "logits_slice",
        "logits_stats",
        "greedy_ids_are_argmax_without_cache",
        "save_load_round_trip",
    }
    assert comparisons["save_load_round_trip"]["atol"] == 1e-5
    assert record["numerics"]["max_abs_diff"] <= record["numerics"]["atol"] == 1e-4
    assert len(gpt_family.GOLDEN_NEW_IDS) == gpt_family.NEW_TOKENS >= 10


def test_golden_text_is_the_golden_ids_decoded(gpt_family):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir(gpt_family))
    assert type(tokenizer).__name__ == "GPT2Tokenizer"
    assert (
        tokenizer.eos_token == gpt_family.EOS
        and tokenizer.eos_token_id == len(gpt_family.VOCAB) - 1
    )
    assert tokenizer.eos_token_id not in gpt_family.GOLDEN_NEW_IDS  # EOS was suppressed
    text = tokenizer.decode(gpt_family.GOLDEN_NEW_IDS, skip_special_tokens=True)
    assert text == gpt_family.GOLDEN_TEXT


def test_rebuilding_the_tiny_checkpoint_gives_identical_bytes(gpt_family, tmp_path, monkeypatch):
    hashes = []
    for name in ("first", "second"):
        monkeypatch.setenv("HFMATRIX_CACHE", str(tmp_path / name))
        path = checkpoints.tiny_checkpoint("gpt-v1", gpt_family.TestGptModels("tiny").build_tiny)
        hashes.append(checkpoints.describe(path))
    assert hashes[0]["files"] == hashes[1]["files"]
    assert {"model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(
        hashes[0]["files"]
    )


@pytest.mark.parametrize(
    "parameter",
    [
        "transformer.h.0.attn.c_attn.weight",
        "transformer.ln_f.weight",
        "transformer.wpe.weight",  # the last position's row: beyond prompt + new tokens
    ],
)
def test_changing_one_weight_fails(gpt_family, parameter):
    import torch
    from safetensors.torch import load_file, save_file

    weights = tiny_dir(gpt_family) / "model.safetensors"
    tensors = load_file(weights)
    index = (-1, 0) if parameter == "transformer.wpe.weight" else 0
    with torch.no_grad():
        tensors[parameter][index] += 0.05
    save_file(tensors, weights, metadata={"format": "pt"})
    record = run(gpt_family)
    assert record["status"] == "failed"
    assert "from_pretrained.weights_sha256" in failed_checks(record)
    if parameter != "transformer.wpe.weight":  # these reach the outputs on the prompt as well
        assert {"from_pretrained.logits_slice", "from_pretrained.logits_stats"} <= failed_checks(
            record
        )
    assert not failed_checks(record) & HUB_TIER_CHECKS  # still self-consistent


def test_changing_the_model_code_fails(gpt_family):
    """Another activation in config.json runs other code on the same weights."""
    edit_json(tiny_dir(gpt_family) / "config.json", lambda c: c.update(activation_function="relu"))
    record = run(gpt_family)
    assert record["status"] == "failed"
    assert {"from_pretrained.logits_slice", "from_pretrained.logits_stats"} <= failed_checks(record)
    assert "from_pretrained.weights_sha256" not in failed_checks(record)


@pytest.mark.parametrize(
    ("token", "expected_failure"),
    [
        (",", "from_pretrained.input_ids"),  # a token of the prompt
        ("/", "pipeline.generated_text"),  # a token the model generates
    ],
)
def test_changing_one_vocabulary_token_fails(gpt_family, token, expected_failure):
    def rename(data):
        vocab = data["model"]["vocab"]
        vocab["<renamed>"] = vocab.pop(token)

    edit_json(tiny_dir(gpt_family) / "tokenizer.json", rename)
    record = run(gpt_family)
    assert record["status"] == "failed"
    assert {expected_failure, "from_pretrained.vocab_sha256"} <= failed_checks(record)


def test_changing_the_merges_fails(gpt_family):
    """Dropping the merge that makes "Ġforest" leaves the vocabulary hash as it was."""
    edit_json(
        tiny_dir(gpt_family) / "tokenizer.json",
        lambda data: data["model"]["merges"].remove(["Ġfore", "st"]),
    )
    record = run(gpt_family)
    assert record["status"] == "failed"
    assert "from_pretrained.input_ids" in failed_checks(record)
    assert "from_pretrained.vocab_sha256" not in failed_checks(record)


def test_changing_the_pre_tokenizer_fails(gpt_family):
    directory = tiny_dir(gpt_family)
    edit_json(
        directory / "tokenizer.json",
        lambda data: data["pre_tokenizer"].update(add_prefix_space=True),
    )
    edit_json(directory / "tokenizer_config.json", lambda data: data.update(add_prefix_space=True))
    record = run(gpt_family)
    assert record["status"] == "failed"
    assert "from_pretrained.input_ids" in failed_checks(record)


def test_hub_model_offline_is_skipped_quickly(gpt_family):
    start = time.perf_counter()
    record = run(gpt_family, "gpt2")
    assert record["status"] == "skipped"
    assert "HF_HUB_OFFLINE" in record["reason"]
    assert time.perf_counter() - start < 10


def test_hub_model_with_unreachable_hub_is_skipped_quickly(gpt_family, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    sources.hub_unreachable.cache_clear()
    start = time.perf_counter()
    try:
        record = run(gpt_family, "distilgpt2")
    finally:
        sources.hub_unreachable.cache_clear()
    assert record["status"] == "skipped"
    assert "unreachable" in record["reason"] and "127.0.0.1:9" in record["reason"]
    assert time.perf_counter() - start < 10


def test_hub_model_loads_from_the_hf_cache_offline(gpt_family, isolated, monkeypatch):
    """A cached snapshot serves a Hub id offline (here holding the tiny files): the hub-tier
    self-consistency checks run, and pass, with no golden values."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(isolated / "hf" / "hub"))
    repo = isolated / "hf" / "hub" / "models--gpt2"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_dir(gpt_family), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    record = run(gpt_family, "gpt2")
    assert record["tier"] == "hub" and record["source"]["origin"] == "HF cache"
    assert record["status"] == "passed", record["reason"]
    assert check_names(record) == HUB_TIER_CHECKS
    assert record["numerics"]["reference"] == "self-consistency"
