"""Result records (slugs, atomic writes, environment) and the torch-free hardware probes."""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

import pytest

from hfmatrix import hardware, results
from hfmatrix.errors import UserError
from hfmatrix.results import (
    STATUSES,
    environment,
    new_record,
    outcome_record,
    record_path,
    slug,
    write_record,
)

FINGERPRINT = "0123456789abcdef"


def record(model_id: str = "bert-base-uncased", **changes) -> dict:
    rec = new_record("bert", "BertForMaskedLM", model_id, "hub", "cpu")
    rec.update(environment={"fingerprint": FINGERPRINT}, **changes)
    return rec


def hashed(readable: str, model_id: str) -> str:
    """The slug of a model id that is not a plain Hub id: readable part and a short hash."""
    import hashlib

    return f"{readable}-{hashlib.sha256(model_id.encode()).hexdigest()[:8]}"


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def fake_dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def fake_smi(tmp_path: Path, monkeypatch, body: str) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")


# --- slugs and paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("bert-base-uncased", "bert-base-uncased"),
        ("meta-llama/Llama-2-7b-hf", "meta-llama--Llama-2-7b-hf"),
        ("google/vit-base-patch16-224", "google--vit-base-patch16-224"),
        ("/abs/path/dir", hashed("abs--path--dir", "/abs/path/dir")),
        ("/abs/path/dir/", hashed("abs--path--dir", "/abs/path/dir/")),
        ("a b:c", hashed("a--b--c", "a b:c")),
        ("///", hashed("model", "///")),
        ("", hashed("model", "")),
    ],
)
def test_slug(model_id, expected):
    assert slug(model_id) == expected


@pytest.mark.parametrize("model_id", ["../../etc/passwd", "a/../../b", "..", "x\\y"])
def test_record_path_stays_in_session_dir(tmp_path, model_id):
    path = record_path(tmp_path, record(model_id))
    assert path.parent == tmp_path / "raw" / "bert-cpu"
    assert "/" not in slug(model_id) and "\\" not in slug(model_id)


def test_record_path(tmp_path):
    rec = record("meta-llama/Llama-2-7b-hf")
    expected = tmp_path / "raw" / "bert-cpu" / f"meta-llama--Llama-2-7b-hf@{FINGERPRINT}.json"
    assert record_path(tmp_path, rec) == expected


@pytest.mark.parametrize(
    ("one", "other"),
    [("/data/a b", "/data/a/b"), ("/x/a--b", "/x/a/b"), ("a--b/c", "a/b--c"), ("A", "/A")],
)
def test_two_models_never_share_a_record_file(one, other):
    assert slug(one) != slug(other)


def test_a_very_long_path_gets_a_short_name():
    name = slug("/very" * 200)
    assert len(name) <= 80 + 9 and name != slug("/very" * 199)


def test_new_record_has_schema_keys():
    rec = record()
    keys = {"schema", "family", "model_class", "model_id", "tier", "hardware", "status"}
    keys |= {"reason", "tests", "numerics", "environment", "started_at", "duration_s"}
    assert keys <= rec.keys()
    assert rec["schema"] == results.SCHEMA
    assert rec["session"] == "bert-cpu"
    assert rec["status"] in STATUSES


# --- writing ---------------------------------------------------------------------------------


def test_write_record_round_trips(tmp_path):
    rec = record("meta-llama/Llama-2-7b-hf", status="passed", tests={"pipeline": {"ok": 1}})
    path = write_record(tmp_path, rec)
    assert path == tmp_path / "raw" / "bert-cpu" / f"meta-llama--Llama-2-7b-hf@{FINGERPRINT}.json"
    assert json.loads(path.read_text(encoding="utf-8")) == rec
    assert files_under(tmp_path) == [f"raw/bert-cpu/meta-llama--Llama-2-7b-hf@{FINGERPRINT}.json"]


def test_write_record_overwrites_and_serialises_odd_values(tmp_path):
    write_record(tmp_path, record(status="failed"))
    path = write_record(tmp_path, record(status="passed", checkpoint=tmp_path))
    data = json.loads(path.read_text())
    assert data["status"] == "passed"
    assert data["checkpoint"] == str(tmp_path)
    assert files_under(tmp_path) == [f"raw/bert-cpu/bert-base-uncased@{FINGERPRINT}.json"]


