"""Fault injection: each model's tests run in a watched child process, so a model that exits,
is killed, allocates without end or hangs costs only its own record; a session killed
mid-run keeps every finished record; --resume reuses passing records; concurrent writers
never leave a torn file."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from families_helpers import import_family, records_by_model
from faults import fault_checkpoint, project_copy, trusted

from hfmatrix import results
from hfmatrix.forking import CHILD_NAME, FORK, start_for
from hfmatrix.isolation import exit_reason
from hfmatrix.project import Project
from hfmatrix.runner import RunSettings, reusable, run_model

FAMILY = "bert"


@pytest.fixture
def bert():
    return import_family("bert")


def settings(out: Path, **options) -> RunSettings:
    return RunSettings(results_dir=out, allow_remote_code=True, **options)


def test_faulty_models_cost_only_their_own_records(bert, tiny, isolated):
    """Four models at once in one session directory: a crash, a SIGKILL, a runaway
    allocation (stopped by --max-memory) and the tiny checkpoint, which still passes."""
    exits = fault_checkpoint(tiny, isolated / "exits", "exit", on_instance=2)
    killed = fault_checkpoint(tiny, isolated / "killed", "sigkill")
    hog = fault_checkpoint(tiny, isolated / "hog", "allocate")
    project = Project(project_copy(isolated / "project", trusted(exits, killed, hog)))
    out = isolated / "results"
    run = settings(out, max_memory_gib=2.0, timeout_s=300)
    models = ["tiny", str(exits), str(killed), str(hog)]
    with ThreadPoolExecutor(len(models)) as pool:
        outcomes = list(
            pool.map(lambda m: run_model(bert.TestBertModels, project, m, "cpu", run), models)
        )
    tiny_record, exit_record, kill_record, hog_record = (o.record for o in outcomes)
    assert tiny_record["status"] == "passed", tiny_record["reason"]

    assert exit_record["status"] == "error"
    assert exit_record["reason"] == "the test process exited with status 7 before finishing"
    assert exit_record["crash"]["returncode"] == 7
    assert "pipeline" in exit_record["tests"]  # finished before the crash: kept
    assert "from_pretrained" not in exit_record["tests"]

    assert kill_record["status"] == "error"
    assert kill_record["crash"]["signal"] == "SIGKILL"
    assert "out-of-memory killer" in kill_record["reason"]

    assert hog_record["status"] == "error"
    assert "over the --max-memory limit of 2.00 GiB" in hog_record["reason"]
    assert hog_record["crash"]["signal"] == "SIGKILL"

    for outcome in outcomes:  # every record on disk, whole, as returned
        assert json.loads(outcome.path.read_text()) == json.loads(json.dumps(outcome.record))
        assert Path(outcome.record["log"]).is_file()
        assert outcome.record["environment"]["fingerprint"]
    assert not list(out.rglob(".*.tmp"))


def test_a_hang_is_a_timeout_record_with_the_stacks_where_it_hung(bert, tiny, isolated):
    hang = fault_checkpoint(tiny, isolated / "hang", "hang")
    project = Project(project_copy(isolated / "project", trusted(hang)))
    start = time.monotonic()
    # forked, the child hangs at once; a fresh interpreter (where earlier tests left thread
    # pools in this process) first imports torch
    limit = 15 if start_for("cpu").method == FORK else 40
    outcome = run_model(bert.TestBertModels, project, str(hang), "cpu",
                        settings(isolated / "results", timeout_s=limit))  # fmt: skip
    assert time.monotonic() - start < limit + 10
    record = outcome.record
    assert record["status"] == "timeout"
    assert record["reason"].startswith(f"no result within {limit} s (--timeout); killed")
    tail = "\n".join(record["crash"]["output_tail"])
    assert "modeling_fault.py" in tail and "misbehave" in tail  # faulthandler's stack dump
    assert json.loads(outcome.path.read_text())["status"] == "timeout"


def test_a_model_error_before_the_tests_is_recorded_without_a_child(bert, isolated):
    """Policy and availability are decided in the session's process: no child is started."""
    project = Project(project_copy(isolated / "project"))
    start = time.monotonic()
    outcome = run_model(bert.TestBertModels, project, "bert-base-uncased", "cpu",
                        settings(isolated / "results"))  # fmt: skip
    assert time.monotonic() - start < 5  # a child alone needs longer to import torch
    assert outcome.record["status"] == "skipped"
    assert "HF_HUB_OFFLINE" in outcome.record["reason"]
    assert "log" not in outcome.record


def run_script(project: Path, *args: str, **popen) -> subprocess.Popen:
    script = project / "families" / "test_hf_bert.py"
    return subprocess.Popen([sys.executable, str(script), *args], text=True, **popen)


def children_running(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "name"]):
        command = " ".join(process.info["cmdline"] or [])
        child = "hfmatrix.child" in command or process.info["name"] == CHILD_NAME  # fresh, forked
        if child and marker in command:
            found.append(process)
    return found


