"""The llama family: grouped-query attention, byte fallback, its tokenizer settings and
rotary embedding; its class oracle's records and Llama-2-7b-hf's published values. What every
family checks: test_families.py (and test_oracles.py: untrained copies fail every bound)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from families_helpers import (
    ROOT,
    check_names,
    edit_json,
    edit_weights,
    fails,
    plant_hf_snapshot,
    rebuild,
    run,
    skipped_quickly,
    tiny_dir,
)

from hfmatrix import golden, likelihood

FAMILY = "llama"
HUB_ID = "meta-llama/Llama-2-13b-hf"  # no remote code in overrides.json, unlike Llama-2-7b-hf
PUBLISHED_ID = "meta-llama/Llama-2-7b-hf"  # run here without its overrides.json entry

pytestmark = pytest.mark.usefixtures("isolated")


def test_tiny_config_uses_grouped_query_attention(family, tiny):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny)
    assert config.num_key_value_heads == 2 < config.num_attention_heads == 4


def test_the_changed_embedding_row_is_unused(family):
    """test_families.py changes the row of "▁castle": it must reach no output."""
    row = family.VOCAB["▁castle"]  # in neither the prompt nor the continuation
    tiny = golden.read(ROOT, "llama")["tiny-llama"]
    assert row not in tiny["input_ids"] + tiny["greedy_new_ids"]


def test_changing_the_predicted_tokens_output_row_changes_the_generation(
    family, tiny_copy, hub_record
):
    """The golden ids catch it; the self-consistency (hub-tier) checks still hold."""

    def zero_row(tensors):
        tensors["lm_head.weight"][golden.read(ROOT, "llama")["tiny-llama"]["greedy_new_ids"][0]] = 0

    edit_weights(tiny_copy, zero_row)
    failed = fails(
        family,
        "pipeline.generated_ids",
        "pipeline.generated_text",
        "from_pretrained.greedy_new_ids",
        "from_pretrained.weights_sha256",
    )
    hub_checks = check_names(hub_record(family, HUB_ID))
    assert hub_checks and not hub_checks & failed


@pytest.mark.parametrize(
    ("token", "other", "expected_failure"),
    [
        ("▁king", "▁queen", "from_pretrained.input_ids"),  # a word of the prompt
        ("▁world", "▁castle", "pipeline.generated_text"),  # a word the model generates
    ],
)
def test_changing_one_vocabulary_token_fails(family, tiny_copy, token, other, expected_failure):
    def swap(data):
        vocab = data["model"]["vocab"]
        vocab[token], vocab[other] = vocab[other], vocab[token]

    edit_json(tiny_copy / "tokenizer.json", swap)
    fails(family, expected_failure, "from_pretrained.vocab_sha256")


@pytest.mark.parametrize(
    ("file", "change"),
    [
        ("tokenizer.json", lambda data: data.update(post_processor=None)),  # no <s> added
        ("tokenizer_config.json", lambda data: data.update(add_prefix_space=False)),
    ],
    ids=["no-bos", "no-prefix-space"],
)
def test_changing_a_tokenizer_setting_fails(family, tiny_copy, file, change):
    edit_json(tiny_copy / file, change)
    fails(family, "from_pretrained.input_ids", "pipeline.generated_ids")


def test_changing_rope_theta_fails(family, tiny_copy):
    """A change in the model's computation (here its rotary embedding) moves the goldens."""
    edit_json(
        tiny_copy / "config.json", lambda data: data["rope_parameters"].update(rope_theta=500000.0)
    )
    failed = fails(family, "from_pretrained.logits_slice", "from_pretrained.logits_stats")
    assert "from_pretrained.weights_sha256" not in failed


def test_multi_head_config_fails_the_grouped_query_check(family, tiny_copy, monkeypatch):
    monkeypatch.setitem(family.TINY_CONFIG, "num_key_value_heads", 4)
    rebuild(family, tiny_copy)  # the recipe's files, with that config
    fails(family, "from_pretrained.grouped_query_attention")


def test_hub_model_offline_is_skipped_quickly(family):
    assert "HF_HUB_OFFLINE" in skipped_quickly(family, HUB_ID)


# --- the class oracle and Llama-2-7b-hf's published values --------------------------------


@pytest.fixture
def hub_cache(isolated, monkeypatch) -> Path:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(isolated / "hf" / "hub"))
    return isolated


def planted(family, model_id: str, root: Path, change=None) -> dict:
    """The record of the tiny files (changed by ``change``) served as ``model_id`` from the HF
    cache under ``root``, with no overrides.json entry for it (Llama-2-7b-hf's asks for remote
    code, which a Llama needs not)."""
    from hfmatrix.project import Project

    files = Path(shutil.copytree(tiny_dir(family), root / "files"))
    if change is not None:
        change(files)
    plant_hf_snapshot(root / "hf" / "hub", model_id, files)
    project = Project(ROOT)
    project.overrides.pop(model_id, None)
    return run(family, model_id, project=project)


