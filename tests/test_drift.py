"""Fingerprints of a model's outputs (compact JSON) and drift between stacks and hardware:
the same checkpoint's fingerprints compared with a baseline record in the report."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from hfmatrix import drift
from hfmatrix.drift import Capture, compact
from hfmatrix.report import write_report
from hfmatrix.results import new_record, outcome_record, write_record

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

LATEST = "transformers 5.24.0 · torch 2.15.0"
TF4 = "transformers 4.57.6 · torch 2.15.0"
SHA = "5f1d" * 16


def size(value: Any) -> int:
    return len(json.dumps(value))


# ---------------------------------------------------------------- compact


def test_float_tensors_keep_statistics_a_sample_and_the_argmax():
    logits = torch.randn(2, 9, 1000, generator=torch.Generator().manual_seed(0))
    summary = compact({"logits": logits})["logits"]
    assert summary["shape"] == [2, 9, 1000] and summary["dtype"] == "float32"
    assert summary["mean"] == pytest.approx(float(logits.double().mean()), abs=1e-6)
    assert summary["std"] == pytest.approx(float(logits.double().std(unbiased=False)), rel=1e-6)
    flat = logits.reshape(-1)
    assert len(summary["sample"]) == 64
    assert summary["sample"][0] == pytest.approx(float(flat[0]), rel=1e-7)
    assert summary["sample"][-1] == pytest.approx(float(flat[-1]), rel=1e-7)
    assert summary["argmax"] == logits.argmax(-1).reshape(-1).tolist()  # 18 positions
    assert size(summary) < 3000


def test_long_logits_keep_64_positions_and_half_precision_reads_as_float():
    logits = torch.randn(1, 300, 50).to(torch.bfloat16)
    summary = compact(logits, "logits")
    assert summary["dtype"] == "bfloat16" and len(summary["argmax"]) == 64
    assert summary["argmax"][0] == int(logits[0, 0].float().argmax())
    assert summary["argmax"][-1] == int(logits[0, -1].float().argmax())
    assert "argmax" not in compact(torch.randn(4, 8), "pixel_values")  # not logits-like
    assert compact(np.ones((3, 4), dtype="float32"), "logits")["argmax"] == [0, 0, 0]


def test_ids_are_exact_and_capped():
    assert compact(torch.tensor([[5, 6, 7]])) == [[5, 6, 7]]
    assert compact([1, 2, 3] * 400) == ([1, 2, 3] * 400)[:512]
    big = compact(torch.arange(5000))
    assert big["shape"] == [5000] and big["head"] == list(range(64))
    assert big["sha256"] != compact(torch.arange(1, 5001))["sha256"]
    assert compact(np.int64(7)) == 7 and compact(torch.tensor(2.5)) == 2.5


def test_text_nesting_images_masks_and_odd_values():
    from PIL import Image

    mask = np.zeros((64, 64), dtype=bool)
    mask[:8, :8] = True
    value = {
        "text": "x" * 5000, "items": [{"score": 0.5, "label": "cat"}] * 100, "mask": mask,
        "image": Image.new("RGB", (32, 16), (10, 20, 30)), "nan": float("nan"), "object": object,
    }  # fmt: skip
    found = compact(value)
    assert len(found["text"]) == 2000
    assert len(found["items"]) == 64 and found["items"][0] == {"score": 0.5, "label": "cat"}
    assert (found["mask"]["shape"], found["mask"]["true"]) == ([64, 64], 64)
    assert found["image"] == {"image": {"size": [32, 16], "mode": "RGB", "mean": 20.0,
                                        "std": pytest.approx(8.1649658)}}  # fmt: skip
    assert found["nan"] == "nan" and found["object"] == "<class 'object'>"
    assert size(found) < 8000
    json.dumps(found, allow_nan=False)  # strict JSON


def test_capture_never_raises_and_names_what_failed():
    capture = Capture()
    capture.add("outputs", lambda: {"logits": torch.zeros(1, 2, 3)})
    capture.add("pipeline", lambda: 1 / 0)
    record = {"revision": None, "checkpoint": {"sha256": SHA}}
    block = capture.block(record, 1e-4)
    assert block["checkpoint"] == {"revision": None, "sha256": SHA}
    assert block["atol"] == 1e-4 and block["pipeline"] is None
    assert block["outputs"]["logits"]["shape"] == [1, 2, 3]
    assert block["error"] == "pipeline: ZeroDivisionError: division by zero"
    assert capture.block(record, 1e-4) is None  # cleared: nothing captured since


def test_an_oversized_fingerprint_drops_a_part(monkeypatch):
    monkeypatch.setattr(drift, "LIMIT", 2000)
    capture = Capture()
    capture.add("outputs", lambda: {"logits": torch.zeros(1, 2, 3)})
    capture.add("pipeline", lambda: [{"text": "y" * 1900}])
    block = capture.block({"revision": "abc"}, 1e-4)
    assert block["pipeline"] is None and block["outputs"] is not None
    assert "pipeline left out" in block["error"]


# ---------------------------------------------------------------- drift


def fingerprinted(
    stack: str | None = None,
    hardware: str = "cpu",
    *,
    greedy: list[int] | None = None,
    expectations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A passed record of the tiny gpt checkpoint on ``stack`` with its fingerprint."""
    record = new_record("gpt", "GPT2LMHeadModel", "tiny-gpt2", "tiny", hardware)
    label = TF4 if stack == "tf4" else LATEST
    record.update(
        status="passed",
        stack={"name": stack, "label": label, "versions": {}},
        checkpoint={"path": "tiny/gpt", "sha256": SHA},
        numerics={"reference": "cpu-fp32", "max_abs_diff": 0.0, "atol": 1e-4},
        environment={"fingerprint": f"{stack}-{hardware}", "host": "h",
                     "transformers": label.split()[1]},
    )  # fmt: skip
    if expectations is not None:
        record["expectations"] = expectations
    logits = torch.linspace(-3, 3, 2 * 5 * 40).reshape(2, 5, 40)
    capture = Capture()
    capture.add("outputs", lambda: {"logits": logits, "greedy_ids": greedy or [3, 1, 4, 1]})
    capture.add("pipeline", lambda: [{"generated_text": "the cat", "score": 0.25}])
    record["fingerprint"] = capture.block(record, 1e-4)
    return record


