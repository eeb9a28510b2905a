"""End to end through the real nox sessions: environments built by uv, records, the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fake_hub import RENAMED, SERVED, FakeHub
from families_helpers import import_family, records_by_model
from faults import fault_checkpoint, project_copy, truncated_checkpoint, trusted

from hfmatrix import hardware
from hfmatrix.project import Project

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def nox(noxfile: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nox", "-f", str(noxfile), "--reuse-venv", "yes", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)


def isolated_env(tmp: Path) -> dict:
    """This process's environment with results and the HF cache under ``tmp``, offline."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOX_")}
    env.update(
        HFMATRIX_RESULTS_DIR=str(tmp / "results"),
        HF_HOME=str(tmp / "hf"),
        HF_HUB_OFFLINE="1",
    )
    return env


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, dict]:
    """A directory for this module's runs (their environments under envs/, built once) and
    the environment they run in."""
    tmp = tmp_path_factory.mktemp("nox")
    return tmp, isolated_env(tmp)


BERT_SESSIONS = tuple(f"bert(hardware={hw!r})" for hw in ("cpu", "cuda", "openvino", "mps"))
# the family's own class and its default model (each class's tiny checkpoint on openvino is
# an export: tests/test_classes.py covers the classes)
BERT_MODELS = ("--model", "tiny-bert", "--model", "bert-base-uncased")