@pytest.mark.parametrize("status", ["ok", "PASSED", "", None])
def test_write_record_rejects_bad_status(tmp_path, status):
    with pytest.raises(ValueError, match="bad status"):
        write_record(tmp_path, record(status=status))
    assert not (tmp_path / "raw").exists()


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = write_record(tmp_path, record(status="passed"))
    before = path.read_bytes()
    broken = record(status="failed")
    broken["tests"]["loop"] = broken  # json.dump raises ValueError: circular reference
    with pytest.raises(ValueError):
        write_record(tmp_path, broken)
    assert path.read_bytes() == before
    assert files_under(tmp_path) == [f"raw/bert-cpu/bert-base-uncased@{FINGERPRINT}.json"]


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_is_writable(tmp_path, status):
    assert json.loads(write_record(tmp_path, record(status=status)).read_text())["status"] == status


# --- environment and skipped records ---------------------------------------------------------


def test_environment_contents_and_stable_fingerprint():
    first, second = environment(), environment()
    assert {"python", "platform", "packages", "fingerprint", "torch", "transformers"} <= set(first)
    assert first["python"].count(".") == 2
    assert first["packages"]["pytest"] == metadata.version("pytest")
    assert list(first["packages"]) == sorted(first["packages"])
    assert len(first["fingerprint"]) == 16
    assert first["fingerprint"] == second["fingerprint"]
    assert first["device"] == {}
    assert environment({"name": "x"})["device"] == {"name": "x"}


def test_fingerprint_changes_with_packages(tmp_path, monkeypatch):
    before = environment()["fingerprint"]
    fake_dist(tmp_path, "hfmatrix-fake-pkg", "1.0")
    monkeypatch.syspath_prepend(str(tmp_path))
    env = environment()
    assert env["packages"]["hfmatrix-fake-pkg"] == "1.0"
    assert env["fingerprint"] != before


def test_environment_reports_the_version_that_is_imported(tmp_path, monkeypatch):
    fake_dist(tmp_path / "shadowed", "hfmatrix-fake-pkg", "1.0")
    fake_dist(tmp_path / "active", "hfmatrix-fake-pkg", "2.0")
    monkeypatch.syspath_prepend(str(tmp_path / "shadowed"))
    monkeypatch.syspath_prepend(str(tmp_path / "active"))
    assert metadata.version("hfmatrix-fake-pkg") == "2.0"
    assert environment()["packages"]["hfmatrix-fake-pkg"] == "2.0"


def test_outcome_record(tmp_path):
    rec = outcome_record("bert", "BertForMaskedLM", "bert-base-uncased", "hub", "cuda", "no GPU")
    assert rec["status"] == "skipped"
    assert rec["reason"] == "no GPU"
    assert rec["session"] == "bert-cuda"
    assert rec["environment"]["fingerprint"]
    assert json.loads(write_record(tmp_path, rec).read_text())["reason"] == "no GPU"


# --- hardware probes -------------------------------------------------------------------------


def test_probe_cpu_openvino_and_mps(monkeypatch):
    assert hardware.probe("cpu") is None
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    assert hardware.probe("openvino") is None
    assert hardware.probe("mps") == "mps needs an Apple silicon Mac"
    monkeypatch.setattr(hardware.platform, "machine", lambda: "riscv64")
    assert hardware.probe("openvino") == "OpenVINO has no CPU plugin for riscv64"
    assert "unknown hardware" in hardware.probe("tpu")


def test_openvino_unusable_without_its_packages(monkeypatch):
    monkeypatch.setattr(hardware, "_importable", lambda module: module == "openvino")
    assert hardware.usable("openvino") == "optimum.intel not installed in this environment"


def test_probe_cuda_without_nvidia_smi(monkeypatch):
    monkeypatch.setattr(hardware.shutil, "which", lambda _name: None)
    monkeypatch.setattr(hardware.glob, "glob", lambda _pattern: [])
    reason = hardware.probe("cuda")
    assert reason and "nvidia-smi" in reason


def test_probe_cuda_device_node_without_nvidia_smi(monkeypatch):
    monkeypatch.setattr(hardware.shutil, "which", lambda _name: None)
    monkeypatch.setattr(hardware.glob, "glob", lambda _pattern: ["/dev/nvidia0"])
    assert hardware.probe("cuda") is None


def test_probe_cuda_with_fake_nvidia_smi(tmp_path, monkeypatch):
    fake_smi(tmp_path, monkeypatch, 'echo "GPU 0: Fake (UUID: GPU-0)"')
    assert hardware.probe("cuda") is None


def test_probe_cuda_nvidia_smi_fails(tmp_path, monkeypatch):
    fake_smi(tmp_path, monkeypatch, 'echo "driver mismatch" >&2; exit 9')
    reason = hardware.probe("cuda")
    assert reason and "driver mismatch" in reason


def test_device_names():
    assert hardware.device("cuda") == "cuda:0"
    assert hardware.device("cpu") == hardware.device("openvino") == "cpu"
    assert hardware.device("mps") == "mps"


