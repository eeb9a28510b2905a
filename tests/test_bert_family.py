"""The bert family: its tokenizer's perturbations, a checkpoint without its head, and the
script and pytest forms of a family module. What every family checks: test_families.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from families_helpers import ROOT, edit_json, failed_checks, fails, records_by_model, run

FAMILY = "bert"

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.mark.parametrize(
    ("token", "replacement", "expected_failure"),
    [
        ("paris", "london", "from_pretrained.input_ids"),  # a word of the prompt
        ("after", "before", "pipeline.top_k_tokens"),  # a word the model predicts
    ],
)
def test_changing_one_vocabulary_token_fails(family, tiny_copy, token, replacement,
                                             expected_failure):  # fmt: skip
    def rename(data):
        vocab = data["model"]["vocab"]
        vocab[replacement] = vocab.pop(token)

    edit_json(tiny_copy / "tokenizer.json", rename)
    fails(family, expected_failure, "from_pretrained.vocab_sha256")


def test_changing_the_tokenizer_normaliser_fails(family, tiny_copy):
    edit_json(tiny_copy / "tokenizer.json", lambda data: data["normalizer"].update(lowercase=False))
    edit_json(tiny_copy / "tokenizer_config.json", lambda data: data.update(do_lower_case=False))
    fails(family, "from_pretrained.normalised_input_ids")


def test_checkpoint_without_mlm_head_is_reported(family, tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizer

    directory = tmp_path / "encoder-only"
    BertModel(BertConfig(**family.BERT_CONFIG)).save_pretrained(directory)
    vocab = {token: i for i, token in enumerate(family.VOCAB)}
    BertTokenizer(vocab=vocab).save_pretrained(directory)
    record = run(family, str(directory))
    assert record["tier"] == "local"
    assert record["status"] == "failed"
    assert "from_pretrained.weights_complete" in failed_checks(record)
    assert "missing" in record["reason"] and "cls.predictions" in record["reason"]


def test_remote_code_model_is_skipped(family):
    from hfmatrix.project import Project

    project = Project(ROOT)
    project.overrides["bert-base-uncased"] = project.overrides["meta-llama/Llama-2-7b-hf"]
    record = run(family, "bert-base-uncased", project=project)
    assert record["status"] == "skipped" and "remote code" in record["reason"]


def test_cuda_without_a_gpu_is_skipped(family):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    record = run(family, hardware="cuda")
    assert record["status"] == "skipped" and "CUDA" in record["reason"]


def test_missing_tiny_files_are_an_error_record_that_says_how_to_make_them(family, tiny_copy):
    (tiny_copy / "config.json").unlink()
    record = run(family)
    assert record["status"] == "error"
    assert "the tiny checkpoint tiny-bert is missing" in record["reason"]
    assert "nox -s freeze -- --model tiny-bert" in record["reason"]
    assert record["environment"]["python"]


def script(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "families" / "test_hf_bert.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_script_runs_and_writes_records(isolated):
    """One script run: the tiny model passes, forked; the hub id is a skip; a directory
    without a model is an error record, and the run exits 1."""
    pytest.importorskip("torch")
    empty = isolated / "not-a-model"
    empty.mkdir()
    done = script("--model", "tiny-bert", "--model", "bert-base-uncased", "--model", str(empty),
                  "--all-hardware")  # fmt: skip
    assert done.returncode == 1, done.stderr
    raw = isolated / "results" / "raw"
    records = records_by_model(isolated / "results", "bert-cpu")
    assert sorted(records) == sorted(["bert-base-uncased", "tiny-bert", str(empty)])
    assert {p.parent.name for p in raw.glob("*/*.json")} == {"bert-cpu"}
    assert "[1/3] bert: tiny-bert on cpu" in done.stdout
    record = records["tiny-bert"]
    assert record["status"] == "passed"
    assert record["environment"]["process"]["method"] == "fork"  # torch imported once
    assert Path(record["log"]).is_file()
    assert records["bert-base-uncased"]["status"] == "skipped"
    assert records[str(empty)]["status"] == "error" and records[str(empty)]["tier"] == "local"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--hardware", "quantum"], "unknown hardware 'quantum'"),
    ],
)
def test_script_user_errors_exit_2_in_one_line(isolated, args, message):
    pytest.importorskip("torch")
    done = script(*args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_pytest_form_user_error_is_one_line_exit_2(isolated):
    pytest.importorskip("torch")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
               str(ROOT / "families" / "test_hf_bert.py"), "--hardware", "tpu"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2
    assert "unknown hardware 'tpu'" in done.stderr
    assert len((done.stdout + done.stderr).strip().splitlines()) == 1


# --- the class oracle and the published values (hub and local models) ----------------------


def test_oracle_records_the_pseudo_nll_against_its_bound_and_the_fact(family, hub_record):
    """The untrained tiny files served as bert-base-uncased: both oracle checks fail, the
    pseudo-likelihood with its value, bound and source, the fact with the top 5 seen."""
    import math

    oracle = hub_record(family, "bert-base-uncased")["tests"]["oracle"]
    checks = {check["name"]: check for check in oracle["checks"]}
    assert set(checks) == {"pseudo_nll", "predicts_capital"}
    nll = checks["pseudo_nll"]
    assert not nll["passed"] and nll["below"] is True
    assert nll["bound"] == pytest.approx(0.6 * math.log(len(family.VOCAB)), abs=1e-6)
    assert nll["value"] > math.log(len(family.VOCAB)) > nll["bound"]  # uniform guessing or worse
    assert nll["source"] == family.PSEUDO_NLL_SOURCE and "Salazar" in nll["source"]
    fact = checks["predicts_capital"]
    assert not fact["passed"] and "top 5 for 'paris is the [MASK] of france.'" in fact["detail"]


@pytest.mark.parametrize("model_id", ["bert-base-uncased", "google-bert/bert-base-uncased"])
def test_published_values_are_found_by_every_id_of_the_checkpoint(family, model_id):
    published = family.PUBLISHED[model_id]
    assert published is family.BERT_BASE_UNCASED
    assert "tests/models/bert/test_modeling_bert.py" in published.source
    assert "model card" in published.source


def test_every_published_checkpoint_of_models_json_is_a_bert_family_model(family):
    from hfmatrix.project import Project

    project = Project(ROOT)
    listed = [model_id for model_id in family.PUBLISHED if model_id in project.models]
    assert {"bert-base-uncased", "distilbert-base-uncased"} <= set(listed)
    assert all(project.models[model_id].family == FAMILY for model_id in listed)


def test_published_values_fail_for_the_tiny_files_under_the_checkpoint_id(family, hub_record):
    record = hub_record(family, "bert-base-uncased")
    published = record["tests"]["published"]
    assert published["status"] == "failed"
    assert published["source"] == family.BERT_BASE_UNCASED.source
    checks = {check["name"]: check for check in published["checks"]}
    assert set(checks) == {"last_hidden_state_slice", "fill_mask_top_ids", "fill_mask_top_scores"}
    assert not any(check["passed"] for check in checks.values())
    assert (
        "test_inference_no_head_absolute_embedding" in checks["last_hidden_state_slice"]["source"]
    )
    assert "reach 6078" in checks["last_hidden_state_slice"]["detail"]  # ids outside its vocab
    assert (
        checks["fill_mask_top_ids"]["source"]
        == "the bert-base-uncased model card (fill-mask example)"
    )
    assert "published.fill_mask_top_ids" in record["reason"]


def test_a_model_without_published_values_gets_no_published_test(family, hub_record):
    record = hub_record(family, "bert-large-uncased")
    assert "bert-large-uncased" not in family.PUBLISHED
    assert "published" not in record["tests"] and "oracle" in record["tests"]


def test_oracle_is_not_applicable_to_a_vocabulary_that_is_not_english(family, tiny_copy):
    """The tiny vocabulary's single letters upper-cased, which its lowercasing normaliser never
    yields: English words outside its short word list become [UNK]."""

    def upper(data):
        vocab = data["model"]["vocab"]
        for letter in "abcdefghijklmnopqrstuvwxyz":
            for piece in (letter, f"##{letter}"):
                vocab[piece.upper()] = vocab.pop(piece)

    edit_json(tiny_copy / "tokenizer.json", upper)
    record = run(family, str(tiny_copy))
    assert record["tier"] == "local"
    checks = {check["name"]: check for check in record["tests"]["oracle"]["checks"]}
    assert set(checks) == {"pseudo_nll", "predicts_capital"}
    for check in checks.values():
        assert check["passed"] and check["not_applicable"] == check["detail"]
        assert "not an English vocabulary" in check["not_applicable"]
        assert "'[UNK]'" in check["not_applicable"] and "value" not in check


def test_pseudo_nll_batches_what_one_masked_copy_at_a_time_gives(family, tiny):
    """masked_pseudo_nll's batch of masked copies, against each copy run on its own."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from hfmatrix import likelihood

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForMaskedLM.from_pretrained(tiny).eval()
    text = "the capital of france is paris."
    ids = tokenizer(text)["input_ids"]
    losses = []
    with torch.inference_mode():
        for position in range(1, len(ids) - 1):  # [CLS] and [SEP] are not scored
            masked = [*ids[:position], tokenizer.mask_token_id, *ids[position + 1 :]]
            logits = model(input_ids=torch.tensor([masked])).logits[0, position]
            losses.append(float(-logits.log_softmax(-1)[ids[position]]))
        batched = likelihood.masked_pseudo_nll(model, tokenizer, (text,))
    assert batched == pytest.approx(sum(losses) / len(losses), abs=1e-5)
