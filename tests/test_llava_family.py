"""The llava family: its recipe's image tokens, tokenizer, image processor and projector.
What every family checks: test_families.py."""

from __future__ import annotations

import pytest
from families_helpers import edit_json, edit_weights, failed_checks, fails, run

FAMILY = "llava"

pytestmark = pytest.mark.usefixtures("isolated")


def test_tiny_recipe_is_consistent(family, tiny):
    """The golden ids hold 16 image placeholders, as many as the tiny tower has patches, and
    the prompt encodes without unknown tokens."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny)
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert family.GOLDEN_INPUT_IDS.count(image_id) == family.IMAGE_TOKENS == 16
    assert processor.tokenizer.unk_token_id not in family.GOLDEN_INPUT_IDS
    ids = family.GOLDEN_INPUT_IDS + family.GOLDEN_NEW_IDS
    assert processor.decode(ids, skip_special_tokens=True).endswith(family.GOLDEN_TEXT)


@pytest.mark.parametrize(
    ("token", "replacement", "expected_failure"),
    [
        ("L", "#", "pipeline.generated_text"),  # renamed: generated, in no merge
        ("▁picture", "▁image", "from_pretrained.input_ids"),  # ids swapped: a prompt word
    ],
)
def test_changing_the_vocabulary_fails(family, tiny_copy, token, replacement, expected_failure):
    def edit(data):
        vocab = data["model"]["vocab"]
        if replacement in vocab:
            vocab[token], vocab[replacement] = vocab[replacement], vocab[token]
        else:
            vocab[replacement] = vocab.pop(token)

    edit_json(tiny_copy / "tokenizer.json", edit)
    fails(family, expected_failure, "from_pretrained.vocab_sha256")


@pytest.mark.parametrize("setting", ["image_mean", "image_std"])
def test_changing_the_image_processor_fails(family, tiny_copy, setting):
    def edit(data):
        data[setting][1] += 0.05  # the green channel only

    edit_json(tiny_copy / "preprocessor_config.json", edit)
    fails(family, "from_pretrained.pixel_values_stats", "from_pretrained.logits_slice")


def test_a_wrong_image_token_expansion_is_reported(family, tiny_copy):
    """A processor that expands <image> for another patch size: the count check says so."""
    edit_json(tiny_copy / "processor_config.json", lambda data: data.update(patch_size=16))
    record = run(family)
    assert record["status"] == "error"  # the direct model refuses the mismatched inputs
    assert failed_checks(record) == {
        "pipeline.image_tokens_match_features",
        "pipeline.image_tokens_match_vision_config",
    }
    assert "pipeline.image_tokens_match_features: got 4, expected 16" in record["reason"]
    assert "do not match" in record["tests"]["from_pretrained"]["error"]


def test_a_projector_that_ignores_the_image_fails_the_hub_check(family, tiny_copy):
    """Hub-tier checks can fail too: with a zero projector the image reaches nothing."""

    def zero_projector(tensors):
        for name in (
            "multi_modal_projector.linear_2.weight",
            "multi_modal_projector.linear_2.bias",
        ):
            tensors[name].zero_()

    edit_weights(tiny_copy, zero_projector)
    assert "from_pretrained.image_reaches_logits" in failed_checks(run(family))
