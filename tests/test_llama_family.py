"""The llama family: grouped-query attention, byte fallback, its tokenizer settings and
rotary embedding. What every family checks: test_families.py."""

from __future__ import annotations

import pytest
from families_helpers import (
    check_names,
    edit_json,
    edit_weights,
    fails,
    rebuild,
    skipped_quickly,
)

FAMILY = "llama"
HUB_ID = "meta-llama/Llama-2-13b-hf"  # no remote code in overrides.json, unlike Llama-2-7b-hf

pytestmark = pytest.mark.usefixtures("isolated")


def test_tiny_config_uses_grouped_query_attention(family, tiny):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny)
    assert config.num_key_value_heads == 2 < config.num_attention_heads == 4


def test_the_changed_embedding_row_is_unused(family):
    """test_families.py changes the row of "▁castle": it must reach no output."""
    row = family.VOCAB["▁castle"]  # in neither the prompt nor the continuation
    assert row not in family.GOLDEN_INPUT_IDS + family.GOLDEN_NEW_IDS


def test_changing_the_predicted_tokens_output_row_changes_the_generation(
    family, tiny_copy, hub_record
):
    """The golden ids catch it; the self-consistency (hub-tier) checks still hold."""

    def zero_row(tensors):
        tensors["lm_head.weight"][family.GOLDEN_NEW_IDS[0]] = 0.0

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
