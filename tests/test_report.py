"""The report step: merging raw records into by_class/, by_hardware/ and summary files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from hfmatrix.report import build_report, cell_status, write_report
from hfmatrix.results import new_record, outcome_record, stack, write_record


def _record(
    family: str,
    model_id: str,
    hardware: str,
    status: str,
    *,
    model_class: str = "BertForMaskedLM",
    started_at: str = "2025-01-01T00:00:00+00:00",
    diff: float | None = 1e-6,
    reason: str = "",
) -> dict[str, Any]:
    record = new_record(family, model_class, model_id, "tiny", hardware)
    test = {"status": status, "duration_s": 0.1, "checks": [], "error": None}
    record.update(
        status=status,
        reason=reason,
        started_at=started_at,
        tests={"pipeline": dict(test), "from_pretrained": dict(test)},
        numerics={"reference": "cpu-fp32", "max_abs_diff": diff, "atol": 1e-4},
    )
    return record


def _skipped(family: str, model_id: str, hardware: str, reason: str) -> dict[str, Any]:
    return outcome_record(family, "BertForMaskedLM", model_id, "hub", hardware, reason)


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    write_record(tmp_path, _record("bert", "tiny-bert", "cpu", "passed"))
    write_record(tmp_path, _record("bert", "distilbert-base-uncased", "cpu", "passed"))
    write_record(tmp_path, _skipped("bert", "bert-base-uncased", "cpu", "not cached, offline"))
    write_record(tmp_path, _skipped("bert", "tiny-bert", "cuda", "no CUDA device"))
    write_record(
        tmp_path, _record("gpt", "tiny-gpt2", "cpu", "failed", model_class="GPT2LMHeadModel")
    )
    write_record(tmp_path, _record("gpt", "gpt2", "cpu", "timeout", model_class="GPT2LMHeadModel"))
    write_record(
        tmp_path, _record("gpt", "tiny-gpt2", "openvino", "passed", model_class="GPT2LMHeadModel")
    )
    return tmp_path


def test_by_class_file(results: Path) -> None:
    write_report(results)
    data = _read(results / "by_class" / "bert_models.json")
    assert data["family"] == "bert"
    assert data["model_classes"] == ["BertForMaskedLM"]
    keys = [(r["model_id"], r["hardware"]) for r in data["records"]]
    assert keys == [
        ("bert-base-uncased", "cpu"),
        ("distilbert-base-uncased", "cpu"),
        ("tiny-bert", "cpu"),
        ("tiny-bert", "cuda"),
    ]
    assert data["records"][0]["reason"] == "not cached, offline"
    assert data["records"][2]["tests"]["pipeline"]["status"] == "passed"  # full records
    assert (results / "by_class" / "gpt_models.json").is_file()


def test_by_hardware_file(results: Path) -> None:
    write_report(results)
    data = _read(results / "by_hardware" / "cpu_results.json")
    assert data["hardware"] == "cpu"
    keys = [(r["family"], r["model_id"]) for r in data["records"]]
    assert keys == [
        ("bert", "bert-base-uncased"),
        ("bert", "distilbert-base-uncased"),
        ("bert", "tiny-bert"),
        ("gpt", "gpt2"),
        ("gpt", "tiny-gpt2"),
    ]
    names = sorted(p.name for p in (results / "by_hardware").iterdir())
    assert names == ["cpu_results.json", "cuda_results.json", "openvino_results.json"]


def test_summary_totals_and_matrix(results: Path) -> None:
    summary = write_report(results)
    assert _read(results / "summary.json") == summary
    assert summary["schema"] == "hfmatrix.summary/6"
    assert summary["results_dir"] == str(results)
    assert summary["totals"] == {
        "passed": 3,
        "failed": 1,
        "error": 0,
        "skipped": 2,
        "timeout": 1,
        "total": 7,
    }
    matrix = summary["matrix"]
    measured = {"max_abs_diff": 1e-6, "atol": 1e-4, "reference": "cpu-fp32"}
    assert matrix["bert"]["cpu"] == {
        "status": "passed",
        "counts": {"passed": 2, "skipped": 1},
        **measured,
    }
    assert matrix["bert"]["cuda"] == {"status": "skipped", "counts": {"skipped": 1}}
    assert matrix["gpt"]["cpu"] == {
        "status": "error",
        "counts": {"failed": 1, "timeout": 1},
        **measured,
        "findings": [
            {"model_id": "gpt2", "status": "timeout", "reason": "", "declared": None},
            {"model_id": "tiny-gpt2", "status": "failed", "reason": "", "declared": None},
        ],
    }
    assert matrix["gpt"]["openvino"]["status"] == "passed"
    assert "cuda" not in matrix["gpt"]
    assert summary["unreadable"] == []


def test_matrix_cell_shows_the_worst_measured_difference_and_greedy_ids(tmp_path: Path) -> None:
    near = _record("gpt", "tiny-gpt2", "openvino", "passed", diff=9e-5)
    far = _record("gpt", "gpt2", "openvino", "failed", diff=2e-3)
    near["numerics"]["greedy_ids_match"] = True
    far["numerics"]["greedy_ids_match"] = False
    for record in (near, far):
        write_record(tmp_path, record)
    summary = write_report(tmp_path)
    cell = summary["matrix"]["gpt"]["openvino"]
    assert (cell["status"], cell["max_abs_diff"], cell["greedy_ids_match"]) == (
        "failed",
        2e-3,
        False,
    )
    by_hardware = _read(tmp_path / "by_hardware" / "openvino_results.json")
    assert by_hardware["classes"]["gpt"] == cell
    assert by_hardware["model_classes"] == {"gpt": {"BertForMaskedLM": cell}}
    assert (
        "passed 1, failed 1 (max \\|diff\\| 0.002), ids DIFFER"
        in (tmp_path / "summary.md").read_text()
    )


def test_summary_model_rows(results: Path) -> None:
    summary = write_report(results)
    rows = {(m["family"], m["model_id"], m["hardware"]): m for m in summary["models"]}
    assert len(rows) == 7
    tiny = rows[("bert", "tiny-bert", "cpu")]
    assert tiny["model_class"] == "BertForMaskedLM"
    assert tiny["tier"] == "tiny"
    assert tiny["tests"] == {"pipeline": "passed", "from_pretrained": "passed"}
    assert (tiny["max_abs_diff"], tiny["atol"]) == (1e-6, 1e-4)
    skipped = rows[("bert", "tiny-bert", "cuda")]
    assert skipped["tests"] == {}
    assert skipped["max_abs_diff"] is None
    assert skipped["reason"] == "no CUDA device"


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"passed": 3, "error": 1}, "error"),
        ({"passed": 3, "timeout": 1, "failed": 1}, "error"),
        ({"passed": 3, "failed": 1, "skipped": 2}, "failed"),
        ({"passed": 1, "skipped": 5}, "passed"),
        ({"skipped": 2}, "skipped"),
        ({}, "skipped"),
    ],
)
def test_cell_status_rule(counts: dict[str, int], expected: str) -> None:
    assert cell_status(counts) == expected


def _declared(record: dict[str, Any], observed: bool = True) -> dict[str, Any]:
    finding = {
        "observed": observed,
        "reason": "no export for this class",
        "stack": "optimum-intel<2.3",
        "declared_in": "env_specs/classes/findings.toml:8",
    }
    return {**record, "finding": finding}  # fmt: skip


def test_the_class_grid_groups_classes_under_their_family_with_their_findings(tmp_path):
    """Each class of a family gets its own row of cells; a failure declared as a finding
    makes its cell "declared", an undeclared one does not; the findings table lists both
    and a declaration that did not occur."""
    vit = dict(model_class="ViTForImageClassification")
    convnext = dict(model_class="ConvNextV2ForImageClassification")
    swin = dict(model_class="SwinForImageClassification")
    for record in [
        _record("vit", "tiny-vit", "cpu", "passed", **vit),
        _record("vit", "tiny-vit", "openvino", "passed", diff=8e-7, **vit),
        _record("vit", "tiny-convnextv2", "cpu", "passed", **convnext),
        _declared(_record("vit", "tiny-convnextv2", "openvino", "error", diff=None,
                          reason="could not export: custom or unsupported architecture",
                          **convnext)),
        _record("vit", "tiny-swin", "openvino", "failed", reason="logits differ", **swin),
        _declared(_record("vit", "tiny-swin", "cpu", "passed", **swin), observed=False),
        _record("bert", "tiny-bert", "cpu", "passed"),
    ]:  # fmt: skip
        write_record(tmp_path, record)
    summary = write_report(tmp_path)
    classes = summary["classes"]
    assert list(classes) == ["bert", "vit"]
    assert list(classes["vit"]) == [
        "ConvNextV2ForImageClassification", "SwinForImageClassification",
        "ViTForImageClassification",
    ]  # fmt: skip
    declared = classes["vit"]["ConvNextV2ForImageClassification"]["openvino"]
    assert declared["status"] == "declared" and declared["counts"] == {"error": 1}
    assert declared["findings"] == [{
        "model_id": "tiny-convnextv2", "status": "error", "declared": "no export for this class",
        "reason": "could not export: custom or unsupported architecture"}]  # fmt: skip
    assert classes["vit"]["SwinForImageClassification"]["openvino"]["status"] == "failed"
    assert classes["vit"]["ViTForImageClassification"]["openvino"]["max_abs_diff"] == 8e-7
    assert summary["matrix"]["vit"]["openvino"]["status"] == "failed"  # the family's rollup
    states = {(r["model_id"], r["hardware"]): r["finding"] for r in summary["findings"]}
    assert states == {("tiny-convnextv2", "openvino"): "declared",
                      ("tiny-swin", "openvino"): "new",
                      ("tiny-swin", "cpu"): "declared, did not occur"}  # fmt: skip
    text = (tmp_path / "summary.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index("## Class x hardware")
    grid = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            for line in lines[start:] if line.startswith("| ")][:4]  # fmt: skip
    assert grid[0][:2] == ["family", "class"]
    assert [row[:2] for row in grid[1:]] == [
        ["bert", "BertForMaskedLM"], ["vit", "ConvNextV2ForImageClassification"],
        ["", "SwinForImageClassification"]]  # fmt: skip
    assert grid[2][2:] == ["passed 1 (max \\|diff\\| 1e-06)", "error 1 (declared)"]
    assert "## Findings" in text and "3 rows, 1 of them declared findings" in text
    row = next(line for line in lines if "| declared, did not occur |" in line)
    assert "tiny-swin" in row and "no export for this class" in row


def test_newest_record_wins(tmp_path: Path) -> None:
    old = _record("bert", "tiny-bert", "cpu", "failed", started_at="2025-01-01T00:00:00+00:00")
    new = _record("bert", "tiny-bert", "cpu", "passed", started_at="2025-02-01T00:00:00+00:00")
    write_record(tmp_path, new)
    old["session"] = "bert-cpu-rerun"  # the same key from another raw/ directory
    write_record(tmp_path, old)
    summary = write_report(tmp_path)
    assert summary["totals"]["total"] == 1
    assert summary["models"][0]["status"] == "passed"
    data = _read(tmp_path / "by_class" / "bert_models.json")
    assert [r["started_at"] for r in data["records"]] == ["2025-02-01T00:00:00+00:00"]


def test_unreadable_records_are_named_and_skipped(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = results / "raw" / "bert-cpu" / "broken.json"
    bad.write_text('{"schema": "hfmatrix.record/1", ', encoding="utf-8")
    not_record = results / "raw" / "bert-cpu" / "list.json"
    not_record.write_text("[1, 2]", encoding="utf-8")
    partial = results / "raw" / "gpt-cpu" / "partial.json"
    partial.write_text('{"schema": "hfmatrix.record/1", "family": "gpt"}', encoding="utf-8")
    (results / "raw" / "bert-cpu" / ".tiny-bert.json.123.tmp").write_text("{", encoding="utf-8")
    (results / "raw" / "bert-cpu" / ".hidden.json").write_text("{", encoding="utf-8")

    summary = write_report(results)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3
    assert any(str(bad) in line and "invalid JSON" in line for line in err)
    assert any(str(not_record) in line and "not a record" in line for line in err)
    assert any(str(partial) in line and "model_id" in line for line in err)
    assert {item["path"] for item in summary["unreadable"]} == {
        str(bad),
        str(not_record),
        str(partial),
    }
    assert summary["totals"]["total"] == 7
    assert "## Unreadable records" in (results / "summary.md").read_text(encoding="utf-8")


def test_summary_markdown(results: Path) -> None:
    long_reason = "x" * 200
    write_record(results, _skipped("vit", "google/vit-base-patch16-224", "cpu", long_reason))
    write_report(results)
    text = (results / "summary.md").read_text(encoding="utf-8")
    assert "**Totals:** 8 records (passed 3, failed 1, error 0, skipped 3, timeout 1)" in text
    heads = [re.escape(f"{hw} · {stack()['label']}") + " +" for hw in ("cpu", "cuda", "openvino")]
    assert re.search(r"^\| family +\| " + r"\| ".join(heads) + r"\|$", text, re.M)
    assert "passed 2, skipped 1" in text
    assert "failed 1, timeout 1" in text
    assert "max \\|diff\\|" in text  # a pipe in a header would split the column
    lines = text.splitlines()
    bert_row = next(line for line in lines if line.startswith("| bert ") and "tiny-bert" in line)
    assert "| cpu " in bert_row and "passed" in bert_row and "1e-06" in bert_row
    vit_row = next(line for line in lines if "google/vit-base-patch16-224" in line)
    assert "x" * 79 in vit_row and "x" * 81 not in vit_row
    assert "Unreadable records" not in text


def test_stale_files_removed(results: Path) -> None:
    write_report(results)
    assert (results / "by_class" / "gpt_models.json").is_file()
    for path in (results / "raw").glob("gpt-*"):
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    summary = write_report(results)
    assert sorted(p.name for p in (results / "by_class").iterdir()) == ["bert_models.json"]
    assert sorted(p.name for p in (results / "by_hardware").iterdir()) == [
        "cpu_results.json",
        "cuda_results.json",
    ]
    assert set(summary["matrix"]) == {"bert"}


@pytest.mark.parametrize("with_raw", [False, True])
def test_empty_results_dir(tmp_path: Path, with_raw: bool) -> None:
    results = tmp_path / "test_results"
    if with_raw:
        (results / "raw" / "bert-cpu").mkdir(parents=True)
    summary = write_report(results)
    assert summary["totals"] == {
        "passed": 0,
        "failed": 0,
        "error": 0,
        "skipped": 0,
        "timeout": 0,
        "total": 0,
    }
    assert summary["matrix"] == {} and summary["models"] == [] and summary["unreadable"] == []
    assert _read(results / "summary.json")["totals"]["total"] == 0
    assert "0 records" in (results / "summary.md").read_text(encoding="utf-8")
    assert list((results / "by_class").glob("*.json")) == []
    merged = build_report(results)
    assert (merged.current, merged.history, merged.unreadable) == ([], [], [])


def test_no_temp_files_left(results: Path) -> None:
    write_report(results)
    leftovers = [p for p in results.rglob("*.tmp") if "raw" not in p.parts]
    assert leftovers == []


def test_odd_records_do_not_crash_the_report(tmp_path: Path, capsys) -> None:
    odd = _record("bert", "tiny-bert", "cpu", "failed", reason="")
    odd["reason"] = ["not", "a", "string"]
    write_record(tmp_path, odd)
    foreign = _record("bert", "other", "cpu", "passed")
    foreign["schema"] = "someone-else/9"
    write_record(tmp_path, foreign)
    summary = write_report(tmp_path)
    assert [row["reason"] for row in summary["models"]] == ["['not', 'a', 'string']"]
    assert "schema 'someone-else/9'" in summary["unreadable"][0]["error"]
    assert "other.json" in capsys.readouterr().err


def test_hfmatrix_report_command(tmp_path: Path, monkeypatch, capsys) -> None:
    from hfmatrix.commands import main

    write_record(tmp_path / "out", _record("bert", "tiny-bert", "cpu", "passed"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HFMATRIX_RESULTS_DIR", str(tmp_path / "out"))
    assert main(["report"]) == 0
    assert "passed 1" in capsys.readouterr().out
    assert (tmp_path / "out" / "summary.json").is_file()
    (tmp_path / "file").write_text("x")
    assert main(["report", "--results-dir", str(tmp_path / "file")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_coverage_of_the_registry_by_the_records(results: Path) -> None:
    registry = {
        "families": {
            "bert": {"classes": ["BertForMaskedLM"], "models": 4, "hub_models": 3},
            "gpt": {"classes": ["GPT2LMHeadModel"], "models": 4, "hub_models": 3},
            "sam": {"classes": ["SamModel"], "models": 1, "hub_models": 0},
        },
        "tiny_only": ["sam"],
        "untested_classes": [
            {"class": "CLIPModel", "model_type": "clip", "task": None,
             "models": 2, "downloads": 2000, "most_downloaded": "openai/clip-vit-base-patch32",
             "why": "new-family", "reason": "zero-shot-image-classification"}
        ],
        "downloads": {"counted_models": 5, "total": 10000, "tested_classes": 8000,
                      "share": 0.8},
    }  # fmt: skip
    summary = write_report(results, registry)
    families = summary["coverage"]["families"]
    # bert: two models ran (bert-base-uncased was only skipped), both passed
    assert (families["bert"]["tested_models"], families["bert"]["passed_models"]) == (2, 2)
    # gpt: tiny-gpt2 failed on cpu and passed on openvino; gpt2 timed out
    assert (families["gpt"]["tested_models"], families["gpt"]["passed_models"]) == (2, 0)
    assert (families["sam"]["tested_models"], families["sam"]["passed_models"]) == (0, 0)
    assert summary["coverage"]["untested_classes"] == registry["untested_classes"]
    assert _read(results / "summary.json")["coverage"] == summary["coverage"]
    text = (results / "summary.md").read_text()
    assert "## Coverage" in text
    rows = [row.split("|")[1:-1] for row in text.splitlines() if row.startswith("| bert ")]
    assert [cell.strip() for cell in rows[-1]] == ["bert", "BertForMaskedLM", "4", "3", "2", "2"]
    assert "Families with only their tiny checkpoint: sam." in text
    assert "The tested classes hold 80.0% of models.json's downloads." in text
    [row] = [r for r in text.splitlines() if r.startswith("| CLIPModel ")]
    assert "new-family" in row and "zero-shot-image-classification" in row
    assert write_report(results)["coverage"] is None  # outside a project: no registry
    assert "## Coverage" not in (results / "summary.md").read_text()


def test_the_dashboard_is_written_beside_the_summary(results: Path) -> None:
    summary = write_report(results)
    page = (results / "index.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and 'id="summary"' in page
    assert summary["generated_at"] in page


def _perf(p50: float, throughput: float, batch: int = 1) -> dict[str, Any]:
    target = {"latency": {"p50": p50, "p90": 2 * p50},
              "throughput": {"unit": "samples/s", "value": throughput},
              "memory": {"unit": "MB", "max_ram": 800.0}}  # fmt: skip
    return {"settings": {"batch_size": batch},
            "targets": {"forward": target, "load_model": {"latency": {"p50": 1.0}}}}  # fmt: skip


def test_performance_per_class_and_hardware(tmp_path: Path) -> None:
    runs = (
        ("a", 0.001, 900.0, 1),
        ("b", 0.003, 300.0, 1),
        ("c", 0.002, 450.0, 1),
        ("big", 0.5, 16.0, 8),
    )  # fmt: skip  (another batch size: not in the medians)
    for model_id, p50, rate, batch in runs:
        record = _record("bert", model_id, "cpu", "passed")
        record["performance"] = _perf(p50, rate, batch)
        write_record(tmp_path, record)
    write_record(tmp_path, _record("bert", "d", "cpu", "passed"))  # measured without
    summary = write_report(tmp_path)
    assert summary["matrix"]["bert"]["cpu"]["performance"] == {"forward": {
        "p50_s": 0.002, "p90_s": 0.004, "throughput": 450.0, "max_ram_mb": 800.0,
        "throughput_unit": "samples/s", "models": 3, "settings": {"batch_size": 1}}}  # fmt: skip
    rows = {row["model_id"]: row["performance"] for row in summary["models"]}
    assert rows["a"]["forward"]["p50_s"] == 0.001 and rows["d"] is None
    assert rows["a"]["load_model"]["throughput"] is None
    text = (tmp_path / "summary.md").read_text()
    assert "## Performance" in text
    line = next(row for row in text.splitlines() if row.startswith("| bert") and "forward" in row)
    assert [c.strip() for c in line.split("|")[1:-1]] == [
        "bert", "BertForMaskedLM", "cpu", "forward", "3", "2", "4", "450 samples/s", "800"
    ]  # fmt: skip


TF4 = {"name": "tf4", "label": "transformers 4.57.6 · torch 2.15.0",
       "versions": {"transformers": "4.57.6", "torch": "2.15.0"}}  # fmt: skip


def _on_stack(record: dict[str, Any], name: str | None, fingerprint: str) -> dict[str, Any]:
    label = TF4["label"] if name == "tf4" else "transformers 5.24.0 · torch 2.15.0"
    record.update(stack={**TF4, "name": name, "label": label},
                  environment={"fingerprint": fingerprint, "host": "h"})  # fmt: skip
    return record


def test_columns_name_their_stack(tmp_path: Path) -> None:
    write_record(tmp_path, _on_stack(_record("bert", "tiny-bert", "cpu", "passed"), None, "a"))
    write_record(tmp_path, _on_stack(_record("bert", "tiny-bert", "cpu", "failed"), "tf4", "b"))
    write_record(tmp_path, _on_stack(_record("bert", "tiny-bert", "cuda", "passed"), "tf4", "c"))
    summary = write_report(tmp_path)
    assert summary["columns"] == {
        "cpu": {"hardware": "cpu", "dtype": "float32", "stack": "latest",
                "label": "cpu · transformers 5.24.0 · torch 2.15.0"},
        "cpu@tf4": {"hardware": "cpu", "dtype": "float32", "stack": "tf4",
                    "label": "cpu · transformers 4.57.6 · torch 2.15.0"},
        "cuda@tf4": {"hardware": "cuda", "dtype": "float32", "stack": "tf4",
                     "label": "cuda · transformers 4.57.6 · torch 2.15.0"},
    }  # fmt: skip
    assert {hw: cell["status"] for hw, cell in summary["matrix"]["bert"].items()} == {
        "cpu": "passed", "cpu@tf4": "failed", "cuda@tf4": "passed"
    }  # fmt: skip
    rows = [(m["hardware"], m["stack"], m["label"]) for m in summary["models"]]
    assert rows[1] == ("cpu@tf4", "tf4", "cpu · transformers 4.57.6 · torch 2.15.0")
    assert (tmp_path / "by_hardware" / "cpu-tf4_results.json").is_file()
    text = (tmp_path / "summary.md").read_text(encoding="utf-8")
    heads = ["cpu · transformers 5.24.0", "cpu · transformers 4.57.6", "cuda · transformers 4.57.6"]
    assert re.search(r"^\| family +\| " + r" · torch 2.15.0 +\| ".join(heads), text, re.M)
    assert re.search(r"^\| bert +\| tiny-bert +\| cpu@tf4 +\| failed", text, re.M)


def test_a_run_named_latest_and_one_naming_no_stack_share_the_default_column(
    tmp_path: Path,
) -> None:
    old = _on_stack(_record("bert", "tiny-bert", "cpu", "failed"), None, "a")
    new = _on_stack(_record("bert", "tiny-bert", "cpu", "passed"), "latest", "a")
    new["started_at"] = "2026-01-01T00:00:00+00:00"
    write_record(tmp_path, old)
    write_record(tmp_path, new)
    legacy = _record("bert", "tiny-gpt", "cpu", "passed")  # written before records had a stack
    del legacy["stack"]
    write_record(tmp_path, legacy)
    summary = write_report(tmp_path)
    assert [(m["model_id"], m["hardware"], m["status"]) for m in summary["models"]] == [
        ("tiny-bert", "cpu", "passed"), ("tiny-gpt", "cpu", "passed")
    ]  # fmt: skip
    assert list(summary["columns"]) == ["cpu"] and summary["drift"] == []


def test_declared_expectations_are_named_per_model_and_column(tmp_path: Path):
    declared = {"from_pretrained.weights_sha256": "transformers<5.9: ViT's older module names"}
    record = _record("vit", "tiny-vit", "cpu", "passed")
    record["expectations"] = declared
    write_record(tmp_path, record)
    write_record(tmp_path, _record("bert", "tiny-bert", "cpu", "passed"))
    summary = write_report(tmp_path)
    rows = {row["model_id"]: row for row in summary["models"]}
    assert rows["tiny-vit"]["expectations"] == declared
    assert rows["tiny-bert"]["expectations"] == {}
    text = (tmp_path / "summary.md").read_text(encoding="utf-8")
    section = text.split("## Declared expectations", 1)[1]
    assert "from_pretrained.weights_sha256" in section
    assert "transformers<5.9: ViT's older module names" in section
    assert "tiny-bert" not in section.split("##", 1)[0]


def test_oracle_checks_show_value_bound_margin_and_verdict(tmp_path: Path) -> None:
    """A hub model's oracle and published checks: the value beside its bound, the share of
    the bound between them; passed within 20% of the bound is flagged, n/a says why."""
    from hfmatrix.oracle import Bound, bounded, not_applicable

    record = _record("gpt", "gpt2", "cpu", "failed", model_class="GPT2LMHeadModel")
    source = "0.6 x ln V"
    checks = [
        bounded("nll_per_token", 3.4, Bound(6.5, source), "nll/token"),  # 48% inside
        bounded("rank_of_cat", 3, Bound(5, "top 5"), "rank"),  # 40% inside
        bounded("close_call", 6.0, Bound(6.5, source), "nll/token"),  # 8%: near bound
        bounded("iou", 0.2, Bound(0.5, "half the object", below=False), "IoU"),  # failed
        not_applicable("names_paris", "124M parameters: too small for a factual answer"),
    ]
    record["tests"]["oracle"] = {"status": "failed", "checks": [c.as_dict() for c in checks]}
    record["tests"]["published"] = {
        "status": "passed", "source": "transformers tests", "checks": [
            {"name": "greedy_ids", "passed": True, "source": "transformers tests"}
        ],
    }  # fmt: skip
    write_record(tmp_path, record)
    summary = write_report(tmp_path)
    [row] = summary["models"]
    verdicts = {item["check"]: item["verdict"] for item in row["oracle"]}
    assert verdicts == {
        "oracle.nll_per_token": "passed",
        "oracle.rank_of_cat": "passed",
        "oracle.close_call": "near bound",
        "oracle.iou": "failed",
        "oracle.names_paris": "n/a",
        "published.greedy_ids": "passed",
    }
    nll = row["oracle"][0]
    assert (nll["value"], nll["bound"], nll["below"], nll["source"]) == (3.4, 6.5, True, source)
    assert nll["margin"] == pytest.approx((6.5 - 3.4) / 6.5, abs=1e-4)
    assert row["oracle"][3]["margin"] == pytest.approx(-0.6)
    assert summary["oracle_totals"] == {"passed": 3, "near bound": 1, "failed": 1, "n/a": 1}
    markdown = (tmp_path / "summary.md").read_text(encoding="utf-8")
    section = markdown.split("## Class oracles and published values")[1].split("##")[0]
    assert "1 passed within 20% of their bound (NEAR BOUND)" in section
    lines = {line.split("|")[4].strip(): line for line in section.splitlines() if "|" in line}
    assert "| 3.4 " in lines["oracle.nll_per_token"] and "| < 6.5 " in lines["oracle.nll_per_token"]
    assert "| 48% " in lines["oracle.nll_per_token"]
    assert "NEAR BOUND" in lines["oracle.close_call"]
    assert "| >= 0.5 " in lines["oracle.iou"] and "FAILED" in lines["oracle.iou"]
    assert "N/A" in lines["oracle.names_paris"] and "too small" in lines["oracle.names_paris"]
