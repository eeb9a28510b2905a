"""The t5 family: its pipeline task by transformers version, SentencePiece-style Unigram
tokenizer, normaliser and relative-position code. What every family checks:
test_families.py."""

from __future__ import annotations

import pytest
from families_helpers import check_names, edit_json, fails

FAMILY = "t5"

pytestmark = pytest.mark.usefixtures("isolated")


def test_pipeline_task_follows_the_transformers_version(family, tiny_record):
    from transformers.pipelines import SUPPORTED_TASKS

    record = tiny_record(family)
    # transformers 4: text2text-generation; 5 removed it and the run says text-generation
    has_seq2seq_task = "text2text-generation" in SUPPORTED_TASKS
    expected_task = "text2text-generation" if has_seq2seq_task else "text-generation"
    assert record["pipeline_task"] == expected_task
    assert ("pipeline.text_is_greedy_ids_decoded" in check_names(record)) == has_seq2seq_task


def test_tokenizer_is_t5s_and_golden_text_is_the_golden_ids_decoded(family, tiny):
    from transformers import AutoTokenizer

    assert len(family.GOLDEN_NEW_IDS) == family.NEW_TOKENS >= 10
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    assert type(tokenizer).__name__ in {"T5Tokenizer", "T5TokenizerFast"}
    assert [tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id] == [0, 1, 2]
    vocab = tokenizer.get_vocab()
    assert len(vocab) == len(family.PIECES) == family.TINY_CONFIG["vocab_size"]
    assert vocab["<extra_id_0>"] == len(vocab) - 1  # sentinels last, in reverse order
    assert tokenizer.eos_token_id not in family.GOLDEN_NEW_IDS  # EOS was suppressed
    assert tokenizer.unk_token_id not in family.GOLDEN_INPUT_IDS + family.GOLDEN_WIDE_IDS
    text = tokenizer.decode(family.GOLDEN_NEW_IDS, skip_special_tokens=True)
    assert text == family.GOLDEN_TEXT


def test_text_generation_text_is_not_seq2seq_text(family, tiny):
    """Why the run decodes the text-generation pipeline's ids itself: its text drops as many
    generated tokens as the prompt has. If transformers fixes this, read its text instead."""
    from transformers import pipeline

    test = family.TestT5Models("tiny")
    if test.pipeline_task() != "text-generation":
        pytest.skip("this transformers has text2text-generation")
    with family.no_causal_lm_complaint():
        pipe = pipeline("text-generation", model=str(tiny))
    generate = family.fixed_length_greedy(family.NEW_TOKENS)
    text = pipe(family.PROMPT, return_full_text=False, **generate)[0]["generated_text"]
    cut = family.GOLDEN_NEW_IDS[len(family.GOLDEN_INPUT_IDS) - 1 :]  # +1: decoder start
    assert text == pipe.tokenizer.decode(cut, skip_special_tokens=True) != family.GOLDEN_TEXT


def test_changing_the_model_code_fails(family, tiny_copy, monkeypatch):
    """A sign error in T5's relative-position bucketing, on the same weights."""
    from transformers.models.t5.modeling_t5 import T5Attention

    bucket = T5Attention._relative_position_bucket
    monkeypatch.setattr(
        T5Attention,
        "_relative_position_bucket",
        staticmethod(lambda position, *args, **kwargs: bucket(-position, *args, **kwargs)),
    )
    failed = fails(
        family,
        "pipeline.generated_ids",
        "from_pretrained.logits_slice",
        "from_pretrained.logits_stats",
        "from_pretrained.greedy_ids",
    )
    assert "from_pretrained.weights_sha256" not in failed


@pytest.mark.parametrize(
    ("piece", "replacement", "expected_failure"),
    [
        ("▁house", "▁home", "from_pretrained.input_ids"),  # a word of the prompt
        ("▁river", "▁ocean", "pipeline.generated_text"),  # a word the model generates
    ],
)
def test_changing_one_vocabulary_piece_fails(family, tiny_copy, piece, replacement,
                                             expected_failure):  # fmt: skip
    def rename(data):
        vocab = data["model"]["vocab"]  # Unigram: [piece, score] pairs in id order
        index = [entry[0] for entry in vocab].index(piece)
        vocab[index][0] = replacement

    edit_json(tiny_copy / "tokenizer.json", rename)
    fails(family, expected_failure, "from_pretrained.vocab_sha256")


def test_dropping_the_normaliser_fails(family, tiny_copy):
    """Without SentencePiece's NFKC map, full-width letters are unknown tokens; the
    vocabulary, and the ASCII prompt's ids, are as before."""
    edit_json(tiny_copy / "tokenizer.json", lambda data: data.update(normalizer=None))
    assert fails(family) == {"from_pretrained.normalised_input_ids"}
