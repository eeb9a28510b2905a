"""`hfmatrix report DIR ...`: result trees of many jobs merged into one, keyed by (family,
model, column, environment); the newest run of a key is current, older runs are history;
unreadable files are named and skipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hfmatrix import results
from hfmatrix.commands import main
from hfmatrix.report import write_report
from hfmatrix.results import new_record, write_record


def record(
    model_id: str = "tiny-bert",
    hardware: str = "cpu",
    status: str = "passed",
    *,
    started: str = "2026-01-01T00:00:00+00:00",
    host: str = "runner-1",
    fingerprint: str = "aaaa",
    family: str = "bert",
) -> dict[str, Any]:
    rec = new_record(family, "BertForMaskedLM", model_id, "tiny", hardware)
    test = {"status": status, "duration_s": 0.1, "checks": []}
    rec.update(
        status=status,
        started_at=started,
        tests={"pipeline": dict(test), "from_pretrained": dict(test)},
        numerics={"reference": "cpu-fp32", "max_abs_diff": 1e-6, "atol": 1e-4},
        environment={"python": "3.11.7", "torch": "2.15.0", "transformers": "5.24.0",
                     "platform": "Linux", "host": host, "fingerprint": fingerprint},
    )  # fmt: skip
    return rec


def tree(root: Path, *records: dict[str, Any]) -> Path:
    for rec in records:
        write_record(root, rec)
    return root


def files(root: Path, part: str) -> list[str]:
    return sorted(str(p.relative_to(root / part)) for p in (root / part).glob("*/*.json"))


def test_newest_run_of_a_key_wins_and_the_older_is_history(tmp_path):
    old = tree(tmp_path / "job-1", record(started="2026-01-01T00:00:00+00:00", status="failed"))
    new = tree(tmp_path / "job-2", record(started="2026-01-02T00:00:00+00:00", host="runner-2"))
    out = tmp_path / "merged"
    summary = write_report(out, inputs=[old, new])
    assert files(out, "raw") == ["bert-cpu/tiny-bert@aaaa.json"]
    assert files(out, "history") == ["bert-cpu/tiny-bert@aaaa~runner-1~20260101T0000000000.json"]
    current = json.loads((out / "raw" / "bert-cpu" / "tiny-bert@aaaa.json").read_text())
    assert (current["status"], current["environment"]["host"]) == ("passed", "runner-2")
    assert summary["totals"]["total"] == 1 and summary["history"] == 1
    row = summary["models"][0]
    assert (row["status"], row["host"], row["environment"], row["history"]) == (
        "passed", "runner-2", "aaaa", 1
    )  # fmt: skip
    assert summary["inputs"] == [str(old), str(new)]


def test_different_environments_are_different_keys(tmp_path):
    one = tree(tmp_path / "a", record(fingerprint="aaaa"))
    two = tree(tmp_path / "b", record(fingerprint="bbbb", status="failed", host="gpu-box"))
    summary = write_report(tmp_path / "merged", inputs=[one, two])
    assert [(r["environment"], r["status"]) for r in summary["models"]] == [
        ("aaaa", "passed"), ("bbbb", "failed")
    ]  # fmt: skip
    assert summary["matrix"]["bert"]["cpu"]["counts"] == {"passed": 1, "failed": 1}
    assert summary["environments"]["bbbb"]["hosts"] == ["gpu-box"]
    assert summary["environments"]["aaaa"]["sessions"] == ["bert-cpu"]
    assert summary["history"] == 0


def test_merging_again_changes_nothing(tmp_path):
    jobs = [
        tree(tmp_path / "j1", record(started="2026-01-01T00:00:00+00:00")),
        tree(tmp_path / "j2", record(started="2026-01-02T00:00:00+00:00", host="h2"),
             record("tiny-gpt", family="gpt")),
    ]  # fmt: skip
    out = tmp_path / "merged"
    write_report(out, inputs=jobs)
    before = {p: p.read_bytes() for p in out.rglob("*.json") if "summary" not in p.name}
    summary = write_report(out, inputs=jobs)
    after = {p: p.read_bytes() for p in out.rglob("*.json") if "summary" not in p.name}
    assert after == before and summary["history"] == 1 and summary["totals"]["total"] == 2
    assert write_report(out)["history"] == 1  # the merged tree alone reports the same


def with_log(root: Path, rec: dict[str, Any], text: str) -> dict[str, Any]:
    """``rec`` with a log in ``root``'s logs/, where the runner puts it."""
    log = root / "logs" / "bert-cpu" / "tiny-bert@aaaa.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(text)
    return {**rec, "log": str(log)}


