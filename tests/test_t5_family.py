"""The t5 family: its pipeline task by transformers version, SentencePiece-style Unigram
tokenizer, normaliser and relative-position code; mT5's own LM head, BART's byte-level BPE.
What every family checks: test_families.py; every class's golden values: test_classes.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from families_helpers import ROOT, check_names, edit_json, fails, import_family, run, tiny_dir

from hfmatrix import checkpoints, golden
from hfmatrix.expectations import expect
from hfmatrix.generation import prompt_cut

FAMILY = "t5"
GOLDEN = golden.read(ROOT, FAMILY)  # tiny model id -> {check name: value}

pytestmark = pytest.mark.usefixtures("isolated")


def tiny_files(model_id: str) -> Path:
    return checkpoints.tiny_path(ROOT, checkpoints.tiny_name(model_id))


def test_pipeline_task_follows_the_transformers_version(family, tiny_record):
    from transformers.pipelines import SUPPORTED_TASKS

    record = tiny_record(family)
    # transformers 4: text2text-generation; 5 removed it and the run says text-generation
    has_seq2seq_task = "text2text-generation" in SUPPORTED_TASKS
    expected_task = "text2text-generation" if has_seq2seq_task else "text-generation"
    assert record["pipeline_task"] == expected_task
    assert ("pipeline.text_is_greedy_ids_decoded" in check_names(record)) == has_seq2seq_task


@pytest.mark.parametrize("model_id", ["tiny-t5", "tiny-mt5"])
def test_tokenizer_is_t5s_and_golden_text_is_the_golden_ids_decoded(family, model_id):
    from transformers import AutoTokenizer

    stored = GOLDEN[model_id]
    ids = stored["greedy_ids"]
    assert ids == stored["generated_ids"] and len(ids) == family.NEW_TOKENS >= 10
    tokenizer = AutoTokenizer.from_pretrained(tiny_files(model_id))
    assert type(tokenizer).__name__ in {"T5Tokenizer", "T5TokenizerFast"}
    assert [tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id] == [0, 1, 2]
    vocab = tokenizer.get_vocab()
    assert len(vocab) == len(family.PIECES) == family.TINY_CONFIG["vocab_size"]
    assert vocab["<extra_id_0>"] == len(vocab) - 1  # sentinels last, in reverse order
    assert tokenizer.eos_token_id not in ids  # EOS was suppressed
    assert tokenizer.unk_token_id not in stored["input_ids"] + stored["normalised_input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == stored["generated_text"]


def test_bart_tokenizer_is_byte_level_bpe_around_which_bart_puts_its_tokens(family):
    """<s> ... </s> around the prompt, each of its words after a space one token; the decoder
    starts at </s>; the golden text is the golden ids decoded; no sentinels."""
    from transformers import AutoConfig, AutoTokenizer

    stored = GOLDEN["tiny-bart"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_files("tiny-bart"))
    config = AutoConfig.from_pretrained(tiny_files("tiny-bart"))
    assert family.byte_level(tokenizer) and family.no_sentinels(tokenizer)
    assert [tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id] == [0, 1, 2]
    assert config.decoder_start_token_id == tokenizer.eos_token_id
    ids = stored["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert {"ĠEnglish", "ĠGerman", "Ġhouse", "Ġwonderful"} <= set(pieces)
    assert tokenizer.unk_token_id not in ids + stored["wide_input_ids"]
    text = tokenizer.decode(stored["greedy_ids"], skip_special_tokens=True)
    assert text == stored["generated_text"]


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("tiny-t5", {"sentinel_input_ids", "normalised_input_ids"}),
        ("tiny-mt5", {"sentinel_input_ids", "normalised_input_ids"}),
        ("tiny-bart", {"wide_input_ids", "wide_text_round_trip"}),
        ("tiny-pegasus", {"normalised_input_ids"}),  # a SentencePiece Unigram, no sentinels
    ],
)
def test_the_tokenizer_decides_its_form_checks(family, model_id, expected):
    """Sentinels where the tokenizer has them; full-width text normalised by a SentencePiece
    tokenizer, kept as its bytes (and decoded back) by a byte-level one; each holds."""
    from transformers import AutoTokenizer

    test = family.TestT5Models(model_id)
    checks = test.tokenizer_form_checks(AutoTokenizer.from_pretrained(tiny_files(model_id)))
    assert {check.name for check in checks} == expected
    assert all(check.passed for check in checks), [c.detail for c in checks if not c.passed]


def test_mt5_has_an_lm_head_of_its_own_and_shared_embeddings(family):
    """As google's mT5 checkpoints: every stack loads the head untied from the embeddings,
    which the encoder and decoder share."""
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_files("tiny-mt5"))
    assert type(model).__name__ == "MT5ForConditionalGeneration"
    assert model.config.feed_forward_proj == "gated-gelu"
    shared = model.shared.weight
    assert model.encoder.embed_tokens.weight is shared is model.decoder.embed_tokens.weight
    assert model.lm_head.weight.data_ptr() != shared.data_ptr()
    assert not (model.lm_head.weight == shared).all()


def test_the_pipeline_runs_the_encoder_decoder_class(family):
    """BART's config also maps to BartForCausalLM, which text-generation would load from the
    path (its decoder alone): the run's pipeline holds the seq2seq class on every stack."""
    from transformers import pipeline

    test = family.TestT5Models("tiny-bart")
    assert type(test.load_pipeline().model).__name__ == "BartForConditionalGeneration"
    if test.pipeline_task() == "text-generation":
        loaded = pipeline("text-generation", model=str(tiny_files("tiny-bart"))).model
        assert type(loaded).__name__ == "BartForCausalLM"


