"""The llava family: its recipe's image tokens, tokenizer, image processor and projector.
What every family checks: test_families.py."""

from __future__ import annotations

import pytest
from families_helpers import ROOT, edit_json, edit_weights, failed_checks, fails, run

from hfmatrix import golden

FAMILY = "llava"

pytestmark = pytest.mark.usefixtures("isolated")


def test_tiny_recipe_is_consistent(family, tiny):
    """The golden ids (families/golden/llava.json) hold 16 image placeholders, as many as the
    tiny tower has patches, the prompt encodes without unknown tokens, and the golden text is
    the golden new ids decoded after it."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny)
    stored = golden.read(ROOT, "llava")["tiny-llava"]
    input_ids, new_ids = stored["input_ids"], stored["greedy_new_ids"]
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert input_ids.count(image_id) == family.IMAGE_TOKENS == 16
    assert processor.tokenizer.unk_token_id not in input_ids
    decoded = processor.decode(input_ids + new_ids, skip_special_tokens=True)
    assert decoded.endswith(stored["generated_text"])


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


# --- the class oracle: the cat photograph named, a true description of it likely ----------


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Cat", True),
        ("The animal in this picture is a tabby.", True),
        ("CATS!", True),
        ("a kitten's face", True),
        ("Dog", False),
        ("category", False),  # a word, not a part of one
        ("concatenate", False),
        ("", False),
    ],
)
def test_names_a_cat(family, text, named):
    assert family.names_a_cat(text) is named


def test_the_oracle_records_the_answer_and_the_likelihood(family, hub_record):
    import math

    from hfmatrix.likelihood import NLL_SOURCE

    record = hub_record(family, "llava-hf/llava-1.5-7b-hf")  # the untrained tiny files
    named, nll = record["tests"]["oracle"]["checks"]
    assert named["name"] == "names_the_cat" and not named["passed"]
    assert named["detail"].startswith("answer '") and "does not name a cat" in named["detail"]
    assert nll["name"] == "description_nll" and not nll["passed"]
    vocab_size = len(family.bpe_vocabulary()[0])
    assert nll["bound"] == pytest.approx(0.6 * math.log(vocab_size), abs=1e-6)
    assert nll["value"] > math.log(vocab_size) > nll["bound"]  # worse than uniform guessing
    assert nll["below"] is True and nll["source"] == NLL_SOURCE
    assert {"oracle.names_the_cat", "oracle.description_nll"} <= failed_checks(record)


def loaded(family, directory):
    from transformers import AutoProcessor

    model = family.LlavaForConditionalGeneration.from_pretrained(directory).eval()
    return model, AutoProcessor.from_pretrained(directory)


@pytest.mark.parametrize("change", ["shuffle_weights", "permute_vocabulary", "renormalise"])
def test_an_untrained_copy_does_not_name_the_cat(family, tiny_copy, change):
    """Beside the bounded likelihood (tests/test_oracles.py): no untrained copy says "cat" by
    chance, from a vocabulary of characters and a few words."""
    import families_helpers
    import torch

    getattr(families_helpers, change)(tiny_copy)
    model, processor = loaded(family, tiny_copy)
    with torch.inference_mode():
        named, nll = family.TestLlavaModels("tiny").oracle_checks(model, processor)
    assert not named.passed and not nll.passed, (named.detail, nll.detail)


def test_the_likelihood_scores_the_answer_tokens(family, tiny):
    """Scored at the right positions, the model's own greedy answer is far likelier than the
    description (off by one position, both would score like noise)."""
    import torch

    model, processor = loaded(family, tiny)
    test = family.TestLlavaModels("tiny")
    with torch.inference_mode():
        own = test.answer(model, processor, family.DESCRIBE)
        assert test.answer_nll(model, processor, family.DESCRIBE, own) < (
            test.answer_nll(model, processor, family.DESCRIBE, family.DESCRIPTION) - 1.0
        )


def test_the_question_is_asked_in_the_checkpoints_chat_template(family, tiny_copy):
    """A processor with a chat template (llava-hf's checkpoints have one) gets the question in
    it; one without, in llava-1.5's prompt format."""
    from transformers import AutoProcessor

    test = family.TestLlavaModels("tiny")
    plain = AutoProcessor.from_pretrained(tiny_copy)
    assert test.oracle_prompt(plain, "Which?") == "USER: <image>\nWhich? ASSISTANT:"
    template = (
        "{% for message in messages %}<<{{ message['role'] }}>>{% for part in message['content']"
        " %}{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}{% endif %}"
        "{% endfor %}{% endfor %}{% if add_generation_prompt %}<<assistant>>{% endif %}"
    )
    plain.chat_template = template
    plain.save_pretrained(tiny_copy)
    templated = AutoProcessor.from_pretrained(tiny_copy)
    assert test.oracle_prompt(templated, "Which?") == "<<user>><image>Which?<<assistant>>"
