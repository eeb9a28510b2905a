"""The t5 family on its tiny checkpoint: golden values hold, and break when they should."""

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

HUB_TIER_CHECKS = {
    "pipeline.starts_with_decoder_start",
    "pipeline.pipeline_ids_match_direct_greedy",
    "from_pretrained.weights_complete",
    "from_pretrained.finite",
    "from_pretrained.logits_shape",
    "from_pretrained.prompt_ends_with_eos",
    "from_pretrained.new_token_count",
    "from_pretrained.greedy_ids_are_argmax_without_cache",
    "from_pretrained.decode_round_trip",
    "from_pretrained.save_load_round_trip",
}
GOLDEN_CHECKS = {
    "pipeline.generated_ids",
    "pipeline.generated_text",
    "from_pretrained.weights_sha256",
    "from_pretrained.vocab_sha256",
    "from_pretrained.input_ids",
    "from_pretrained.sentinel_input_ids",
    "from_pretrained.normalised_input_ids",
    "from_pretrained.logits_slice",
    "from_pretrained.logits_stats",
    "from_pretrained.greedy_ids",
}


@pytest.fixture
def t5_family():
    """The t5 family module, imported as pytest imports it."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "families"))
    try:
        import test_hf_t5
    finally:
        sys.path.remove(str(ROOT / "families"))
    return test_hf_t5


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The tiny checkpoint, built once for this module (cache layout, .complete included)."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "families"))
    try:
        import test_hf_t5
    finally:
        sys.path.remove(str(ROOT / "families"))
    cache = tmp_path_factory.mktemp("t5-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HFMATRIX_CACHE", str(cache))
        test = test_hf_t5.TestT5Models("tiny")
        return checkpoints.tiny_checkpoint(test.tiny_name, test.build_tiny)


@pytest.fixture(autouse=True)
def tiny_copy(built, isolated) -> Path:
    """A private copy of the built checkpoint in this test's cache, free to edit."""
    target = isolated / "cache" / "tiny" / built.name
    shutil.copytree(built, target)
    return target


def run(family, model_id: str = "tiny", hardware: str = "cpu") -> dict:
    return family.TestT5Models(model_id).run_tests(hardware)


def check_names(record: dict, passed: bool | None = None) -> set[str]:
    return {
        f"{test}.{check['name']}"
        for test, result in record["tests"].items()
        for check in result.get("checks", [])
        if passed is None or check["passed"] == passed
    }


def failed_checks(record: dict) -> set[str]:
    return check_names(record, passed=False)


def edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_tiny_checkpoint_passes_with_numbers(t5_family, tiny_copy):
    from transformers.pipelines import SUPPORTED_TASKS

    record = run(t5_family)
    assert record["status"] == "passed", record["reason"]
    assert record["tier"] == "tiny" and record["model_id"] == "tiny-t5"
    assert record["source"]["location"] == str(tiny_copy)
    assert record["loaded"]["class"] == "T5ForConditionalGeneration"
    # transformers 4: text2text-generation; 5 removed it and the run says text-generation
    has_seq2seq_task = "text2text-generation" in SUPPORTED_TASKS
    expected_task = "text2text-generation" if has_seq2seq_task else "text-generation"
    assert record["pipeline_task"] == expected_task
    text_check = {"pipeline.text_is_greedy_ids_decoded"} if has_seq2seq_task else set()
    assert check_names(record) == HUB_TIER_CHECKS | GOLDEN_CHECKS | text_check
    comparisons = record["numerics"]["comparisons"]
    assert set(comparisons) == {
        "logits_slice",
        "logits_stats",
        "greedy_ids_are_argmax_without_cache",
        "save_load_round_trip",
    }
    assert comparisons["save_load_round_trip"]["atol"] == 1e-5
    assert record["numerics"]["max_abs_diff"] <= record["numerics"]["atol"] == 1e-4
    assert len(t5_family.GOLDEN_NEW_IDS) == t5_family.NEW_TOKENS >= 10


def test_tokenizer_is_t5s_and_golden_text_is_the_golden_ids_decoded(t5_family, tiny_copy):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_copy)
    assert type(tokenizer).__name__ in {"T5Tokenizer", "T5TokenizerFast"}
    assert [tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id] == [0, 1, 2]
    vocab = tokenizer.get_vocab()
    assert len(vocab) == len(t5_family.PIECES) == t5_family.TINY_CONFIG["vocab_size"]
    assert vocab["<extra_id_0>"] == len(vocab) - 1  # sentinels last, in reverse order
    assert tokenizer.eos_token_id not in t5_family.GOLDEN_NEW_IDS  # EOS was suppressed
    assert tokenizer.unk_token_id not in t5_family.GOLDEN_INPUT_IDS + t5_family.GOLDEN_WIDE_IDS
    text = tokenizer.decode(t5_family.GOLDEN_NEW_IDS, skip_special_tokens=True)
    assert text == t5_family.GOLDEN_TEXT


