"""The frozen tiny files on every stack, through real nox sessions: a weight changed in the
committed files fails on each stack, naming it; a pickle-only checkpoint whose payload
would create a file is refused on the oldest stack, and the file never appears."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from families_helpers import FIRST, ROOT, perturb_weight, records_by_model
from faults import project_copy

from hfmatrix.project import Project

pytestmark = pytest.mark.e2e

STACKS = {"bert-tf4": ("tf4", "4.57."), "bert-optimum": ("optimum", "5.5."), "bert": (None, "5.")}


class CreatesFile:
    """Unpickling this calls Path.touch on the marker: code run by torch.load."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def pickle_only_checkpoint(directory: Path, marker: Path) -> Path:
    """A BERT config and a pytorch_model.bin whose payload creates ``marker``."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(
        json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]})
    )
    with open(directory / "pytorch_model.bin", "wb") as file:
        pickle.dump({"bert.embeddings.word_embeddings.weight": CreatesFile(marker)}, file)
    return directory


def run_stacks(tmp: Path) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """The bert session of every stack, on a project whose tiny files have one weight
    changed, with the tiny model and a pickle-only checkpoint."""
    project = project_copy(tmp / "project")
    perturb_weight(project / "tiny" / "bert", "bert.embeddings.word_embeddings.weight", FIRST)
    marker = tmp / "unpickled-code-ran"
    checkpoint = pickle_only_checkpoint(tmp / "pickled-bert", marker)
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOX_")}
    env.update(HFMATRIX_RESULTS_DIR=str(tmp / "results"), HF_HOME=str(tmp / "hf"),
               HF_HUB_OFFLINE="1")  # fmt: skip
    sessions = [f"{name}(hardware='cpu')" for name in STACKS]
    command = [sys.executable, "-m", "nox", "-f", str(project / "noxfile.py"), "--envdir",
               str(tmp / "envs"), "-s", *sessions, "--", "--model", "tiny-bert", "--model",
               str(checkpoint)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    return done, tmp / "results", marker


@pytest.fixture(scope="module")
def stack_runs(once) -> tuple[subprocess.CompletedProcess, Path, Path]:
    return once("stack-sessions", run_stacks)


def test_a_changed_committed_weight_fails_on_every_stack(stack_runs):
    done, results, _ = stack_runs
    assert done.returncode != 0  # the tiny checkpoint failed in every session
    records = [records_by_model(results, session)["tiny-bert"]
               for session in ("bert-cpu", "bert-tf4-cpu", "bert-optimum-cpu")]  # fmt: skip
    seen = {}
    for record in records:
        failed = {c["name"] for t in record["tests"].values() for c in t["checks"]
                  if not c["passed"]}  # fmt: skip
        assert {"weights_sha256", "logits_slice"} <= failed, record["reason"]
        seen[record["environment"]["transformers"][:5]] = record
    assert {version[:4] for version in seen} >= {"4.57", "5.5."}
    assert len(seen) == 3
    for record in seen.values():
        name = record["stack"]["name"]
        assert (
            f"stack {name} (transformers {record['environment']['transformers']}"
            in (record["reason"])
        )


def test_a_pickle_only_checkpoint_is_refused_on_the_oldest_stack(stack_runs):
    _, results, marker = stack_runs
    [record] = [r for r in records_by_model(results, "bert-tf4-cpu").values()
                if r["model_id"].endswith("pickled-bert")]  # fmt: skip
    assert record["environment"]["transformers"].startswith("4.57.")
    assert record["status"] == "skipped"
    assert "only pickle weights (pytorch_model.bin)" in record["reason"]
    assert "--allow-pickle" in record["reason"]
    assert not marker.exists()


def test_a_stack_session_runs_on_its_own_transformers(stack_runs, tmp_path):
    """bert on the tf4 stack, the project as committed: an environment of its own with
    transformers 4.57 (the stack's pin resolved with the family's), where every class's tiny
    checkpoint passes its golden values."""
    envs = stack_runs[1].parent / "envs"  # no other test uses them
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOX_")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    results = tmp_path / "results"
    command = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "--reuse-venv",
               "yes", "--envdir", str(envs), "-s", "bert-tf4(hardware='cpu')", "--", "--model",
               "tiny", "--results-dir", str(results)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    records = records_by_model(results)
    assert len(records) == len(Project(ROOT).tiny_models("bert")) == 9
    for record in records.values():
        assert record["status"] == "passed", (record["model_id"], record.get("reason"))
        assert record["environment"]["transformers"].startswith("4.57"), record["environment"]
    assert (results / "junit" / "bert-tf4-cpu.xml").is_file()
