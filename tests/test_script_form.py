"""The script form from a Python without the family's packages: --help and mistakes are
answered without torch, a bare Python is told the set-up step, and a Python with nox (the
README's set-up) runs the same arguments in the family's nox session."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import packaging
import pytest
from families_helpers import ROOT, records_by_model
from faults import project_copy

from hfmatrix.script import nox_command, without_hardware

SCRIPT = ROOT / "families" / "test_hf_bert.py"


def bare_python(root: Path, with_packaging: bool = False) -> Path:
    """A virtualenv with nothing installed (optionally packaging, nox's dependency)."""
    venv.create(root, with_pip=False)
    python = root / "bin" / "python"
    if with_packaging:
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        shutil.copytree(Path(packaging.__file__).parent, Path(purelib) / "packaging")
    return python


def script(python: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)  # fmt: skip


def test_help_and_mistakes_need_no_torch(tmp_path):
    python = bare_python(tmp_path / "env", with_packaging=True)
    shown = script(python, "--help")
    assert shown.returncode == 0 and shown.stdout.startswith("usage: test_hf_bert.py")
    assert "--model ID" in shown.stdout and shown.stderr == ""
    wrong = script(python, "--bogus")
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == "test_hf_bert.py: error: unrecognized arguments: --bogus"
    unknown = script(python, "--hardware", "quantum")
    assert unknown.returncode == 2 and "quantum" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_without_nox_the_set_up_step_is_named_in_one_line(tmp_path):
    python = bare_python(tmp_path / "env", with_packaging=True)
    done = script(python, "--model", "tiny")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        "error: this Python has neither the bert family's packages nor nox to build their "
        'environment: run the README\'s set-up step (python3 -m pip install "nox[uv]")'
    )


def test_a_bare_python_is_named_the_set_up_step(tmp_path):
    done = script(bare_python(tmp_path / "env"), "--model", "tiny")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: this Python lacks packaging, which the harness needs to read the project: "
        'run the README\'s set-up step (python3 -m pip install "nox[uv]")'
    )


def test_the_nox_command_picks_the_session_by_hardware():
    from hfmatrix.project import Project

    project = Project(ROOT)
    argv = ["--model", "tiny", "--hardware", "cpu", "--hardware=openvino", "--resume"]
    command = nox_command(project, "bert", "latest", ["cpu", "openvino"], False, argv)
    assert command[1:5] == ["-m", "nox", "-f", str(ROOT / "noxfile.py")]
    sessions, rest = command[6 : command.index("--")], command[command.index("--") + 1 :]
    assert sessions == ["bert(hardware='cpu')", "bert(hardware='openvino')"]
    assert rest == ["--model", "tiny", "--resume"]
    every = nox_command(project, "bert", "tf4", [], True, ["--all-hardware"])
    assert every[6 : every.index("--")] == ["bert-tf4"] and every[-1] == "--"
    assert without_hardware(["--all-hardware", "--hardware", "cuda", "--dtype", "float16"]) == [
        "--dtype",
        "float16",
    ]


def python_with_nox() -> Path | None:
    """The interpreter this test environment was made from, where it has nox and no torch
    (the README's set-up step on a fresh machine)."""
    base = Path(sys._base_executable)
    check = "import importlib.util as u; print(*(bool(u.find_spec(m)) for m in ('nox', 'torch')))"
    done = subprocess.run([str(base), "-c", check], capture_output=True, text=True)
    return base if done.stdout.split() == ["True", "False"] else None


@pytest.mark.e2e
def test_a_python_with_only_nox_runs_the_script_in_the_family_s_environment(isolated):
    python = python_with_nox()
    if python is None:
        pytest.skip(f"{sys._base_executable} has torch or lacks nox: not a fresh machine's Python")
    project = project_copy(isolated / "project")
    out = isolated / "results"
    done = subprocess.run(
        [str(python), str(project / "families" / "test_hf_bert.py"), "--model", "tiny",
         "--results-dir", str(out)],
        capture_output=True, text=True, timeout=900, cwd=isolated,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    first = done.stdout.splitlines()[0]
    assert first.startswith("test_hf_bert.py: this Python lacks ") and "torch" in first
    assert first.endswith("-s \"bert(hardware='cpu')\" -- --model tiny --results-dir " + str(out))
    record = records_by_model(out)["tiny-bert"]
    assert record["status"] == "passed"
    assert record["environment"]["process"]["method"] == "fork"
    assert (project / ".nox" / "bert-hardware-cpu" / "bin" / "python").is_file()  # built there
