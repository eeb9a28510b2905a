"""The bert family: its tokenizer's perturbations, a checkpoint without its head, and the
script and pytest forms of a family module. What every family checks: test_families.py."""

from __future__ import annotations

import json
import subprocess
import sys

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
    BertModel(BertConfig(**family.TINY_CONFIG)).save_pretrained(directory)
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
    assert "the tiny checkpoint of bert is missing" in record["reason"]
    assert "nox -s freeze -- --family bert" in record["reason"]
    assert record["environment"]["python"]


def script(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "families" / "test_hf_bert.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_script_runs_and_writes_records(isolated):
    pytest.importorskip("torch")
    done = script("--model", "tiny", "--model", "bert-base-uncased", "--all-hardware")
    assert done.returncode == 0, done.stderr
    raw = isolated / "results" / "raw"
    assert sorted(records_by_model(isolated / "results")) == ["bert-base-uncased", "tiny-bert"]
    assert {p.parent.name for p in raw.glob("*/*.json")} == {"bert-cpu"}
    assert "[1/2] bert: tiny-bert on cpu" in done.stdout
    record = records_by_model(isolated / "results", "bert-cpu")["tiny-bert"]
    assert record["status"] == "passed"


def test_script_fails_when_a_model_fails(isolated):
    pytest.importorskip("torch")
    empty = isolated / "not-a-model"
    empty.mkdir()
    done = script("--model", str(empty))
    assert done.returncode == 1
    record = json.loads(next((isolated / "results" / "raw").glob("*/*.json")).read_text())
    assert record["status"] == "error" and record["tier"] == "local"


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
