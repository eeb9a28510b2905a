"""The gpt family: its golden generation, byte-level BPE tokenizer and model-code
perturbations; its class oracle's records and gpt2's published values. What every family
checks: test_families.py (and test_oracles.py: untrained copies fail every bound)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from families_helpers import ROOT, edit_json, fails, plant_hf_snapshot, run, tiny_dir

from hfmatrix import checkpoints, golden, likelihood
from hfmatrix.project import Project

FAMILY = "gpt"
TINY_IDS = [entry.model_id for entry in Project(ROOT).tiny_models(FAMILY)]  # one per class

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.mark.parametrize("model_id", TINY_IDS)
def test_golden_text_is_the_golden_ids_decoded(family, model_id):
    """Each class's tiny checkpoint: its golden greedy ids (EOS suppressed) decode to its
    golden text, with the shared byte-level BPE vocabulary."""
    from transformers import AutoTokenizer

    stored = golden.read(ROOT, "gpt")[model_id]
    ids = stored["greedy_ids"]
    assert ids == stored["generated_ids"] and len(ids) == family.NEW_TOKENS >= 10
    tokenizer = AutoTokenizer.from_pretrained(
        checkpoints.tiny_path(ROOT, checkpoints.tiny_name(model_id))
    )
    assert tokenizer.eos_token == family.EOS and tokenizer.eos_token_id == len(family.VOCAB) - 1
    assert tokenizer.eos_token_id not in ids  # EOS was suppressed
    assert tokenizer.decode(ids, skip_special_tokens=True) == stored["generated_text"]


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


# --- the class oracle and gpt2's published values ----------------------------------------


def planted(family, model_id: str, root: Path, change=None) -> dict:
    """The record of the tiny files (changed by ``change``) served as ``model_id`` from the HF
    cache under ``root`` (`isolated` and `hub_cache` set it up)."""
    files = Path(shutil.copytree(tiny_dir(family), root / "files"))
    if change is not None:
        change(files)
    plant_hf_snapshot(root / "hf" / "hub", model_id, files)
    return run(family, model_id)


@pytest.fixture
def hub_cache(isolated, monkeypatch) -> Path:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(isolated / "hf" / "hub"))
    return isolated


def oracle(record: dict) -> dict[str, dict]:
    return {check["name"]: check for check in record["tests"]["oracle"]["checks"]}


def test_the_oracle_records_the_nll_against_its_bound(family, tiny, hub_cache):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hfmatrix.likelihood import NLL_SOURCE, PASSAGES, causal_nll

    record = planted(family, "gpt2", hub_cache)
    nll = oracle(record)["english_nll"]
    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    # its byte-level pieces make each passage longer than its 64 positions: scored up to them
    assert min(len(tokenizer(text)["input_ids"]) for text in PASSAGES) > model.config.n_positions
    with torch.inference_mode():
        measured = causal_nll(model, tokenizer)
    assert nll["value"] == pytest.approx(measured, abs=1e-5)
    assert nll["bound"] == pytest.approx(0.6 * math.log(model.config.vocab_size), abs=1e-6)
    assert nll["below"] is True and nll["source"] == NLL_SOURCE
    assert not nll["passed"] and nll["value"] > math.log(model.config.vocab_size)  # untrained
    assert "nll/token" in nll["detail"] and NLL_SOURCE in nll["detail"]
    assert f"oracle.{'english_nll'}" in record["reason"]
    fact = oracle(record)["capital_of_france"]  # a small model is not asked for the capital
    assert fact["not_applicable"] == "25,034 parameters: under 1,000,000,000, too few to know facts"
    assert "bound" not in fact


def test_a_large_enough_model_must_name_paris(family, hub_cache, monkeypatch):
    monkeypatch.setattr(likelihood, "FACT_MIN_PARAMETERS", 0)
    fact = oracle(planted(family, "gpt2", hub_cache))["capital_of_france"]
    assert "not_applicable" not in fact and not fact["passed"]
    assert fact["detail"].startswith("'The capital of France is' -> '")
    assert "Paris" not in fact["detail"].removeprefix("'The capital of France is'")


def only_unknown_words(directory: Path) -> None:
    """A tokenizer whose vocabulary holds only its special tokens: every word is unknown."""

    def word_level(data: dict) -> None:
        special = {token["content"]: token["id"] for token in data["added_tokens"]}
        data["model"] = {"type": "WordLevel", "vocab": special, "unk_token": "<|endoftext|>"}
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
    assert "'<|endoftext|>'" in reason and "bound" not in nll["english_nll"]


def test_published_values_are_gpt2s_under_both_its_ids(family):
    published = family.TestGptModels.published
    assert set(published) == {"gpt2", "openai-community/gpt2"}
    [values] = {id(value): value for value in published.values()}.values()
    assert "tests/models/gpt2/test_modeling_gpt2.py" in values.source
    dog, greedy = values.values["dog_ids"], values.values["dog_greedy_ids"]
    assert greedy[: len(dog)] == dog and len(greedy) == values.values["max_length"]
    assert values.values["sentence_greedy_text"].startswith(values.values["sentence"] + " ")


@pytest.mark.parametrize("model_id", ["gpt2", "openai-community/gpt2"])
def test_the_tiny_checkpoint_as_gpt2_fails_the_published_values(family, hub_cache, model_id):
    record = planted(family, model_id, hub_cache)
    published = record["tests"]["published"]
    source = family.GPT2_PUBLISHED.source
    assert published["status"] == "failed" and published["source"] == source
    checks = {check["name"]: check for check in published["checks"]}
    assert set(checks) == {"dog_input_ids", "dog_greedy_ids", "sentence_greedy_text"}
    assert all(not check["passed"] and check["source"] == source for check in checks.values())
    assert "outside the model's 292 tokens" in checks["dog_greedy_ids"]["detail"]
    assert "published.dog_input_ids" in record["reason"]


def test_a_model_that_reproduces_the_published_values_passes_them(
    family, tiny, hub_cache, monkeypatch
):
    """The comparison holds no surprise of its own: values made from the tiny model by the
    published recipe (greedy to a whole length of 20, decoded whole) pass."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hfmatrix.oracle import Published

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny).eval()

    def greedy(ids: list[int]) -> list[int]:
        new = 20 - len(ids)
        with torch.inference_mode():
            output = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=new,
                                    min_new_tokens=new)  # fmt: skip
        return output[0].tolist()

    dog, sentence = tokenizer("The dog")["input_ids"], "Hello, my dog"
    own = Published(
        "the tiny checkpoint's own outputs",
        {
            "max_length": 20,
            "dog_ids": dog,
            "dog_greedy_ids": greedy(dog),
            "sentence": sentence,
            "sentence_greedy_text": tokenizer.decode(
                greedy(tokenizer(sentence)["input_ids"]), skip_special_tokens=True
            ),
        },
    )
    monkeypatch.setattr(family.TestGptModels, "published", {"gpt2": own})
    published = planted(family, "gpt2", hub_cache)["tests"]["published"]
    assert published["status"] == "passed", published
    assert published["source"] == "the tiny checkpoint's own outputs"