def test_the_same_checkpoint_on_two_stacks_agrees():
    [group] = drift.drift([fingerprinted(), fingerprinted("tf4")])
    assert (group["family"], group["model_id"], group["checkpoint"]) == ("gpt", "tiny-gpt2", SHA)
    assert group["baseline"]["column"] == "cpu" and group["baseline"]["stack"] == "latest"
    [row] = group["rows"]
    assert row == {"stack": "tf4", "column": "cpu@tf4", "label": f"cpu · {TF4}",
                   "environment": "tf4-cpu", "status": "agree", "max_abs_diff": 0.0,
                   "atol": 1e-4, "greedy_ids_equal": True, "pipeline_equal": True,
                   "where": None}  # fmt: skip


def test_a_planted_difference_is_drift_with_where_it_is():
    other = fingerprinted("tf4")
    other["fingerprint"]["outputs"]["logits"]["sample"][5] += 0.01
    [row] = drift.drift([other, fingerprinted()])[0]["rows"]
    assert (row["status"], row["where"]) == ("drift", "outputs.logits.sample[5]")
    assert row["max_abs_diff"] == pytest.approx(0.01, rel=1e-5)
    assert (row["greedy_ids_equal"], row["pipeline_equal"]) == (True, True)


def test_a_declared_difference_is_declared():
    declared = {"from_pretrained.logits_slice": "transformers<5: a different attention kernel"}
    other = fingerprinted("tf4", expectations=declared)
    other["fingerprint"]["outputs"]["logits"]["sample"][5] += 0.01
    [row] = drift.drift([fingerprinted(), other])[0]["rows"]
    assert row["status"] == "declared" and row["expectations"] == declared
    agreeing = fingerprinted("tf4", expectations=declared)
    assert drift.drift([fingerprinted(), agreeing])[0]["rows"][0]["status"] == "agree"
    other["status"] = "failed"  # its golden values failed even as declared: real drift
    assert drift.drift([fingerprinted(), other])[0]["rows"][0]["status"] == "drift"


def test_greedy_ids_that_differ():
    [row] = drift.drift([fingerprinted(), fingerprinted("tf4", greedy=[3, 1, 4, 2])])[0]["rows"]
    assert (row["status"], row["greedy_ids_equal"]) == ("drift", False)
    assert row["where"] == "outputs.greedy_ids[3]" and row["max_abs_diff"] == 0.0


def test_pipeline_scores_within_the_tolerance_of_the_backend():
    cuda = fingerprinted(hardware="cuda")
    cuda["numerics"]["atol"] = 5e-3
    cuda["fingerprint"]["pipeline"][0]["score"] += 1e-3
    [row] = drift.drift([fingerprinted(), cuda])[0]["rows"]
    assert (row["status"], row["atol"], row["pipeline_equal"]) == ("agree", 5e-3, True)
    assert row["max_abs_diff"] == pytest.approx(1e-3)
    cuda["fingerprint"]["pipeline"][0]["generated_text"] = "the dog"
    [row] = drift.drift([fingerprinted(), cuda])[0]["rows"]
    assert (row["status"], row["pipeline_equal"]) == ("drift", False)
    assert row["where"] == "pipeline[0].generated_text"


def test_a_shape_change_is_named_and_its_samples_not_paired():
    other = fingerprinted("tf4")
    other["fingerprint"]["outputs"]["logits"]["shape"] = [2, 6, 40]
    other["fingerprint"]["outputs"]["logits"]["sample"][0] = 99.0
    [row] = drift.drift([fingerprinted(), other])[0]["rows"]
    assert (row["status"], row["where"]) == ("drift", "outputs.logits.shape")
    assert row["max_abs_diff"] == 0.0  # the pipeline's score: the samples are not compared