def test_text_generation_text_is_not_seq2seq_text(t5_family, tiny_copy):
    """Why the run decodes the text-generation pipeline's ids itself: its text drops as many
    generated tokens as the prompt has. If transformers fixes this, read its text instead."""
    from transformers import pipeline

    test = t5_family.TestT5Models("tiny")
    if test.pipeline_task() != "text-generation":
        pytest.skip("this transformers has text2text-generation")
    with t5_family.no_causal_lm_complaint():
        pipe = pipeline("text-generation", model=str(tiny_copy))
    generate = t5_family.fixed_length_greedy(t5_family.NEW_TOKENS)
    text = pipe(t5_family.PROMPT, return_full_text=False, **generate)[0]["generated_text"]
    cut = t5_family.GOLDEN_NEW_IDS[len(t5_family.GOLDEN_INPUT_IDS) - 1 :]  # +1: decoder start
    assert text == pipe.tokenizer.decode(cut, skip_special_tokens=True) != t5_family.GOLDEN_TEXT


def test_rebuilding_the_tiny_checkpoint_gives_identical_bytes(t5_family, built, tmp_path,
                                                                monkeypatch):  # fmt: skip
    monkeypatch.setenv("HFMATRIX_CACHE", str(tmp_path / "rebuilt"))
    path = checkpoints.tiny_checkpoint("t5-v1", t5_family.TestT5Models("tiny").build_tiny)
    assert path != built
    files = checkpoints.describe(path)["files"]
    assert files == checkpoints.describe(built)["files"]
    assert {"model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(files)


@pytest.mark.parametrize(
    "parameter",
    [
        "decoder.block.1.layer.2.DenseReluDense.wo.weight",
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
        "shared.weight",  # the row of "Katze": in no input, only in the tied LM head's output
    ],
)
def test_changing_one_weight_fails(t5_family, tiny_copy, parameter):
    import torch
    from safetensors.torch import load_file, save_file

    weights = tiny_copy / "model.safetensors"
    tensors = load_file(weights)
    katze = [piece for piece, _ in t5_family.PIECES].index("▁Katze")
    index = (katze, 0) if parameter == "shared.weight" else 0
    with torch.no_grad():
        tensors[parameter][index] += 0.05
    save_file(tensors, weights, metadata={"format": "pt"})
    record = run(t5_family)
    assert record["status"] == "failed"
    assert "from_pretrained.weights_sha256" in failed_checks(record)
    if parameter != "shared.weight":  # these reach every logit on the prompt as well
        assert {"from_pretrained.logits_slice", "from_pretrained.logits_stats"} <= failed_checks(
            record
        )
    assert not failed_checks(record) & HUB_TIER_CHECKS  # still self-consistent


def test_changing_the_model_code_fails(t5_family, monkeypatch):
    """A sign error in T5's relative-position bucketing, on the same weights."""
    from transformers.models.t5.modeling_t5 import T5Attention

    bucket = T5Attention._relative_position_bucket
    monkeypatch.setattr(
        T5Attention,
        "_relative_position_bucket",
        staticmethod(lambda position, *args, **kwargs: bucket(-position, *args, **kwargs)),
    )
    record = run(t5_family)
    assert record["status"] == "failed"
    assert {
        "pipeline.generated_ids",
        "from_pretrained.logits_slice",
        "from_pretrained.logits_stats",
        "from_pretrained.greedy_ids",
    } <= failed_checks(record)
    assert "from_pretrained.weights_sha256" not in failed_checks(record)


@pytest.mark.parametrize(
    ("piece", "replacement", "expected_failure"),
    [
        ("▁house", "▁home", "from_pretrained.input_ids"),  # a word of the prompt
        ("▁river", "▁ocean", "pipeline.generated_text"),  # a word the model generates
    ],
)
def test_changing_one_vocabulary_piece_fails(t5_family, tiny_copy, piece, replacement,
                                             expected_failure):  # fmt: skip
    def rename(data):
        vocab = data["model"]["vocab"]  # Unigram: [piece, score] pairs in id order
        index = [entry[0] for entry in vocab].index(piece)
        vocab[index][0] = replacement

    edit_json(tiny_copy / "tokenizer.json", rename)
    record = run(t5_family)
    assert record["status"] == "failed"
    assert {expected_failure, "from_pretrained.vocab_sha256"} <= failed_checks(record)


def test_dropping_the_normaliser_fails(t5_family, tiny_copy):
    """Without SentencePiece's NFKC map, full-width letters are unknown tokens; the
    vocabulary, and the ASCII prompt's ids, are as before."""
    edit_json(tiny_copy / "tokenizer.json", lambda data: data.update(normalizer=None))
    record = run(t5_family)
    assert record["status"] == "failed"
    assert failed_checks(record) == {"from_pretrained.normalised_input_ids"}


def test_hub_model_offline_is_skipped_quickly(t5_family):
    start = time.perf_counter()
    record = run(t5_family, "t5-small")
    assert record["status"] == "skipped"
    assert "HF_HUB_OFFLINE" in record["reason"]
    assert time.perf_counter() - start < 10


def test_hub_model_loads_from_the_hf_cache_offline(t5_family, tiny_copy, isolated, monkeypatch):
    """A cached snapshot serves a Hub id offline (here holding the tiny files): the hub-tier
    self-consistency checks run, and pass, with no golden values."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(isolated / "hf" / "hub"))
    repo = isolated / "hf" / "hub" / "models--t5-small"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_copy, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    record = run(t5_family, "t5-small")
    assert record["tier"] == "hub" and record["source"]["origin"] == "HF cache"
    assert record["status"] == "passed", record["reason"]
    text_check = {"pipeline.text_is_greedy_ids_decoded"}
    assert check_names(record) - text_check == HUB_TIER_CHECKS
    assert record["numerics"]["reference"] == "self-consistency"
