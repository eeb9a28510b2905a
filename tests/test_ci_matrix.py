"""nox -s matrix (the GitHub Actions matrix of the family sessions) and the workflow using it."""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from faults import project_copy

from hfmatrix.errors import UserError
from hfmatrix.specs import load_hardware_spec

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "matrix.yml"
DEFAULT_RUNNERS = {"cpu": "ubuntu-latest", "openvino": "ubuntu-latest", "cuda": "gpu-cuda",
                   "mps": "macos-14"}  # fmt: skip


def nox(*args: str, noxfile: Path = ROOT / "noxfile.py") -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOX")}
    command = [sys.executable, "-m", "nox", "-f", str(noxfile), *args]
    return subprocess.run(command, cwd=noxfile.parent, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def jobs(*posargs: str) -> list[dict[str, str]]:
    """The matrix's entries; stdout must be exactly one line of JSON."""
    done = nox("-s", "matrix", "--", *posargs)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("\n") and done.stdout.count("\n") == 1, done.stdout
    return json.loads(done.stdout)["include"]


def listed(*args: str) -> list[dict[str, Any]]:
    done = nox("-l", "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The mistake's message: exit 2, nothing on stdout, one line besides nox's own."""
    lines = [line for line in done.stderr.splitlines() if not line.startswith("nox > ")]
    assert (done.returncode, done.stdout, len(lines)) == (2, "", 1), done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def matrix() -> list[dict[str, str]]:
    return jobs()


FAMILIES = sorted(path.stem for path in (ROOT / "env_specs").glob("*.toml"))
STACK_HARDWARE = {"latest": ["cpu", "cuda", "mps", "openvino"], "optimum": ["cpu", "openvino"],
                  "tf4": ["cpu", "cuda", "mps"]}  # fmt: skip


def session_name(family: str, stack: str) -> str:
    return family if stack == "latest" else f"{family}-{stack}"


def test_one_entry_per_family_hardware_stack_session(matrix):
    names = [session_name(f, stack) for stack in STACK_HARDWARE for f in FAMILIES]
    sessions = listed("-s", *names)
    assert len(sessions) == 8 * (4 + 2 + 3) == len(matrix)
    assert [job["session"] for job in matrix] == [s["session"] for s in sessions]
    for job, session in zip(matrix, sessions, strict=True):
        assert session["name"] == session_name(job["family"], job["stack"])
        assert job["hardware"] == session["call_spec"]["hardware"]
        assert job["hardware"] in STACK_HARDWARE[job["stack"]]
        stack = "" if job["stack"] == "latest" else f"{job['stack']}-"
        assert job["artifact"] == f"results-{job['family']}-{stack}{job['hardware']}"
    assert len({job["artifact"] for job in matrix}) == len(matrix)
    assert set(matrix[0]) == {"session", "family", "stack", "hardware", "runs-on", "artifact"}


def test_runner_labels_come_from_the_hardware_specs(matrix):
    specs = {hw: load_hardware_spec(ROOT / "env_specs" / "hardware" / f"{hw}.toml")
             for hw in DEFAULT_RUNNERS}  # fmt: skip
    assert {hw: spec.runner for hw, spec in specs.items()} == DEFAULT_RUNNERS
    assert all(job["runs-on"] == specs[job["hardware"]].runner for job in matrix)


def test_runner_option_overrides_the_spec():
    entries = jobs("--runner", "cuda=my-gpu", "--runner", "cpu=big-cpu")
    runners = {job["hardware"]: job["runs-on"] for job in entries}
    assert runners == {**DEFAULT_RUNNERS, "cuda": "my-gpu", "cpu": "big-cpu"}


def test_the_default_session_list_is_the_default_stack_unchanged():
    hardware = ["cpu", "cuda", "mps", "openvino"]
    names = [f"{family}(hardware={hw!r})" for family in FAMILIES for hw in hardware]
    assert [s["session"] for s in listed()] == [*names, "report"]
    bert = listed("-s", "bert")
    assert [s["session"] for s in bert] == names[:4]
    assert bert[0]["tags"] == ["bert", "latest", "cpu", "latest-cpu"]
    assert "latest stack" in bert[0]["description"]


def test_other_stacks_have_their_own_sessions_and_tags():
    tf4 = {s["session"]: s for s in listed("-t", "tf4")}
    assert len(tf4) == 8 * 3 and not any("openvino" in name for name in tf4)
    assert tf4["bert-tf4(hardware='cpu')"]["tags"] == ["tf4", "tf4-cpu"]
    assert "the tf4 stack" in tf4["bert-tf4(hardware='cpu')"]["description"]
    cpu = listed("-t", "cpu")
    assert [s["session"] for s in cpu] == [f"{family}(hardware='cpu')" for family in FAMILIES]
    assert all("tf4" not in s["tags"] for s in cpu)
    assert [s["session"] for s in listed("-t", "tf4-cpu")] == [
        f"{family}-tf4(hardware='cpu')" for family in FAMILIES
    ]
    optimum = [s["session"] for s in listed("-t", "optimum-openvino", "optimum-cpu")]
    assert len(optimum) == 16 and "vit-optimum(hardware='openvino')" in optimum
    assert [s["session"] for s in listed("-t", "latest-cuda")] == [
        s["session"] for s in listed("-t", "cuda")
    ]


def test_a_stack_s_cpu_jobs():
    tf4 = jobs("-t", "tf4-cpu")
    assert len(tf4) == 8 and {(job["stack"], job["hardware"]) for job in tf4} == {("tf4", "cpu")}
    assert [job["family"] for job in tf4] == FAMILIES
    assert len({job["artifact"] for job in tf4}) == 8
    assert tf4[0]["artifact"] == "results-bert-tf4-cpu"
    assert tf4[0]["session"] == "bert-tf4(hardware='cpu')"
    picked = jobs("bert", "-t", "cpu", "-t", "tf4-cpu", "-t", "optimum-cpu")
    assert [(job["stack"], job["artifact"]) for job in picked] == [
        ("latest", "results-bert-cpu"), ("optimum", "results-bert-optimum-cpu"),
        ("tf4", "results-bert-tf4-cpu"),
    ]  # fmt: skip
    assert [job["session"] for job in jobs("bert-tf4")] == [
        f"bert-tf4(hardware={hw!r})" for hw in STACK_HARDWARE["tf4"]
    ]


def test_tags_select_as_nox_t_does():
    cpu = jobs("-t", "cpu")
    assert len(cpu) == 8 and {job["hardware"] for job in cpu} == {"cpu"}
    assert [job["session"] for job in cpu] == [s["session"] for s in listed("-t", "cpu")]
    assert len(jobs("-t", "cpu", "-t", "openvino")) == 16
    picked = jobs("bert", "gpt", "-t", "cuda")
    assert [job["session"] for job in picked] == ["bert(hardware='cuda')", "gpt(hardware='cuda')"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runner", "cuda"], "argument --runner: 'cuda' is not HW=LABEL"),
        (["--runner", "cuda=a b"], "argument --runner: 'cuda=a b' is not HW=LABEL"),
        (["--runner", "tpu=x"], "error: --runner tpu=x: unknown hardware 'tpu'"),
        (["-t", "nosuch"], "error: unknown tag 'nosuch'"),
        (["nosuch"], "error: unknown family 'nosuch'"),
        (["bert", "-t", "gpt"], "error: no session of bert has a tag gpt"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(args, message):
    assert message in one_line_error(nox("-s", "matrix", "--", *args))


def test_every_matrix_session_name_is_one_nox_accepts(matrix):
    names = [job["session"] for job in matrix]
    assert [s["session"] for s in listed("-s", *names)] == names


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('""', "runner '' is not a runner label"),
        ('"gpu box"', "runner 'gpu box' is not"),
        ("3", "hardware spec.runner must be str"),
    ],
)
def test_runner_key_is_validated_with_file_and_line(tmp_path, value, message):
    path = tmp_path / "cuda.toml"
    path.write_text(f'hardware = "cuda"\ndependencies = []\nrunner = {value}\n')
    with pytest.raises(UserError, match=rf"cuda\.toml:3: {re.escape(message)}"):
        load_hardware_spec(path)
    path.write_text('hardware = "cuda"\ndependencies = []\n')
    assert load_hardware_spec(path).runner == "ubuntu-latest"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace('"cuda"', '"tpu"'), r"tf4\.toml:\d+: unknown hardware 'tpu'"),
        (lambda text: text.replace("<4.58", "<<4.58"), r"tf4\.toml:\d+: invalid requirement"),
        (lambda text: text + "default = true\n",
         r"stacks: exactly one stack must say default = true \(found: latest, tf4\)"),
    ],
)  # fmt: skip
def test_a_bad_stack_stops_nox_in_one_line(tmp_path, edit, message):
    project = project_copy(tmp_path / "project")
    spec = project / "env_specs" / "stacks" / "tf4.toml"
    spec.write_text(edit(spec.read_text()))
    for args in (["-s", "matrix"], ["-l"]):
        assert re.search(message, one_line_error(nox(*args, noxfile=project / "noxfile.py")))