def test_a_newer_job_moves_the_trees_own_record_to_history(tmp_path):
    out, job = tmp_path / "test_results", tmp_path / "job"
    tree(out, with_log(out, record(started="2026-01-01T00:00:00+00:00"), "old run\n"))
    tree(job, with_log(job, record(started="2026-02-01T00:00:00+00:00", host="ci"), "new\n"))
    write_report(out, inputs=[job])
    assert len(files(out, "raw")) == 1 and len(files(out, "history")) == 1
    current = json.loads((out / "raw" / "bert-cpu" / "tiny-bert@aaaa.json").read_text())
    assert current["environment"]["host"] == "ci"
    assert Path(current["log"]).read_text() == "new\n"
    (older,) = (out / "history" / "bert-cpu").glob("*.json")
    assert Path(json.loads(older.read_text())["log"]).read_text() == "old run\n"


def test_a_corrupt_record_is_named_and_skipped_and_the_rest_kept(tmp_path, capsys):
    job = tree(tmp_path / "job", record(), record("tiny-gpt", family="gpt"))
    broken = job / "raw" / "bert-cpu" / "half.json"
    broken.write_text('{"schema": "hfmatrix.record/1", "family": "be')
    summary = write_report(tmp_path / "merged", inputs=[job])
    assert summary["totals"]["total"] == 2
    assert summary["unreadable"] == [{"path": str(broken.resolve()),
                                      "error": "invalid JSON: Unterminated string starting "
                                               "at (line 1)"}]  # fmt: skip
    assert f"skipping {broken.resolve()}" in capsys.readouterr().err


def test_logs_travel_with_their_records(tmp_path):
    job = tmp_path / "job"
    rec = record()
    log = job / "logs" / "bert-cpu" / "tiny-bert@aaaa.log"
    log.parent.mkdir(parents=True)
    log.write_text("the test process said this\n")
    rec["log"] = "/home/runner/work/test_results/logs/bert-cpu/tiny-bert@aaaa.log"  # elsewhere
    tree(job, rec)
    out = tmp_path / "merged"
    write_report(out, inputs=[job])
    merged = json.loads((out / "raw" / "bert-cpu" / "tiny-bert@aaaa.json").read_text())
    assert Path(merged["log"]).read_text() == "the test process said this\n"
    assert Path(merged["log"]).is_relative_to(out.resolve())


def test_the_command_takes_trees_or_a_folder_of_artifacts(tmp_path, monkeypatch, capsys):
    artifacts = tmp_path / "artifacts"
    tree(artifacts / "results-bert-cpu", record())
    tree(artifacts / "results-gpt-cpu", record("tiny-gpt", family="gpt"))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "merged"
    assert main(["report", str(artifacts), "--results-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"merging {artifacts / 'results-bert-cpu'}" in printed and "passed 2" in printed
    assert len(files(out, "raw")) == 2
    assert main(["report", str(tmp_path / "nothing-here"), "--results-dir", str(out)]) == 2
    assert "no such result tree" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--results-dir", str(out)]) == 2
    assert "not a result tree: no raw/" in capsys.readouterr().err


@pytest.mark.parametrize("twice", [False, True])
def test_the_same_run_in_two_trees_is_one_run(tmp_path, twice):
    rec = record()
    one, two = tree(tmp_path / "one", rec), tree(tmp_path / "two", rec)
    summary = write_report(tmp_path / "merged", inputs=[one, two] if twice else [one])
    assert summary["totals"]["total"] == 1 and summary["history"] == 0


def on_stack(rec: dict[str, Any], name: str | None) -> dict[str, Any]:
    """``rec`` as its run on stack ``name`` (HFMATRIX_STACK) writes it."""
    rec = {**rec, "stack": {"name": name, "label": f"transformers of {name}", "versions": {}}}
    other = results.stack_name(rec)
    return {**rec, "session": results.session_name(rec["family"], rec["hardware"], None, other)}


def test_two_stacks_are_two_keys_even_in_one_environment(tmp_path):
    """Records of two stacks never share a cell or a history chain, even where their
    environments' fingerprints match."""
    old = on_stack(record(started="2026-01-01T00:00:00+00:00"), None)
    tf4 = on_stack(record(started="2026-01-02T00:00:00+00:00", status="failed"), "tf4")
    latest = on_stack(record(started="2026-01-03T00:00:00+00:00", host="h2"), "latest")
    summary = write_report(tmp_path / "merged", inputs=[tree(tmp_path / "a", old, tf4),
                                                        tree(tmp_path / "b", latest)])  # fmt: skip
    assert [(m["hardware"], m["stack"], m["status"]) for m in summary["models"]] == [
        ("cpu", "latest", "passed"), ("cpu@tf4", "tf4", "failed")
    ]  # fmt: skip
    assert summary["history"] == 1  # the older default-stack run, not the tf4 one
    assert summary["models"][0]["history"] == 1 and summary["models"][1]["history"] == 0
    assert set(summary["matrix"]["bert"]) == {"cpu", "cpu@tf4"}
    assert files(tmp_path / "merged", "raw") == ["bert-cpu/tiny-bert@aaaa.json",
                                                 "bert-tf4-cpu/tiny-bert@aaaa.json"]  # fmt: skip
