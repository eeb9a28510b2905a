"""The bert family on its tiny checkpoint: golden values hold, and break when they should."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hfmatrix import checkpoints, sources

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("isolated")


def run(family, model_id: str = "tiny", hardware: str = "cpu") -> dict:
    return family.TestBertModels(model_id).run_tests(hardware)


def failed_checks(record: dict) -> set[str]:
    return {
        f"{test}.{check['name']}"
        for test, result in record["tests"].items()
        for check in result.get("checks", [])
        if not check["passed"]
    }


def tiny_dir(family) -> str:
    return family.TestBertModels("tiny").source.location


def test_tiny_checkpoint_passes_with_numbers(bert_family):
    record = run(bert_family)
    assert record["status"] == "passed", record["reason"]
    assert record["tier"] == "tiny" and record["model_id"] == "tiny-bert"
    assert {t: r["status"] for t, r in record["tests"].items()} == {
        "pipeline": "passed",
        "from_pretrained": "passed",
    }
    comparisons = record["numerics"]["comparisons"]
    assert {"top_k_scores", "logits_slice", "logits_stats", "save_load_round_trip"} <= set(
        comparisons
    )
    assert comparisons["save_load_round_trip"]["atol"] == 1e-5
    assert record["numerics"]["max_abs_diff"] <= record["numerics"]["atol"] == 1e-4
    assert len(record["checkpoint"]["sha256"]) == 64
    assert record["environment"]["torch"] and record["environment"]["transformers"]


def test_rebuilding_the_tiny_checkpoint_gives_identical_bytes(bert_family, tmp_path, monkeypatch):
    hashes = []
    for name in ("first", "second"):
        monkeypatch.setenv("HFMATRIX_CACHE", str(tmp_path / name))
        path = checkpoints.tiny_checkpoint("bert-v1", bert_family.TestBertModels("tiny").build_tiny)
        hashes.append(checkpoints.describe(path))
    assert hashes[0]["files"] == hashes[1]["files"]
    assert "model.safetensors" in hashes[0]["files"]


@pytest.mark.parametrize(
    "parameter",
    [
        "bert.encoder.layer.1.output.dense.weight",
        "bert.embeddings.LayerNorm.weight",
        "cls.predictions.bias",
        "bert.embeddings.word_embeddings.weight",  # the row of a word absent from the prompt
    ],
)
def test_changing_one_weight_fails(bert_family, parameter):
    import torch
    from safetensors.torch import load_file, save_file

    weights = f"{tiny_dir(bert_family)}/model.safetensors"
    tensors = load_file(weights)
    index = (bert_family.VOCAB.index("country"), 0) if "word_embeddings" in parameter else 0
    with torch.no_grad():
        tensors[parameter][index] += 0.05
    save_file(tensors, weights, metadata={"format": "pt"})
    record = run(bert_family)
    assert record["status"] == "failed"
    assert "from_pretrained.weights_sha256" in failed_checks(record)
    if "word_embeddings" not in parameter:  # these reach the outputs on the prompt as well
        assert {"from_pretrained.logits_slice", "from_pretrained.logits_stats"} <= failed_checks(
            record
        )


@pytest.mark.parametrize(
    ("token", "replacement", "expected_failure"),
    [
        ("paris", "london", "from_pretrained.input_ids"),  # a word of the prompt
        ("after", "before", "pipeline.top_k_tokens"),  # a word the model predicts
    ],
)
def test_changing_one_vocabulary_token_fails(bert_family, token, replacement, expected_failure):
    path = Path(tiny_dir(bert_family)) / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    vocab[replacement] = vocab.pop(token)
    path.write_text(json.dumps(data), encoding="utf-8")
    record = run(bert_family)
    assert record["status"] == "failed"
    assert {expected_failure, "from_pretrained.vocab_sha256"} <= failed_checks(record)


def test_checkpoint_without_mlm_head_is_reported(bert_family, tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizer

    directory = tmp_path / "encoder-only"
    BertModel(BertConfig(**bert_family.TINY_CONFIG)).save_pretrained(directory)
    vocab = {token: i for i, token in enumerate(bert_family.VOCAB)}
    BertTokenizer(vocab=vocab).save_pretrained(directory)
    record = run(bert_family, str(directory))
    assert record["tier"] == "local"
    assert record["status"] == "failed"
    assert "from_pretrained.weights_complete" in failed_checks(record)
    assert "missing" in record["reason"] and "cls.predictions" in record["reason"]


def test_hub_model_offline_is_skipped_quickly(bert_family):
    start = time.perf_counter()
    record = run(bert_family, "bert-base-uncased")
    assert record["status"] == "skipped"
    assert "HF_HUB_OFFLINE" in record["reason"]
    assert time.perf_counter() - start < 10


def test_hub_model_with_unreachable_hub_is_skipped_quickly(bert_family, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    sources.hub_unreachable.cache_clear()
    start = time.perf_counter()
    try:
        record = run(bert_family, "distilbert-base-uncased")
    finally:
        sources.hub_unreachable.cache_clear()
    assert record["status"] == "skipped"
    assert "unreachable" in record["reason"] and "127.0.0.1:9" in record["reason"]
    assert time.perf_counter() - start < 10


def test_remote_code_model_is_skipped(bert_family, tmp_path):
    from hfmatrix.project import Project

    project = Project(ROOT)
    project.overrides["bert-base-uncased"] = project.overrides["meta-llama/Llama-2-7b-hf"]
    record = bert_family.TestBertModels("bert-base-uncased", project).run_tests("cpu")
    assert record["status"] == "skipped" and "remote code" in record["reason"]


def test_cuda_without_a_gpu_is_skipped(bert_family):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    record = run(bert_family, hardware="cuda")
    assert record["status"] == "skipped" and "CUDA" in record["reason"]


def script(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "families" / "test_hf_bert.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_script_runs_and_writes_records(isolated):
    pytest.importorskip("torch")
    done = script("--model", "tiny", "--model", "bert-base-uncased", "--all-hardware")
    assert done.returncode == 0, done.stderr
    raw = isolated / "results" / "raw"
    assert sorted(p.name for p in raw.glob("*/*.json")) == [
        "bert-base-uncased.json",
        "tiny-bert.json",
    ]
    assert {p.parent.name for p in raw.glob("*/*.json")} == {"bert-cpu"}
    assert "[1/2] bert: tiny-bert on cpu" in done.stdout
    record = json.loads((raw / "bert-cpu" / "tiny-bert.json").read_text())
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


def test_a_checkpoint_that_cannot_be_built_is_an_error_record(bert_family, monkeypatch):
    def broken(self, path):
        raise RuntimeError("recipe broke")

    monkeypatch.setattr(bert_family.TestBertModels, "build_tiny", broken)
    record = run(bert_family)
    assert record["status"] == "error"
    assert record["reason"] == "RuntimeError: recipe broke"
    assert record["environment"]["python"]


def test_changing_the_tokenizer_normaliser_fails(bert_family):
    directory = Path(tiny_dir(bert_family))
    for name, key, section in (("tokenizer.json", "lowercase", "normalizer"),
                               ("tokenizer_config.json", "do_lower_case", None)):  # fmt: skip
        data = json.loads((directory / name).read_text(encoding="utf-8"))
        (data[section] if section else data)[key] = False
        (directory / name).write_text(json.dumps(data), encoding="utf-8")
    record = run(bert_family)
    assert record["status"] == "failed"
    assert "from_pretrained.normalised_input_ids" in failed_checks(record)


def test_hub_model_loads_from_the_hf_cache_offline(bert_family, isolated, monkeypatch):
    """A cached snapshot serves a Hub id offline (here holding the tiny files)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(isolated / "hf" / "hub"))
    repo = isolated / "hf" / "hub" / "models--bert-base-uncased"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_dir(bert_family), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    record = run(bert_family, "bert-base-uncased")
    assert record["tier"] == "hub"
    assert record["source"]["origin"] == "HF cache"
    assert record["loaded"] == {
        "class": "BertForMaskedLM",
        "dtype": "torch.float32",
        "revision": snapshot.name,
    }
    assert {t["status"] for t in record["tests"].values()} <= {"passed", "failed"}
    # random tiny weights cannot know the capital of France: the hub-tier check says so
    assert failed_checks(record) == {"pipeline.predicts_capital"}


def test_pytest_form_user_error_is_one_line_exit_2(isolated):
    pytest.importorskip("torch")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
               str(ROOT / "families" / "test_hf_bert.py"), "--hardware", "tpu"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2
    assert "unknown hardware 'tpu'" in done.stderr
    assert len((done.stdout + done.stderr).strip().splitlines()) == 1
