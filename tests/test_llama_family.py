"""The llama family on its tiny checkpoint: golden values hold, and break when they should."""

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

# What the hub tier checks: properties any model of the class has, no golden values.
HUB_CHECKS = {
    "pipeline": {"pipeline_keeps_prompt_ids", "new_token_count", "text_is_decoding_of_ids"},
    "from_pretrained": {
        "weights_complete", "finite", "new_token_count", "first_token_is_argmax",
        "pipeline_matches_greedy_ids", "causal_prefix_logits", "cached_greedy_is_argmax",
        "save_load_round_trip",
    },
}  # fmt: skip
GOLDEN_CHECKS = {
    "pipeline": {"generated_ids", "generated_text", "generated_text_is_golden_decoding"},
    "from_pretrained": {
        "grouped_query_attention", "weights_sha256", "vocab_sha256", "input_ids",
        "byte_fallback_ids", "byte_fallback_round_trip", "logits_slice", "logits_stats",
        "greedy_new_ids",
    },
}  # fmt: skip


@pytest.fixture
def llama_family():
    """The llama family module, imported as pytest imports it."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "families"))
    try:
        import test_hf_llama
    finally:
        sys.path.remove(str(ROOT / "families"))
    return test_hf_llama


def run(family, model_id: str = "tiny", hardware: str = "cpu") -> dict:
    return family.TestLlamaModels(model_id).run_tests(hardware)


def check_names(record: dict) -> dict[str, set[str]]:
    return {test: {c["name"] for c in result["checks"]} for test, result in record["tests"].items()}


def failed_checks(record: dict) -> set[str]:
    return {
        f"{test}.{check['name']}"
        for test, result in record["tests"].items()
        for check in result.get("checks", [])
        if not check["passed"]
    }


def tiny_dir(family) -> Path:
    return Path(family.TestLlamaModels("tiny").source.location)


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_tiny_checkpoint_passes_with_numbers(llama_family):
    record = run(llama_family)
    assert record["status"] == "passed", record["reason"]
    assert record["tier"] == "tiny" and record["model_id"] == "tiny-llama"
    assert record["pipeline_task"] == "text-generation"
    assert record["loaded"]["class"] == "LlamaForCausalLM"
    assert {t: r["status"] for t, r in record["tests"].items()} == {
        "pipeline": "passed",
        "from_pretrained": "passed",
    }
    names = check_names(record)
    for test in names:
        assert names[test] == HUB_CHECKS[test] | GOLDEN_CHECKS[test]
    comparisons = record["numerics"]["comparisons"]
    assert set(comparisons) == {
        "logits_slice",
        "logits_stats",
        "causal_prefix_logits",
        "cached_greedy_is_argmax",
        "save_load_round_trip",
    }
    assert comparisons["save_load_round_trip"]["atol"] == 1e-5
    assert record["numerics"]["max_abs_diff"] <= record["numerics"]["atol"] == 1e-4
    assert len(record["checkpoint"]["sha256"]) == 64


def test_tiny_config_uses_grouped_query_attention(llama_family):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_dir(llama_family))
    assert config.num_key_value_heads == 2 < config.num_attention_heads == 4


def test_rebuilding_the_tiny_checkpoint_gives_identical_bytes(llama_family, tmp_path, monkeypatch):
    hashes = []
    for name in ("first", "second"):
        monkeypatch.setenv("HFMATRIX_CACHE", str(tmp_path / name))
        build = llama_family.TestLlamaModels("tiny").build_tiny
        hashes.append(checkpoints.describe(checkpoints.tiny_checkpoint("llama-v1", build)))
    assert hashes[0]["files"] == hashes[1]["files"]
    assert {"model.safetensors", "tokenizer.json", "config.json"} <= set(hashes[0]["files"])


@pytest.mark.parametrize(
    "parameter",
    [
        "model.layers.1.mlp.down_proj.weight",
        "model.layers.0.self_attn.k_proj.weight",  # a key head shared by two query heads
        "model.norm.weight",
    ],
)
def test_changing_one_weight_fails(llama_family, parameter):
    import torch
    from safetensors.torch import load_file, save_file

    weights = tiny_dir(llama_family) / "model.safetensors"
    tensors = load_file(weights)
    with torch.no_grad():
        tensors[parameter][0] += 0.05
    save_file(tensors, weights, metadata={"format": "pt"})
    record = run(llama_family)
    assert record["status"] == "failed"
    assert {
        "from_pretrained.weights_sha256",
        "from_pretrained.logits_slice",
        "from_pretrained.logits_stats",
    } <= failed_checks(record)


def test_changing_an_unused_embedding_row_fails_only_the_weights_hash(llama_family):
    import torch
    from safetensors.torch import load_file, save_file

    weights = tiny_dir(llama_family) / "model.safetensors"
    tensors = load_file(weights)
    row = llama_family.VOCAB["▁castle"]  # in neither the prompt nor the continuation
    assert row not in llama_family.GOLDEN_INPUT_IDS + llama_family.GOLDEN_NEW_IDS
    with torch.no_grad():
        tensors["model.embed_tokens.weight"][row, 0] += 0.05
    save_file(tensors, weights, metadata={"format": "pt"})
    record = run(llama_family)
    assert failed_checks(record) == {"from_pretrained.weights_sha256"}


def test_changing_the_predicted_tokens_output_row_changes_the_generation(llama_family):
    """The golden ids catch it; the self-consistency (hub-tier) checks still hold."""
    from safetensors.torch import load_file, save_file

    weights = tiny_dir(llama_family) / "model.safetensors"
    tensors = load_file(weights)
    tensors["lm_head.weight"][llama_family.GOLDEN_NEW_IDS[0]] = 0.0
    save_file(tensors, weights, metadata={"format": "pt"})
    record = run(llama_family)
    failed = failed_checks(record)
    assert {
        "pipeline.generated_ids",
        "pipeline.generated_text",
        "from_pretrained.greedy_new_ids",
        "from_pretrained.weights_sha256",
    } <= failed
    assert not {f"{t}.{name}" for t, names in HUB_CHECKS.items() for name in names} & failed


@pytest.mark.parametrize(
    ("token", "other", "expected_failure"),
    [
        ("▁king", "▁queen", "from_pretrained.input_ids"),  # a word of the prompt
        ("▁world", "▁castle", "pipeline.generated_text"),  # a word the model generates
    ],
)
def test_changing_one_vocabulary_token_fails(llama_family, token, other, expected_failure):
    def swap(data):
        vocab = data["model"]["vocab"]
        vocab[token], vocab[other] = vocab[other], vocab[token]

    edit_json(tiny_dir(llama_family) / "tokenizer.json", swap)
    record = run(llama_family)
    assert record["status"] == "failed"
    assert {expected_failure, "from_pretrained.vocab_sha256"} <= failed_checks(record)


@pytest.mark.parametrize(
    ("file", "change"),
    [
        ("tokenizer.json", lambda data: data.update(post_processor=None)),  # no <s> added
        ("tokenizer_config.json", lambda data: data.update(add_prefix_space=False)),
    ],
    ids=["no-bos", "no-prefix-space"],
)
def test_changing_a_tokenizer_setting_fails(llama_family, file, change):
    edit_json(tiny_dir(llama_family) / file, change)
    record = run(llama_family)
    assert record["status"] == "failed"
    assert {"from_pretrained.input_ids", "pipeline.generated_ids"} <= failed_checks(record)


def test_changing_rope_theta_fails(llama_family):
    """A change in the model's computation (here its rotary embedding) moves the goldens."""
    edit_json(
        tiny_dir(llama_family) / "config.json",
        lambda data: data["rope_parameters"].update(rope_theta=500000.0),
    )
    record = run(llama_family)
    failed = failed_checks(record)
    assert {"from_pretrained.logits_slice", "from_pretrained.logits_stats"} <= failed
    assert "from_pretrained.weights_sha256" not in failed


