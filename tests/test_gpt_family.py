"""The gpt family: its golden generation, byte-level BPE tokenizer and model-code
perturbations. What every family checks: test_families.py."""

from __future__ import annotations

import pytest
from families_helpers import edit_json, fails

FAMILY = "gpt"

pytestmark = pytest.mark.usefixtures("isolated")


def test_golden_text_is_the_golden_ids_decoded(family, tiny):
    from transformers import AutoTokenizer

    assert len(family.GOLDEN_NEW_IDS) == family.NEW_TOKENS >= 10
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    assert type(tokenizer).__name__ == "GPT2Tokenizer"
    assert tokenizer.eos_token == family.EOS and tokenizer.eos_token_id == len(family.VOCAB) - 1
    assert tokenizer.eos_token_id not in family.GOLDEN_NEW_IDS  # EOS was suppressed
    text = tokenizer.decode(family.GOLDEN_NEW_IDS, skip_special_tokens=True)
    assert text == family.GOLDEN_TEXT


def test_changing_the_model_code_fails(family, tiny_copy):
    """Another activation in config.json runs other code on the same weights."""
    edit_json(tiny_copy / "config.json", lambda c: c.update(activation_function="relu"))
    failed = fails(family, "from_pretrained.logits_slice", "from_pretrained.logits_stats")
    assert "from_pretrained.weights_sha256" not in failed


@pytest.mark.parametrize(
    ("token", "expected_failure"),
    [
        (",", "from_pretrained.input_ids"),  # a token of the prompt
        ("/", "pipeline.generated_text"),  # a token the model generates
    ],
)
def test_changing_one_vocabulary_token_fails(family, tiny_copy, token, expected_failure):
    def rename(data):
        vocab = data["model"]["vocab"]
        vocab["<renamed>"] = vocab.pop(token)

    edit_json(tiny_copy / "tokenizer.json", rename)
    fails(family, expected_failure, "from_pretrained.vocab_sha256")


def test_changing_the_merges_fails(family, tiny_copy):
    """Dropping the merge that makes "Ġforest" leaves the vocabulary hash as it was."""
    edit_json(
        tiny_copy / "tokenizer.json", lambda data: data["model"]["merges"].remove(["Ġfore", "st"])
    )
    failed = fails(family, "from_pretrained.input_ids")
    assert "from_pretrained.vocab_sha256" not in failed


def test_changing_the_pre_tokenizer_fails(family, tiny_copy):
    edit_json(
        tiny_copy / "tokenizer.json",
        lambda data: data["pre_tokenizer"].update(add_prefix_space=True),
    )
    edit_json(tiny_copy / "tokenizer_config.json", lambda data: data.update(add_prefix_space=True))
    fails(family, "from_pretrained.input_ids")