def test_text_generation_text_is_not_seq2seq_text(family, tiny):
    """Why the run decodes the text-generation pipeline's ids itself: its text drops as many
    generated tokens as the prompt has (before transformers 5.9: as many characters as the
    decoded prompt has). If transformers fixes this, read its text instead."""
    from transformers import pipeline

    stored = GOLDEN["tiny-t5"]
    test = family.TestT5Models("tiny")
    if test.pipeline_task() != "text-generation":
        pytest.skip("this transformers has text2text-generation")
    with family.no_causal_lm_complaint():
        pipe = pipeline("text-generation", model=str(tiny))

    def decode(ids: list[int]) -> str:
        return pipe.tokenizer.decode(ids, skip_special_tokens=True)

    generate = family.fixed_length_greedy(family.NEW_TOKENS)
    text = pipe(family.PROMPT, return_full_text=False, **generate)[0]["generated_text"]
    cut = stored["greedy_ids"][len(stored["input_ids"]) - 1 :]  # +1: decoder start
    whole = decode(stored["greedy_ids"])  # the decoder start is a special token
    expected = expect(decode(cut), prompt_cut(whole[len(decode(stored["input_ids"])) :]))
    assert text == expected.resolve()[0] != stored["generated_text"]


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


# --- the class oracle and the published values (hub and local models) ----------------------


def test_span_corruptions_drop_every_span_but_the_first_once_in_t5s_form():
    from hfmatrix import likelihood

    text = " ".join(f"w{i}" for i in range(20))  # spans w0-w2, w3-w5, ..., w18-w19
    pairs = likelihood.span_corruptions(text)
    assert len(pairs) == likelihood.NOISE_PERIOD - 1  # 7 spans: copies 1..6 drop one each
    assert pairs[0] == (
        "w0 w1 w2 <extra_id_0> w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19",
        "<extra_id_0> w3 w4 w5 <extra_id_1>",  # kept words follow: one more sentinel
    )
    assert pairs[-1] == (  # the last span dropped: no closing sentinel, as T5's
        "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 <extra_id_0>",
        "<extra_id_0> w18 w19",
    )
    dropped = [word for _, target in pairs for word in target.split() if word.startswith("w")]
    assert sorted(dropped, key=lambda w: int(w[1:])) == text.split()[3:]  # each once
    long_text = " ".join(f"w{i}" for i in range(30))  # 10 spans: copies 1 and 2 drop two
    source, target = likelihood.span_corruptions(long_text)[1]
    assert target == "<extra_id_0> w3 w4 w5 <extra_id_1> w24 w25 w26 <extra_id_2>"
    assert source.count("<extra_id_") == 2 and source.startswith("w0 w1 w2 <extra_id_0> w6")