def test_a_bad_runner_key_stops_the_matrix_session(tmp_path):
    project = project_copy(tmp_path / "project")
    spec = project / "env_specs" / "hardware" / "cuda.toml"
    spec.write_text(spec.read_text().replace('runner = "gpu-cuda"', 'runner = "gpu cuda"'))
    message = one_line_error(nox("-s", "matrix", noxfile=project / "noxfile.py"))
    assert re.search(r"cuda\.toml:\d+: runner 'gpu cuda' is not a runner label", message)


# --- .github/workflows/matrix.yml: what it must do (nox -s lint runs actionlint and zizmor) --

PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")  # a commit, not a movable tag
MATRIX_KEY = re.compile(r"(?<![\w.])matrix\.([\w-]+)")


def step(job: dict, predicate) -> dict:
    found = [s for s in job.get("steps", []) if predicate(s)]
    return found[0] if found else {}


def uses(name: str):
    return lambda s: s.get("uses", "").startswith(f"{name}@")


def runs(text: str):
    return lambda s: text in s.get("run", "")


def settings(job: dict, action: str) -> dict:
    return step(job, uses(action)).get("with", {})


def plan_checks(plan: dict) -> dict[str, bool]:
    output = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.matrix \}\}",
                          plan.get("outputs", {}).get("matrix", ""))  # fmt: skip
    script = step(plan, lambda s: bool(output) and s.get("id") == output.group(1)).get("run", "")
    return {"plan: nox -s matrix into $GITHUB_OUTPUT": "nox -s matrix" in script
            and "$GITHUB_OUTPUT" in script}  # fmt: skip