def test_the_baseline_is_the_default_stacks_cpu_record():
    records = [fingerprinted("tf4"), fingerprinted(hardware="cuda"), fingerprinted()]
    [group] = drift.drift(records)
    assert group["baseline"]["column"] == "cpu"
    assert [row["column"] for row in group["rows"]] == ["cuda", "cpu@tf4"]
    [group] = drift.drift([fingerprinted("tf4", "cuda"), fingerprinted("tf4")])
    assert group["baseline"]["column"] == "cpu@tf4"  # no default-stack record: first by column


def test_records_without_fingerprints_are_left_out():
    old = fingerprinted("tf4")
    del old["fingerprint"]
    skipped = outcome_record("gpt", "GPT2LMHeadModel", "tiny-gpt2", "tiny", "cuda", "no GPU")
    broken = fingerprinted("tf4", "cuda")
    broken["fingerprint"] = {"error": "outputs: RuntimeError: boom"}
    assert drift.drift([fingerprinted(), old, skipped, broken]) == []
    other_checkpoint = fingerprinted("tf4")
    other_checkpoint["fingerprint"]["checkpoint"]["sha256"] = "0" * 64
    assert drift.drift([fingerprinted(), other_checkpoint]) == []  # another checkpoint


def test_the_report_shows_drift(tmp_path: Path):
    planted = fingerprinted("tf4")
    planted["fingerprint"]["outputs"]["logits"]["sample"][5] += 0.01
    for record in (fingerprinted(), planted, fingerprinted(hardware="cuda")):
        write_record(tmp_path, record)
    write_record(tmp_path, outcome_record("gpt", "G", "gpt2", "hub", "cpu", "offline"))
    summary = write_report(tmp_path)
    assert summary["drift_totals"] == {"agree": 1, "declared": 0, "drift": 1}
    [group] = summary["drift"]
    assert [(row["column"], row["status"]) for row in group["rows"]] == [
        ("cuda", "agree"), ("cpu@tf4", "drift")
    ]  # fmt: skip
    text = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "## Drift" in text and "### gpt · tiny-gpt2 (float32, checkpoint 5f1d5f1d5f1d)" in text
    assert f"Baseline: cpu · {LATEST} (stack latest)." in text
    line = next(row for row in text.splitlines() if "cpu · transformers 4.57.6" in row
                and "| drift " in row)  # fmt: skip
    assert "outputs.logits.sample[5]" in line and "| 0.01 " in line
    assert "## Drift\n\nagree 1, declared 0, drift 1\n" in text


# ---------------------------------------------------------------- a real run


def test_a_tiny_run_keeps_a_compact_fingerprint_that_agrees_with_itself(
    tiny_record, tmp_path: Path
):
    from families_helpers import import_family

    record = tiny_record(import_family("bert"))
    assert record["status"] == "passed", record["reason"]
    block = record["fingerprint"]
    assert "error" not in block and block["atol"] == 1e-4
    assert block["checkpoint"]["sha256"] == record["checkpoint"]["sha256"]
    logits = block["outputs"]["logits"]
    assert logits["shape"][-1] > 1 and len(logits["sample"]) == 64 and logits["argmax"]
    assert block["pipeline"] and {"score", "token", "token_str"} <= set(block["pipeline"][0])
    assert size(block) < 64 * 1024
    again = copy.deepcopy(record)
    again["stack"] = {**record["stack"], "name": "tf4"}
    again["environment"] = {**record["environment"], "fingerprint": "another"}
    [group] = drift.drift([record, again])
    assert group["rows"][0]["status"] == "agree" and group["rows"][0]["max_abs_diff"] == 0.0


def test_a_patched_op_in_one_stacks_run_is_drift_and_fails_undeclared(
    tiny_record, tmp_path: Path, monkeypatch
):
    """The same tiny checkpoint run twice: once as it is, once on a "stack" whose attention
    op is 1% louder (a patched torch SDPA). The patched run fails its golden values, naming
    its stack; the report shows it as drift from the default stack's run, and where."""
    from families_helpers import import_family, run

    family = import_family("bert")
    write_record(tmp_path, tiny_record(family))
    original = torch.nn.functional.scaled_dot_product_attention

    def louder(*args, **kwargs):
        return original(*args, **kwargs) * 1.01

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", louder)
    monkeypatch.setenv("HFMATRIX_STACK", "patched")
    patched = run(family)
    assert patched["status"] == "failed" and patched["expectations"] == {}
    assert patched["reason"].endswith(")]") and "[stack patched (transformers" in patched["reason"]
    write_record(tmp_path, patched)
    summary = write_report(tmp_path)
    [group] = [g for g in summary["drift"] if g["model_id"] == "tiny-bert"]
    [row] = group["rows"]
    assert (row["column"], row["status"]) == ("cpu@patched", "drift")
    assert row["max_abs_diff"] > row["atol"] == 1e-4 and row["where"].startswith("outputs.")