def run_bert_sessions(tmp: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """Every bert session into one results dir, then the report: one machine's run."""
    env, envs = isolated_env(tmp), ("--envdir", str(tmp / "envs"))
    done = nox(ROOT / "noxfile.py", env, *envs, "-s", *BERT_SESSIONS, "--", *BERT_MODELS)
    if done.returncode == 0:
        done = nox(ROOT / "noxfile.py", env, *envs, "-s", "report")
    return done, tmp


@pytest.fixture(scope="module")
def bert_run(once) -> tuple[subprocess.CompletedProcess, Path]:
    return once("bert-sessions", run_bert_sessions)


def test_bert_sessions_and_report(bert_run):
    done, tmp = bert_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.args[-1] == "report"
    summary = json.loads((tmp / "results" / "summary.json").read_text())
    rows = {(row["model_id"], row["hardware"]): row for row in summary["models"]}
    tiny = rows["tiny-bert", "cpu"]
    assert tiny["status"] == "passed"
    assert tiny["tests"] == {"pipeline": "passed", "from_pretrained": "passed"}
    assert tiny["max_abs_diff"] <= tiny["atol"] == 1e-4
    hub = rows["bert-base-uncased", "cpu"]
    assert hub["status"] == "skipped" and "HF_HUB_OFFLINE" in hub["reason"]
    assert summary["matrix"]["bert"]["cpu"]["status"] == "passed"
    if not hardware.probe("openvino"):  # exported through optimum-intel, against PyTorch fp32
        openvino = rows["tiny-bert", "openvino"]
        assert openvino["status"] == "passed", openvino["reason"]
        assert 0 < openvino["max_abs_diff"] <= openvino["atol"] == 1e-4
        cell = summary["matrix"]["bert"]["openvino"]
        assert cell["reference"] == "PyTorch fp32 on the CPU, computed in the same run"
        assert cell["max_abs_diff"] == openvino["max_abs_diff"]
    for hw in ("cuda", "openvino", "mps"):
        reason = hardware.probe(hw)
        if reason:  # a backend this machine lacks: a recorded skip and no environment
            assert rows["tiny-bert", hw]["status"] == "skipped"
            assert rows["tiny-bert", hw]["reason"] == reason
            assert not (tmp / "envs" / f"bert-hardware-{hw}").exists()
    assert (tmp / "results" / "by_class" / "bert_models.json").is_file()
    assert (tmp / "results" / "by_hardware" / "cpu_results.json").is_file()
    assert "| bert" in (tmp / "results" / "summary.md").read_text()
    coverage = summary["coverage"]["families"]["bert"]  # models.json against these records
    assert coverage["hub_models"] == 9 and coverage["tested_models"] == 1
    assert coverage["passed_models"] == 1


def test_junit_xml_has_one_case_per_model(bert_run):
    _, tmp = bert_run
    cases = ET.parse(tmp / "results" / "junit" / "bert-cpu.xml").getroot().iter("testcase")
    names = sorted(case.get("name") for case in cases)
    assert names == ["TestBertModels[bert-base-uncased-cpu]", "TestBertModels[tiny-bert-cpu]"]


def test_discover_session_then_a_representative_run(workspace, hub):
    """nox -s discover fills a project's models.json from the local Hub; a bert session
    with --representative 1 then runs the tiny checkpoint and the top model of each class."""
    tmp, env = workspace
    copy = project_copy(tmp / "discovering")
    endpoint = hub(FakeHub([dict(model) for model in SERVED], dict(RENAMED)))
    online = {key: value for key, value in env.items() if key != "HF_HUB_OFFLINE"}
    done = nox(copy / "noxfile.py", {**online, "HF_ENDPOINT": endpoint},
               "--envdir", str(tmp / "envs"), "-s", "discover")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "8 discovered models of 6 classes (8 new, 0 gone)" in done.stdout + done.stderr
    results = tmp / "representative"
    args = ("-s", "bert(hardware='cpu')", "--", "--representative", "1")
    done = nox(copy / "noxfile.py", env, "--envdir", str(tmp / "envs"), *args,
               "--results-dir", str(results))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ran = records_by_model(results, "bert-cpu")
    chosen = Project(copy).select_models("bert", [], False, 1)  # each class's tiny and top model
    assert set(ran) == set(chosen) >= {"bert-base-uncased", "distilbert-base-uncased"}
    tiny = [m for m in chosen if Project(copy).models[m].tier == "tiny"]
    assert len(tiny) == len(Project(copy).tiny_models("bert")) and all(
        ran[m]["status"] == "passed" for m in tiny
    )


VOLATILE = ("generated_at", "results_dir", "inputs")


def comparable(summary: dict) -> dict:
    """A summary without what differs between any two runs: when and where it was made."""
    rows = [{k: v for k, v in row.items() if k not in ("started_at", "duration_s")}
            for row in summary["models"]]  # fmt: skip
    return {**{k: v for k, v in summary.items() if k not in VOLATILE}, "models": rows}


def test_the_ci_flow_on_one_machine_merges_to_the_one_machine_report(bert_run, workspace):
    """Each bert session into its own results dir, as separate CI jobs would, then one report
    over them: the same summary as one machine running every session into one dir."""
    _, single = bert_run  # its environments too: no other test uses them
    tmp, env = workspace
    jobs = [tmp / "ci" / f"job-{index}" for index in range(len(BERT_SESSIONS))]
    for session, job in zip(BERT_SESSIONS, jobs, strict=True):
        done = nox(ROOT / "noxfile.py", env, "--envdir", str(single / "envs"), "-s", session,
                   "--", *BERT_MODELS, "--results-dir", str(job))  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    merged = tmp / "ci" / "merged"
    done = nox(ROOT / "noxfile.py", env, "--envdir", str(single / "envs"), "-s", "report", "--",
               *map(str, jobs), "--results-dir", str(merged))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ours, theirs = (
        json.loads((d / "summary.json").read_text()) for d in (merged, single / "results")
    )
    assert comparable(ours) == comparable(theirs)
    assert ours["totals"]["total"] == 8 and ours["inputs"] == [str(job) for job in jobs]
    assert {row["model_id"] for row in ours["models"]} == {"tiny-bert", "bert-base-uncased"}
    assert sorted(p.name for p in (merged / "raw").iterdir()) == [
        "bert-cpu",
        "bert-cuda",
        "bert-mps",
        "bert-openvino",
    ]


def test_report_environment_has_no_torch(bert_run):
    _, tmp = bert_run
    python = tmp / "envs" / "report" / "bin" / "python"
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0


def test_unknown_flag_exits_2_in_one_line(workspace):
    tmp, env = workspace
    done = nox(ROOT / "noxfile.py", env, "--envdir", str(tmp / "envs"),
               "-s", "bert(hardware='cuda')", "--", "--bogus")  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "nox -s bert --: error: unrecognized arguments: --bogus"
    )


def test_invalid_requirement_exits_2_naming_file_and_line(workspace):
    tmp, env = workspace
    copy = project_copy(tmp / "bad-spec")
    spec = copy / "env_specs" / "hardware" / "cpu.toml"
    spec.write_text(spec.read_text().replace('"torch>=2.4"', '"torch>>2.4"'))
    done = nox(
        copy / "noxfile.py", env, "--envdir", str(tmp / "envs2"), "-s", "bert(hardware='cpu')"
    )
    assert done.returncode == 2
    assert f"{spec}:3: invalid requirement 'torch>>2.4'" in done.stderr.strip().splitlines()[-1]


PERF = ("--performance", "--perf-warmup", "1", "--perf-iterations", "3", "--perf-duration",
        "0.1", "--perf-batch-size", "2")  # fmt: skip