@pytest.mark.parametrize(
    ("model_id", "name"), [("./mydir", "mydir"), ("..", "model"), ("-x-", "x"), ("/a/b", "a--b")]
)
def test_slug_never_hides_a_record(model_id, name):
    assert slug(model_id) == hashed(name, model_id)  # no leading dot or dash


def test_results_dir_that_is_a_file_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        results.checked_results_dir(tmp_path / "file")
    assert results.checked_results_dir(tmp_path / "new") == tmp_path / "new"


def test_results_dir_that_cannot_be_made_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write the results directory: Not a directory"):
        results.checked_results_dir(tmp_path / "file" / "results")


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_record(tmp_path, outcome_record("bert", "C", "m", "hub", "cpu", "why"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_vendored_copies_on_sys_path_do_not_change_the_fingerprint(tmp_path, monkeypatch):
    before = environment()["fingerprint"]
    vendor = tmp_path / "setuptools" / "_vendor"
    fake_dist(vendor, "hfmatrix-vendored-pkg", "1.0")
    monkeypatch.syspath_prepend(str(vendor))
    env = environment()
    assert "hfmatrix-vendored-pkg" not in env["packages"]
    assert env["fingerprint"] == before


# --- stacks ----------------------------------------------------------------------------------


def test_records_name_their_stack_in_words(monkeypatch):
    monkeypatch.delenv(results.STACK_ENV, raising=False)
    rec = record()
    assert rec["stack"]["name"] is None
    versions = rec["stack"]["versions"]
    assert versions["torch"] == metadata.version("torch")
    assert versions["transformers"] == metadata.version("transformers")
    assert rec["stack"]["label"] == (
        f"transformers {versions['transformers']} · torch {versions['torch']}"
    )
    assert rec["fingerprint"] is None
    skipped = outcome_record("bert", "C", "m", "hub", "cpu", "why")
    assert skipped["stack"] == rec["stack"]


def test_the_label_names_optimum_intel_and_openvino_when_installed():
    packages = {"torch": "2.15.0", "transformers": "5.5.0", "optimum_intel": "2.2.1",
                "OpenVINO": "2026.1.0", "pytest": "9.0"}  # fmt: skip
    found = results.stack(packages)
    assert found["label"] == (
        "transformers 5.5.0 · torch 2.15.0 · optimum-intel 2.2.1 · openvino 2026.1.0"
    )
    assert "pytest" not in found["versions"]


@pytest.mark.parametrize(
    ("stack", "session", "column"),
    [(None, "bert-cpu", "cpu"), ("latest", "bert-cpu", "cpu"), ("tf4", "bert-tf4-cpu", "cpu@tf4")],
)
def test_a_stack_other_than_the_default_names_the_session_and_column(
    tmp_path, monkeypatch, stack, session, column
):
    if stack:
        monkeypatch.setenv(results.STACK_ENV, stack)
    else:
        monkeypatch.delenv(results.STACK_ENV, raising=False)
    rec = record()
    assert (rec["stack"]["name"], rec["session"]) == (stack, session)
    assert results.record_column(rec) == column
    assert record_path(tmp_path, rec).parent == tmp_path / "raw" / session
    half = new_record("bert", "C", "m", "hub", "cuda", "float16")
    assert results.record_column(half) == column.replace("cpu", "cuda-float16")


def test_session_names_keep_their_signature():
    assert results.session_name("bert", "cpu") == "bert-cpu"
    assert results.session_name("bert-tf4", "cuda", "float16") == "bert-tf4-cuda-float16"
    assert results.session_name("bert", "cuda", "float16", "tf4") == "bert-tf4-cuda-float16"


def test_the_default_stack_comes_from_the_project(tmp_path):
    assert results.default_stack_name() == "latest"  # this checkout's env_specs/stacks/
    assert results.default_stack_name(tmp_path) == "latest"  # outside a project
    project = tmp_path / "project"
    (project / "env_specs" / "stacks").mkdir(parents=True)
    (project / "models.json").write_text("{}")
    (project / "env_specs" / "stacks" / "v6.toml").write_text(
        'stack = "v6"\ndescription = "x"\ndefault = true\ndependencies = ["transformers>=6"]\n'
    )
    assert results.default_stack_name(project / "env_specs") == "v6"


def test_record_labels_fall_back_to_the_environment():
    old = {"hardware": "cuda", "dtype": "float16",
           "environment": {"transformers": "4.57.6", "torch": "2.9.0"}}  # fmt: skip
    assert results.record_label(old) == "cuda-float16 · transformers 4.57.6 · torch 2.9.0"
    assert results.record_label({"hardware": "cpu"}) == "cpu"
