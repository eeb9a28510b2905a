"""Backends against the reference: a backend's outputs are compared with PyTorch fp32 on the
CPU computed in the same run; a difference beyond the class's tolerance fails with the
measured figure, one within it passes."""

from __future__ import annotations

import shutil

import pytest
import torch
from families_helpers import family_test, perturb_weight

from hfmatrix import backends
from hfmatrix.checks import agree
from hfmatrix.harness import run_one
from hfmatrix.sources import Source

FAMILY = "bert"
NORM = {  # a normalisation weight: every position and logit depends on it
    "bert": "bert.embeddings.LayerNorm.weight",
    "gpt": "transformer.ln_f.weight",
}


def against_reference(family, backend_dir, monkeypatch) -> dict[str, dict]:
    """Both tests against the reference on "cpu", the backend's model loaded from
    ``backend_dir`` (the reference from the family's tiny checkpoint)."""
    load_model, pipeline = backends.load_model, backends.pipeline

    def from_backend_dir(load):
        def run(test, hardware):
            reference = test.source
            test._source = Source(test.model_id, "tiny", str(backend_dir), "changed copy")
            try:
                return load(test, hardware)
            finally:
                test._source = reference

        return run

    monkeypatch.setattr(backends, "load_model", from_backend_dir(load_model))
    monkeypatch.setattr(backends, "pipeline", from_backend_dir(pipeline))
    test = family_test(family)
    return {
        "pipeline": run_one(test.test_pipeline_against_reference, "cpu"),
        "from_pretrained": run_one(test.test_from_pretrained_against_reference, "cpu"),
    }


def checks(result: dict) -> dict[str, dict]:
    return {check["name"]: check for check in result["checks"]}


@pytest.mark.parametrize("family", ["bert", "gpt"], indirect=True)
def test_a_backend_beyond_tolerance_fails_with_the_measured_difference(
    family, tiny, isolated, monkeypatch
):
    changed = shutil.copytree(tiny, isolated / "changed")
    perturb_weight(changed, NORM[family.__name__.removeprefix("test_hf_")], delta=0.05)
    results = against_reference(family, changed, monkeypatch)
    logits = checks(results["from_pretrained"])["logits_match_reference"]
    assert not logits["passed"]
    assert logits["max_abs_diff"] > logits["atol"] == 1e-4
    assert f"> atol {logits['atol']:g}" in logits["detail"]
    if family.__name__ == "test_hf_bert":  # fill-mask scores; gpt's greedy ids may hold
        assert results["pipeline"]["status"] == "failed"


@pytest.mark.parametrize("family", ["bert", "gpt"], indirect=True)
def test_a_backend_within_tolerance_passes(family, tiny, isolated, monkeypatch):
    changed = shutil.copytree(tiny, isolated / "changed")
    perturb_weight(changed, NORM[family.__name__.removeprefix("test_hf_")], delta=1e-6)
    results = against_reference(family, changed, monkeypatch)
    for result in results.values():
        assert result["status"] == "passed", result
    logits = checks(results["from_pretrained"])["logits_match_reference"]
    assert 0 < logits["max_abs_diff"] <= 1e-4
    if "greedy_ids_match_reference" in checks(results["from_pretrained"]):
        assert checks(results["from_pretrained"])["greedy_ids_match_reference"]["passed"]


def test_agree_compares_structures_leaf_by_leaf():
    scores = [{"score": 0.5, "token": 7, "token_str": "paris"}]
    near = [{"score": 0.50005, "token": 7, "token_str": "paris"}]
    assert agree("p", near, scores, 1e-4).passed
    far = agree("p", [{"score": 0.6, "token": 7, "token_str": "paris"}], scores, 1e-4)
    assert not far.passed and far.max_abs_diff == pytest.approx(0.1)
    other = agree("p", [{"score": 0.5, "token": 8, "token_str": "paris"}], scores, 1e-4)
    assert (other.passed, other.detail) == (False, "[0].token: 8 != 7")
    assert not agree("ids", [1, 2, 3], [1, 2, 4], 1e-4).passed
    assert agree("ids", [1, 2, 3], [1, 2, 3], 1e-4).detail == ""
    assert not agree("ids", [1, 2], [1, 2, 3], 1e-4).passed
    masks = agree("m", torch.tensor([True, False]), torch.tensor([True, True]), 1e-4)
    assert masks.detail == "output: 1 of 2 elements differ"
    nan = agree("l", torch.tensor([float("nan")]), torch.tensor([0.0]), 1e-4)
    assert not nan.passed
    assert not agree("x", [0.5, 5.3], [float("nan"), 0.3], 1e-4).passed  # NaN in the reference
    shape = agree("l", torch.zeros(2, 3), torch.zeros(3, 2), 1e-4)
    assert shape.detail == "output: shape (2, 3) != (3, 2)"


def test_half_precision_on_the_cpu_is_compared_with_the_fp32_reference(family, tiny, isolated):
    record = family.TestBertModels("tiny", dtype="float16").run_tests("cpu")
    assert (record["dtype"], record["session"]) == ("float16", "bert-cpu-float16")
    assert record["numerics"]["reference"] == backends.REFERENCE
    logits = checks(record["tests"]["from_pretrained"])["logits_match_reference"]
    assert logits["atol"] == 1e-1 and logits["max_abs_diff"] > 0
    assert record["loaded"]["dtype"] == "torch.float16"
    assert record["request"]["dtype"] == "float16"


def test_tolerances_by_backend_and_dtype(family):
    test = family.TestBertModels("tiny")
    assert test.tolerance("cuda") == test.tolerance("openvino") == 1e-4
    assert family.TestBertModels("tiny", dtype="bfloat16").tolerance("cuda") == 2e-1
    from families_helpers import import_family

    t5 = import_family("t5")
    assert t5.TestT5Models("tiny").tolerance("openvino") == 5e-3
    assert t5.TestT5Models("tiny").tolerance("cuda") == 1e-4


def test_openvino_in_half_precision_is_a_user_error(family, capsys):
    from hfmatrix.cli import family_main

    code = family_main(family.TestBertModels, ["--hardware", "openvino", "--dtype", "float16"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --dtype float16: openvino runs in f32 (its INFERENCE_PRECISION_HINT)"
    )


def test_report_gives_each_dtype_its_own_column(tmp_path):
    from hfmatrix.report import write_report
    from hfmatrix.results import new_record, write_record

    for dtype, diff in (("float32", 1e-6), ("float16", 3e-2)):
        record = new_record("bert", "BertForMaskedLM", "tiny-bert", "tiny", "cuda", dtype)
        record.update(status="passed", numerics={"max_abs_diff": diff, "atol": 1e-4})
        write_record(tmp_path, record)
    matrix = write_report(tmp_path)["matrix"]["bert"]
    assert sorted(matrix) == ["cuda", "cuda-float16"]
    assert matrix["cuda-float16"]["max_abs_diff"] == 3e-2
    assert (tmp_path / "by_hardware" / "cuda-float16_results.json").is_file()
