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