def run_checks(run: dict, entries: list[dict[str, str]]) -> dict[str, bool]:
    keys = set(MATRIX_KEY.findall(yaml.safe_dump(run)))
    strategy, upload = run.get("strategy", {}), settings(run, "actions/upload-artifact")
    return {
        "run needs plan": run.get("needs") in ("plan", ["plan"]),
        "run: matrix": strategy.get("matrix") == "${{ fromJson(needs.plan.outputs.matrix) }}",
        "run: fail-fast off": strategy.get("fail-fast") is False,
        "run: runs-on": run.get("runs-on") == "${{ matrix.runs-on }}",
        "run: matrix keys exist": bool(keys) and all(keys <= set(e) for e in entries),
        "run: python 3.11": settings(run, "actions/setup-python").get("python-version") == "3.11",
        "run: uv cache": settings(run, "astral-sh/setup-uv").get("enable-cache") is True,
        "run: nox[uv]": bool(step(run, runs('install "nox[uv]"'))),
        "run: session": bool(
            step(run, runs("nox -s")).get("env", {}).get("SESSION") == "${{ matrix.session }}"
        ),
        "run: upload": step(run, uses("actions/upload-artifact")).get("if") == "always()"
        and upload == {"name": "${{ matrix.artifact }}", "path": "test_results/"},
    }