def test_a_killed_session_keeps_finished_records_and_leaves_no_child(bert, tiny, isolated):
    hang = fault_checkpoint(tiny, isolated / "hang", "hang")
    project = project_copy(isolated / "project", trusted(hang))
    out = isolated / "results"
    session = run_script(project, "--model", "tiny-bert", "--model", str(hang),
                         "--allow-remote-code", "--results-dir", str(out),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 240
    while not ("tiny-bert" in records_by_model(out) and children_running(str(hang))):
        assert session.poll() is None, session.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.5)
    session.send_signal(signal.SIGKILL)
    session.wait()
    assert records_by_model(out)["tiny-bert"]["status"] == "passed"
    assert not list((out / "raw").rglob(".*.tmp"))
    deadline = time.monotonic() + 10
    while children_running(str(hang)):  # the orphaned child ends itself
        assert time.monotonic() < deadline, "the child outlived its killed session"
        time.sleep(0.5)

    # the next session resumes from the kept record (here in this process: same environment)
    resumed = run_model(bert.TestBertModels, Project(project), "tiny", "cpu",
                        settings(out, resume=True))  # fmt: skip
    assert resumed.resumed and resumed.record["status"] == "passed"


def test_resume_reuses_only_a_passing_record_of_the_same_environment_and_request(
    bert, tiny_record, isolated
):
    project = Project(project_copy(isolated / "project"))
    out = isolated / "results"
    passed = tiny_record(bert)
    path = results.write_record(out, passed)
    test = bert.TestBertModels("tiny", project)
    blank = dict(test.new_record("cpu"), environment=results.environment())
    assert reusable(path, blank) == passed

    start = time.monotonic()
    outcome = run_model(bert.TestBertModels, project, "tiny", "cpu", settings(out, resume=True))
    assert outcome.resumed and outcome.record == passed
    assert time.monotonic() - start < 5  # no child process

    assert reusable(path, dict(blank, revision=passed["revision"])) == passed
    assert reusable(path, dict(blank, revision="f" * 40)) is None  # the commit moved on
    assert reusable(path, dict(blank, model_id="other")) is None
    assert reusable(path, dict(blank, hardware="cuda")) is None
    for change in (
        lambda r: r.update(status="failed"),
        lambda r: r["environment"].update(fingerprint="0" * 16),
        lambda r: r["request"].update(code="0" * 16),
        lambda r: r["request"].update(trust_remote_code=True),
        lambda r: r["request"].update(device="another device"),
    ):
        changed = json.loads(json.dumps(passed))
        change(changed)
        results.write_record(out, changed)
        assert reusable(path, blank) is None
    path.write_text('{"status": "pass')  # torn by hand: not reusable, not a crash
    assert reusable(path, blank) is None


def hammer(path: str, value: int, count: int) -> None:
    from hfmatrix.files import atomic_write_text

    for i in range(count):
        atomic_write_text(Path(path), json.dumps({"writer": value, "i": i, "pad": "x" * 50000}))


def test_concurrent_writers_of_one_record_never_leave_a_torn_file(tmp_path):
    path = tmp_path / "raw" / "bert-cpu" / "tiny-bert@0123456789abcdef.json"
    hammer(str(path), -1, 1)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=hammer, args=(str(path), n, 200)) for n in range(3)]
    for writer in writers:
        writer.start()
    reads = 0
    while any(w.is_alive() for w in writers):
        assert json.loads(path.read_text())["pad"] == "x" * 50000  # whole, every time
        reads += 1
    assert all(w.exitcode == 0 for w in writers) and reads > 10
    assert os.listdir(path.parent) == [path.name]


def test_concurrent_sessions_into_one_results_dir_keep_every_record(isolated):
    """Two sessions at once into one results dir, both writing tiny-bert's record."""
    project = project_copy(isolated / "project")
    out = isolated / "results"
    runs = [
        run_script(project, *args, "--results-dir", str(out), stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT)
        for args in (["--model", "tiny-bert"], ["--model", "bert-base-uncased", "--model",
                                                "tiny-bert"])
    ]  # fmt: skip
    for run in runs:
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, output
    records = records_by_model(out)
    assert {model: r["status"] for model, r in records.items()} == {
        "tiny-bert": "passed",
        "bert-base-uncased": "skipped",
    }
    assert len([p for p in (out / "raw").rglob("*") if p.is_file()]) == 2


def test_exit_reasons_name_the_signal_or_the_uncaught_exception():
    assert exit_reason(-11) == "the test process died of SIGSEGV (signal 11)"
    assert exit_reason(-9).startswith("the test process was killed by SIGKILL")
    output = "Traceback (most recent call last):\n  File x\nImportError: no torchvision\n"
    assert exit_reason(1, output) == (
        "the test process exited with status 1 before finishing: ImportError: no torchvision"
    )
    assert exit_reason(7, "some warning: ignored\n") == (
        "the test process exited with status 7 before finishing"
    )
    assert exit_reason(0) == "the test process exited without writing its record"