def oracle(record: dict) -> dict[str, dict]:
    return {check["name"]: check for check in record["tests"]["oracle"]["checks"]}


def test_the_oracle_records_the_nll_against_its_bound(family, tiny, hub_cache):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hfmatrix.likelihood import NLL_SOURCE, causal_nll

    record = planted(family, HUB_ID, hub_cache)
    nll = oracle(record)["english_nll"]
    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    with torch.inference_mode():
        measured = causal_nll(model, AutoTokenizer.from_pretrained(tiny))
    assert nll["value"] == pytest.approx(measured, abs=1e-5)
    assert nll["bound"] == pytest.approx(0.6 * math.log(model.config.vocab_size), abs=1e-6)
    assert nll["below"] is True and nll["source"] == NLL_SOURCE
    assert not nll["passed"] and nll["value"] > math.log(model.config.vocab_size)  # untrained
    assert "nll/token" in nll["detail"] and NLL_SOURCE in nll["detail"]
    assert f"oracle.{'english_nll'}" in record["reason"]
    fact = oracle(record)["capital_of_france"]  # a small model is not asked for the capital
    assert fact["not_applicable"] == "47,392 parameters: under 1,000,000,000, too few to know facts"
    assert "bound" not in fact


def test_a_large_enough_model_must_name_paris(family, hub_cache, monkeypatch):
    monkeypatch.setattr(likelihood, "FACT_MIN_PARAMETERS", 0)
    fact = oracle(planted(family, HUB_ID, hub_cache))["capital_of_france"]
    assert "not_applicable" not in fact and not fact["passed"]
    assert fact["detail"].startswith("'The capital of France is' -> '")
    assert "Paris" not in fact["detail"].removeprefix("'The capital of France is'")


def only_unknown_words(directory: Path) -> None:
    """A tokenizer whose vocabulary holds only <unk> <s> </s>: every word is unknown."""

    def word_level(data: dict) -> None:
        special = {token["content"]: token["id"] for token in data["added_tokens"]}
        data["model"] = {"type": "WordLevel", "vocab": special, "unk_token": "<unk>"}
        data["pre_tokenizer"] = {"type": "Whitespace"}

    edit_json(directory / "tokenizer.json", word_level)
    edit_json(
        directory / "tokenizer_config.json",
        lambda data: data.update(tokenizer_class="PreTrainedTokenizerFast"),
    )


def test_a_vocabulary_without_english_makes_the_nll_not_applicable(family, hub_cache):
    nll = oracle(planted(family, "someone/no-english", hub_cache, only_unknown_words))
    reason = nll["english_nll"]["not_applicable"]
    assert reason.startswith("not an English vocabulary: 100% of the English passages' tokens")
    assert "'<unk>'" in reason and "bound" not in nll["english_nll"]


def test_published_values_are_llama_2_7bs(family):
    published = family.TestLlamaModels.published
    assert set(published) == {PUBLISHED_ID}
    values = published[PUBLISHED_ID]
    assert "tests/models/llama/test_modeling_llama.py" in values.source
    assert values.values["text_start"] == values.values["prompt"] + "1) the speed of light is"


def test_the_tiny_checkpoint_as_llama_2_7b_fails_the_oracle_and_the_published_values(
    family, hub_cache
):
    record = planted(family, PUBLISHED_ID, hub_cache)
    assert record["status"] == "failed"
    assert not oracle(record)["english_nll"]["passed"]
    published = record["tests"]["published"]
    source = family.LLAMA2_PUBLISHED.source
    assert published["status"] == "failed" and published["source"] == source
    [check] = published["checks"]
    assert check["name"] == "greedy_text_start" and not check["passed"]
    assert check["source"] == source
    assert check["detail"].startswith("greedy text 'Simply put, the theory of relativity")
    assert "published.greedy_text_start" in record["reason"]


def test_a_model_that_begins_the_published_text_passes_it(family, tiny, hub_cache, monkeypatch):
    """The comparison holds no surprise of its own: the start of the tiny model's own greedy
    text (of the published prompt, decoded whole) passes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hfmatrix.oracle import Published

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    ids = tokenizer(family.LLAMA2_PROMPT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        output = model.generate(ids, do_sample=False, max_new_tokens=3, min_new_tokens=3)
    text = tokenizer.decode(output[0], skip_special_tokens=True)
    assert len(text) > len(family.LLAMA2_PROMPT)
    own = Published("the tiny model's own text", {"prompt": family.LLAMA2_PROMPT,
                                                  "text_start": text})  # fmt: skip
    monkeypatch.setattr(family.TestLlamaModels, "published", {PUBLISHED_ID: own})
    published = planted(family, PUBLISHED_ID, hub_cache)["tests"]["published"]
    assert published["status"] == "passed", published