def report_checks(report: dict, entries: list[dict[str, str]]) -> dict[str, bool]:
    download = settings(report, "actions/download-artifact")
    pattern = download.get("pattern", "")
    return {
        "report after run, always": report.get("needs") == ["run"]
        and report.get("if") == "always()",
        "report: download": download.get("path") == "artifacts"
        and all(fnmatch.fnmatch(e["artifact"], pattern) for e in entries),
        "report: nox -s report": bool(step(report, runs("nox -s report -- artifacts"))),
        "report: the last run's report as its baseline": bool(
            step(report, runs("gh run download")) and step(report, runs("--fail-on new-failures"))
        ),
        "report: summary": bool(step(report, runs('summary.md >> "$GITHUB_STEP_SUMMARY"'))),
        "report: dashboard": settings(report, "actions/upload-artifact")
        == {"name": "hfmatrix-report", "path": "test_results/"},
    }


READS_RUNS = {"report": {"actions": "read"}}


def workflow_problems(workflow: dict, entries: list[dict[str, str]]) -> list[str]:
    """What is wrong with the workflow for ``entries`` (the matrix nox -s matrix prints)."""
    triggers = workflow.get("on", workflow.get(True)) or {}  # YAML 1.1 reads `on` as true
    jobs_ = workflow.get("jobs", {})
    every_use = [s["uses"] for j in jobs_.values() for s in j.get("steps", []) if "uses" in s]
    checks = {
        "triggers": {"workflow_dispatch", "push", "pull_request"} <= set(triggers),
        "pinned actions": bool(every_use) and all(PINNED.match(u) for u in every_use),
        "no job-wide token": workflow.get("permissions") == {},
        "token per job": all(  # the report job also reads the last run's report
            job.get("permissions") == {"contents": "read"} | READS_RUNS.get(name, {})
            for name, job in jobs_.items()
        ),
        "no credentials kept": all(
            s.get("with", {}).get("persist-credentials") is False
            for j in jobs_.values()
            for s in j.get("steps", [])
            if s.get("uses", "").startswith("actions/checkout@")
        ),
        **plan_checks(jobs_.get("plan", {})),
        **run_checks(jobs_.get("run", {}), entries),
        **report_checks(jobs_.get("report", {}), entries),
    }
    return [name for name, ok in checks.items() if not ok]


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def test_workflow_runs_the_matrix(workflow, matrix):
    assert workflow_problems(workflow, matrix) == []


def test_every_pinned_action_names_its_version():
    lines = [line for line in WORKFLOW.read_text(encoding="utf-8").splitlines() if "uses:" in line]
    assert lines and all(re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line) for line in lines)


def test_the_workflow_s_default_plan_covers_every_stack(workflow):
    select = workflow["jobs"]["plan"]["steps"][-1]["env"]["SELECT"]
    default = re.fullmatch(r"\$\{\{ inputs\.select \|\| '([^']+)' \}\}", select)
    assert default, select
    planned = jobs(*default.group(1).split())
    stacks = {(job["stack"], job["hardware"]) for job in planned}
    assert stacks == {("latest", "cpu"), ("latest", "openvino"), ("tf4", "cpu"),
                      ("optimum", "cpu"), ("optimum", "openvino")}  # fmt: skip
    assert len(planned) == 8 * 5 == len({job["artifact"] for job in planned})


def drop_fail_fast(w: dict) -> None:
    del w["jobs"]["run"]["strategy"]["fail-fast"]


def unknown_matrix_key(w: dict) -> None:
    w["jobs"]["run"]["runs-on"] = "${{ matrix.runner }}"


def report_needs_nothing(w: dict) -> None:
    del w["jobs"]["report"]["needs"]


def floating_action(w: dict) -> None:
    w["jobs"]["plan"]["steps"][0]["uses"] = "actions/checkout@main"


def lost_output(w: dict) -> None:
    w["jobs"]["plan"]["outputs"]["matrix"] = "${{ steps.nosuch.outputs.matrix }}"


@pytest.mark.parametrize(
    "breakage",
    [drop_fail_fast, unknown_matrix_key, report_needs_nothing, floating_action, lost_output],
)
def test_the_workflow_check_bites(workflow, matrix, breakage):
    broken = copy.deepcopy(workflow)
    breakage(broken)
    assert workflow_problems(broken, matrix) != []