def test_posargs_reach_the_run_and_failed_extras_are_an_error_record(workspace):
    """A model whose additional_deps fail to install is its error record; the others run,
    with the session's arguments (the performance settings) reaching them."""
    tmp, env = workspace
    copy = project_copy(tmp / "bad-extras")
    overrides = {"bert-base-uncased": {"additional_deps": ["packaging<0"]}}
    (copy / "overrides.json").write_text(json.dumps(overrides))
    results = tmp / "extras-results"
    done = nox(copy / "noxfile.py", env, "--envdir", str(tmp / "envs"), "-s",
               "bert(hardware='cpu')", "--", "--results-dir", str(results), *PERF)  # fmt: skip
    assert done.returncode == 1
    records = records_by_model(results, "bert-cpu")
    hub = records["bert-base-uncased"]
    assert hub["status"] == "error" and "packaging<0" in hub["reason"]
    assert records["tiny-bert"]["status"] == "passed"
    block = records["tiny-bert"]["performance"]
    assert block["settings"] == {"warmup": 1, "iterations": 3, "duration_s": 0.1,
                                 "batch_size": 2, "new_tokens": 32}  # fmt: skip
    assert block["targets"]["forward"]["latency"]["count"] >= 3


def test_hanging_crashing_and_corrupt_models_are_recorded_and_the_rest_kept(workspace, built_tiny):
    """The issue's acceptance run: the tiny model plus one model that hangs, one that
    segfaults (both through their own code, allowed) and one truncated checkpoint."""
    tmp, env = workspace
    tiny = built_tiny(import_family("bert"))
    hang = fault_checkpoint(tiny, tmp / "faults" / "hang", "hang")
    crash = fault_checkpoint(tiny, tmp / "faults" / "crash", "segfault")
    corrupt = truncated_checkpoint(tiny, tmp / "faults" / "corrupt")
    copy = project_copy(tmp / "fault-project", trusted(hang, crash))
    results = tmp / "fault-results"
    models = [arg for m in ("tiny-bert", hang, crash, corrupt) for arg in ("--model", str(m))]
    done = nox(copy / "noxfile.py", env, "--envdir", str(tmp / "envs"),
               "-s", "bert(hardware='cpu')", "--", *models, "--allow-remote-code",
               "--timeout", "15", "--results-dir", str(results))  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    record = records_by_model(results, "bert-cpu")
    assert record["tiny-bert"]["status"] == "passed"
    hung = record[str(hang)]
    assert hung["status"] == "timeout" and "--timeout" in hung["reason"]
    assert "misbehave" in "\n".join(hung["crash"]["output_tail"])
    crashed = record[str(crash)]
    assert crashed["status"] == "error" and crashed["crash"]["signal"] == "SIGSEGV"
    assert "Segmentation fault" in "\n".join(crashed["crash"]["output_tail"])
    broken = record[str(corrupt)]
    assert broken["status"] == "error" and "SafetensorError" in broken["reason"]
    # every model's process forked from the session's (torch imported once)
    assert {r["environment"]["process"]["method"] for r in record.values()} == {"fork"}
    cases = ET.parse(results / "junit" / "bert-cpu.xml").getroot().iter("testcase")
    assert len(list(cases)) == 4

    done = nox(copy / "noxfile.py", env, "--envdir", str(tmp / "envs"),
               "-s", "report", "--", "--results-dir", str(results))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    totals = json.loads((results / "summary.json").read_text())["totals"]
    assert (totals["passed"], totals["timeout"], totals["error"]) == (1, 1, 2)


def test_prepared_machine_runs_in_the_current_environment_after_checking_it(workspace):
    """nox --no-venv: no environment is built; the installed stack is checked against the
    env specs first (this suite's environment has the cpu stack, not optimum-intel)."""
    tmp, env = workspace
    env = dict(env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    results = tmp / "prepared"
    done = nox(ROOT / "noxfile.py", env, "--no-venv", "-s", "bert(hardware='cpu')",
               "bert(hardware='openvino')", "--", "--model", "tiny",
               "--results-dir", str(results))  # fmt: skip
    assert done.returncode == 1  # the openvino session: its stack is not installed here
    assert "transformers>=5,<6" in done.stdout and "satisfied" in done.stdout
    assert (
        "error: this environment does not satisfy env_specs/bert.toml, "
        "env_specs/hardware/openvino.toml and env_specs/stacks/latest.toml: "
        "optimum-intel[openvino]>=2.2 (not installed)"
    ) in done.stdout + done.stderr  # nox passes the command's stderr on with its stdout
    record = records_by_model(results, "bert-cpu")["tiny-bert"]
    assert record["status"] == "passed"
    assert record["environment"]["packages"]["hfmatrix"]
    assert not (results / "raw" / "bert-openvino").exists()