def test_multi_head_config_fails_the_grouped_query_check(llama_family, monkeypatch):
    monkeypatch.setitem(llama_family.TINY_CONFIG, "num_key_value_heads", 4)
    record = run(llama_family)
    assert record["status"] == "failed"
    assert "from_pretrained.grouped_query_attention" in failed_checks(record)


def test_default_hub_model_is_skipped_for_remote_code(llama_family):
    start = time.perf_counter()
    record = run(llama_family, "meta-llama/Llama-2-7b-hf")
    assert record["status"] == "skipped"
    assert "remote code" in record["reason"]
    assert time.perf_counter() - start < 10


def test_hub_model_offline_is_skipped_quickly(llama_family):
    start = time.perf_counter()
    record = run(llama_family, "meta-llama/Llama-2-13b-hf")
    assert record["status"] == "skipped"
    assert "HF_HUB_OFFLINE" in record["reason"]
    assert time.perf_counter() - start < 10


def test_hub_tier_checks_pass_on_a_cached_snapshot(llama_family, isolated, monkeypatch):
    """The hub tier's checks are self-consistency: any model of the class can pass them."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(isolated / "hf" / "hub"))
    repo = isolated / "hf" / "hub" / "models--meta-llama--Llama-2-13b-hf"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_dir(llama_family), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    record = run(llama_family, "meta-llama/Llama-2-13b-hf")
    assert record["tier"] == "hub" and record["source"]["origin"] == "HF cache"
    assert record["status"] == "passed", record["reason"]
    assert check_names(record) == HUB_CHECKS
    assert record["numerics"]["reference"] == "self-consistency"