def test_seq2seq_nll_is_the_models_own_loss_per_target_token(family, tiny):
    """One pair: seq2seq_nll is the mean loss T5 computes from labels; a padded batch of the
    pair twice gives the same (padding is ignored)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from hfmatrix import likelihood

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny).eval()
    pair = ("The <extra_id_0> walks in <extra_id_1> park", "<extra_id_0> cute dog <extra_id_1>")
    short = ("The dog <extra_id_0> park", "<extra_id_0> in the")
    with torch.inference_mode():
        labels = tokenizer(pair[1], return_tensors="pt")["input_ids"]
        loss = model(**tokenizer(pair[0], return_tensors="pt"), labels=labels).loss
        assert likelihood.seq2seq_nll(model, tokenizer, [pair]) == pytest.approx(float(loss))
        alone = [likelihood.seq2seq_nll(model, tokenizer, [p]) for p in (pair, short)]
        counts = [len(tokenizer(p[1])["input_ids"]) for p in (pair, short)]
        mean = sum(n * c for n, c in zip(alone, counts, strict=True)) / sum(counts)
        batched = likelihood.seq2seq_nll(model, tokenizer, [pair, short])
    assert batched == pytest.approx(mean, abs=1e-5)


def test_oracle_records_the_span_corruption_nll_against_its_bound(family, hub_record):
    """The untrained tiny files served as t5-small: the target nll fails with its value, bound
    and source; the translation does not apply (the tiny config declares no task)."""
    import math

    oracle = hub_record(family, "t5-small")["tests"]["oracle"]
    checks = {check["name"]: check for check in oracle["checks"]}
    assert set(checks) == {"span_corruption_nll", "translates_en_to_de"}
    nll = checks["span_corruption_nll"]
    vocab_size = family.TINY_CONFIG["vocab_size"]
    assert not nll["passed"] and nll["below"] is True
    assert nll["bound"] == pytest.approx(0.6 * math.log(vocab_size), abs=1e-6)
    assert nll["value"] > math.log(vocab_size)  # no better than uniform guessing
    assert nll["source"] == family.SPAN_NLL_SOURCE
    translation = checks["translates_en_to_de"]
    assert translation["passed"] and "translation_en_to_de" in translation["not_applicable"]


def test_translation_is_checked_where_the_config_declares_it(family, tiny_copy):
    """t5's config.json declares translation_en_to_de with its prefix; the untrained tiny
    then fails, the text it produced in the detail."""
    task = {"prefix": "translate English to German: ", "num_beams": 4, "max_length": 300}

    def declare(config):
        config["task_specific_params"] = {"translation_en_to_de": task}

    edit_json(tiny_copy / "config.json", declare)
    record = run(family, str(tiny_copy))
    checks = {check["name"]: check for check in record["tests"]["oracle"]["checks"]}
    translation = checks["translates_en_to_de"]
    assert not translation["passed"] and "not_applicable" not in translation
    assert translation["detail"].startswith(f"{family.PROMPT!r} -> '")
    assert "oracle.translates_en_to_de" in record["reason"]


def test_span_corruption_needs_t5s_sentinels(family, tiny):
    from transformers import AutoTokenizer

    assert family.no_sentinels(AutoTokenizer.from_pretrained(tiny)) is None
    wordpiece = AutoTokenizer.from_pretrained(tiny_dir(import_family("bert")))
    assert "no sentinel token <extra_id_0>" in family.no_sentinels(wordpiece)


@pytest.mark.parametrize("model_id", ["t5-small", "google-t5/t5-small"])
def test_published_values_are_found_by_every_id_of_the_checkpoint(family, model_id):
    published = family.PUBLISHED[model_id]
    assert published is family.T5_SMALL
    cites = {figure["cite"] for figure in published.values.values()}
    assert all(cite in published.source for cite in (family.T5_TESTS, family.T5_DOCS))
    assert all(cite.startswith("huggingface/transformers ") for cite in cites)


def test_published_values_fail_for_the_tiny_files_under_the_checkpoint_id(family, hub_record):
    record = hub_record(family, "t5-small")
    published = record["tests"]["published"]
    assert published["status"] == "failed"
    assert published["source"] == family.T5_SMALL.source
    checks = {check["name"]: check for check in published["checks"]}
    assert set(checks) == set(family.T5_SMALL.values)
    assert not any(check["passed"] for check in checks.values())
    assert checks["mtf_score"]["source"].endswith("test_small_integration_test")
    assert checks["summary"]["source"].endswith("test_small_generation")
    assert checks["translation"]["source"] == family.T5_DOCS
    assert "expected 'Das Haus ist wunderbar.'" in checks["translation"]["detail"]
