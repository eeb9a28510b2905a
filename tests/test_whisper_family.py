"""The whisper family: the order of its checks, its tokenizer and feature extractor. What
every family checks: test_families.py."""

from __future__ import annotations

import pytest
from families_helpers import edit_json, fails, run

FAMILY = "whisper"

pytestmark = pytest.mark.usefixtures("isolated")


def test_checks_come_in_order(family, tiny_record, hub_record):
    def names(record: dict, test: str) -> list[str]:
        return [check["name"] for check in record["tests"][test]["checks"]]

    tiny = tiny_record(family)
    assert names(tiny, "pipeline") == [
        "pipeline_decodes_as_whisper",
        "pipeline_text_matches_generate",
        "pipeline_text",
    ]
    hub = hub_record(family, "openai/whisper-tiny")  # the tiny files in the HF cache
    assert names(hub, "pipeline") == [
        "pipeline_decodes_as_whisper",
        "pipeline_text_matches_generate",
    ]
    assert names(hub, "from_pretrained") == [
        "weights_complete", "tokenizer_complete", "finite", "features_shape", "logits_shape",
        "greedy_length",
        "first_greedy_token_is_logits_argmax",  # no round trip on the hub tier
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("first", "second", "expected_failures"),
    [
        ("c", "C", {"pipeline.pipeline_text", "from_pretrained.greedy_transcript"}),  # generated
        ("Ġlow", "Ġhigh", {"from_pretrained.text_ids"}),  # words of TEXT
    ],
)
def test_swapping_two_vocabulary_tokens_fails(family, tiny_copy, first, second,
                                              expected_failures):  # fmt: skip
    def swap(data):
        vocab = data["model"]["vocab"]
        vocab[first], vocab[second] = vocab[second], vocab[first]

    edit_json(tiny_copy / "tokenizer.json", swap)
    failed = fails(family, *expected_failures, "from_pretrained.vocab_sha256")
    # the model's own outputs are untouched: only what the tokenizer makes of them changed
    assert not {"from_pretrained.logits_slice", "from_pretrained.greedy_ids"} & failed


def set_feature_extractor(directory, key: str, value) -> None:
    edit_json(directory / "preprocessor_config.json", lambda data: data.update({key: value}))


def test_changing_the_feature_extractor_window_fails(family, tiny_copy):
    set_feature_extractor(tiny_copy, "n_fft", 512)
    fails(
        family,
        "from_pretrained.feature_extractor_settings",
        "from_pretrained.features_stats",
        "from_pretrained.features_slice",
        "from_pretrained.logits_slice",
    )


def test_changing_the_feature_extractor_sampling_rate_fails(family, tiny_copy):
    set_feature_extractor(tiny_copy, "sampling_rate", 8000)
    record = run(family)
    assert record["status"] in {"failed", "error"}
    # the 16 kHz sweep no longer matches what the extractor expects: the direct path refuses it
    assert record["tests"]["from_pretrained"]["status"] == "error"
    assert "sampling rate of 8000" in record["tests"]["from_pretrained"]["error"]
    assert record["tests"]["pipeline"]["status"] in {"failed", "error"}


# --- the class oracle: English speech, transcribed within a word error rate --------------


@pytest.mark.parametrize(
    ("hypothesis", "expected"),
    [
        ("We walked to the park.", 0.0),
        ("  we WALKED to the park ", 0.0),  # case and punctuation do not count
        ("we walked to a park", 0.2),  # one substitution in five words
        ("we walked to park", 0.2),  # one deletion
        ("oh we walked to the big park", 0.4),  # two insertions
        ("", 1.0),  # nothing heard: every word missed
        ("...", 1.0),
        ("the the the the the the the the the the the", 2.0),  # worse than silence
    ],
)
def test_word_error_rate(family, hypothesis, expected):
    assert family.word_error_rate("We walked to the park.", hypothesis) == pytest.approx(expected)


def test_normalise_keeps_words_only(family):
    assert family.normalise("Then it began to rain, so we went home.") == (
        "then it began to rain so we went home"
    )
    assert family.normalise("It's a cat_like, well-known tune!") == "its a catlike wellknown tune"


def test_the_speech_ships_with_its_text():
    from hfmatrix import inputs

    audio, text = inputs.speech()
    assert audio.dtype.name == "float32" and audio.ndim == 1
    assert 5 < len(audio) / inputs.SPEECH_RATE < 10  # seconds, inside Whisper's 30 s window
    assert 0.3 < abs(audio).max() < 1.0  # spoken at a normal level, not clipped
    assert len(text.split()) == 22 and not any(c.isdigit() for c in text)
    assert (inputs.DATA / "speech.wav").stat().st_size < 300_000


def test_the_oracle_records_the_transcript_against_its_bound(family, hub_record):
    record = hub_record(family, "openai/whisper-tiny")  # the untrained tiny files
    oracle = record["tests"]["oracle"]
    [check] = oracle["checks"]
    assert check["name"] == "english_transcript_wer" and not check["passed"]
    assert check["value"] >= 0.9  # the untrained model hears none of the words
    assert check["bound"] == family.WER_BOUND.limit == 0.5 and check["below"] is True
    assert check["source"] == family.WER_BOUND.source and "whisper-tiny" in check["source"]
    assert check["detail"].startswith("transcript '")  # what the model said, for the reader
    assert "oracle.english_transcript_wer" in record["reason"]
    assert "published" not in record["tests"]  # none reproducible offline (see the README)


def loaded_tiny(family, tiny):
    from transformers import AutoProcessor

    model = family.WhisperForConditionalGeneration.from_pretrained(tiny).eval()
    return model, AutoProcessor.from_pretrained(tiny)


def oracle(family, model, processor) -> list:
    import torch

    with torch.inference_mode():
        return family.TestWhisperModels("tiny").oracle_checks(model, processor)


def test_a_model_that_cannot_be_told_english_is_not_applicable(family, tiny):
    model, processor = loaded_tiny(family, tiny)
    del model.generation_config.lang_to_id["<|en|>"]  # e.g. fine-tuned for other languages
    [check] = oracle(family, model, processor)
    assert check.name == "english_transcript_wer" and check.passed
    assert "no <|en|> in the generation config's lang_to_id" in check.not_applicable
    assert check.value is None


def test_an_english_only_model_is_judged_without_a_language_token(family, tiny):
    """English-only checkpoints (whisper-*.en) take no language or task: the oracle applies."""
    model, processor = loaded_tiny(family, tiny)
    config = model.generation_config
    config.is_multilingual = False
    del config.lang_to_id, config.task_to_id
    [check] = oracle(family, model, processor)
    assert check.not_applicable is None and check.value >= 0.9 and not check.passed


def test_a_right_transcript_passes(family, tiny, monkeypatch):
    """The passing side of the bound: a transcript equal to the text, but for its case and
    punctuation, scores 0."""
    from hfmatrix.inputs import speech

    model, processor = loaded_tiny(family, tiny)
    spoken = speech()[1].upper().replace(",", "")
    monkeypatch.setattr(family.TestWhisperModels, "transcribe", lambda *args: spoken)
    [check] = oracle(family, model, processor)
    assert check.passed and check.value == 0.0
