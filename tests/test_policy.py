"""The remote-code policy (a model's own code runs only when overrides.json marks it and the
run allows it) and revisions (recorded for every hub model, pinned by --revision or by
overrides.json)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from families_helpers import edit_json, perturb_weight, run
from faults import fault_checkpoint, project_copy, trusted

from hfmatrix.harness import REMOTE_CODE_POLICY
from hfmatrix.project import Project

FAMILY = "bert"
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


@pytest.fixture
def marked(tiny, isolated) -> tuple[Path, Path]:
    """(checkpoint whose own code leaves a marker file, that marker's path)."""
    marker = isolated / "the-model-code-ran"
    return fault_checkpoint(tiny, isolated / "custom", "none", marker=marker), marker


def test_marked_model_is_skipped_without_allow_remote_code(family, marked, isolated):
    checkpoint, marker = marked
    project = Project(project_copy(isolated / "project", trusted(checkpoint)))
    record = family.TestBertModels(str(checkpoint), project).run_tests("cpu")
    assert record["status"] == "skipped"
    assert record["reason"] == f"requires remote code (overrides.json); {REMOTE_CODE_POLICY}"
    assert not marker.exists()


def test_marked_model_runs_its_code_with_allow_remote_code(family, marked, isolated):
    checkpoint, marker = marked
    project = Project(project_copy(isolated / "project", trusted(checkpoint)))
    test = family.TestBertModels(str(checkpoint), project, allow_remote_code=True)
    record = test.run_tests("cpu")
    assert marker.exists()
    assert record["status"] in ("passed", "failed")  # ran: the checks decide
    assert record["loaded"]["class"] == "FaultModel"
    assert record["request"]["trust_remote_code"] is True


@pytest.mark.parametrize("allow", [False, True])
def test_unmarked_model_asking_for_its_code_is_skipped(family, marked, isolated, allow):
    checkpoint, marker = marked
    project = Project(project_copy(isolated / "project", {}))
    record = family.TestBertModels(str(checkpoint), project, allow_remote_code=allow).run_tests()
    assert record["status"] == "skipped"
    assert "asks for its own code (auto_map, model_type 'hfmatrix-fault')" in record["reason"]
    assert not marker.exists()


def test_the_seed_override_is_skipped_before_any_download(isolated):
    from families_helpers import import_family

    llama = import_family("llama")
    record = llama.TestLlamaModels("meta-llama/Llama-2-7b-hf").run_tests("cpu")
    assert record["status"] == "skipped" and REMOTE_CODE_POLICY in record["reason"]
    assert "source" not in record


def test_trust_remote_code_is_passed_false_to_every_load(family, isolated, monkeypatch):
    """Explicitly False (never left to transformers, which may prompt)."""
    import transformers

    seen = []
    for name in ("AutoModelForMaskedLM", "AutoTokenizer"):
        cls = getattr(transformers, name)
        original = cls.from_pretrained.__func__

        def spy(klass, *args, _original=original, **kwargs):
            seen.append(kwargs.get("trust_remote_code", "absent"))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    record = run(family)
    assert record["status"] == "passed", record["reason"]
    assert seen and set(seen) == {False}


def test_every_load_of_a_hub_model_gets_its_commit_and_the_trust_flag(
    family, tiny, isolated, monkeypatch
):
    """The pipeline, the tokenizer and the model of a Hub-served model all load the commit
    the Hub resolved, with trust_remote_code=False."""
    import transformers

    from hfmatrix.sources import Source

    seen = []
    real_pipeline = transformers.pipeline

    def pipeline_spy(*args, **kwargs):
        if isinstance(kwargs.get("model"), str):
            seen.append(("pipeline", kwargs.get("revision"), kwargs.get("trust_remote_code")))
        return real_pipeline(*args, **kwargs)

    monkeypatch.setattr(transformers, "pipeline", pipeline_spy)
    for name in ("AutoModelForMaskedLM", "AutoTokenizer"):
        cls = getattr(transformers, name)
        original = cls.from_pretrained.__func__

        def spy(klass, *args, _original=original, _name=name, **kwargs):
            seen.append((_name, kwargs.get("revision"), kwargs.get("trust_remote_code")))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    test = family.TestBertModels("bert-base-uncased")
    test._source = Source("bert-base-uncased", "hub", str(tiny), "Hub", revision=COMMIT_A)
    record = test.run_tests("cpu")
    assert record["revision"] == COMMIT_A and record["status"] == "failed"  # random weights
    assert {name for name, *_ in seen} == {"pipeline", "AutoModelForMaskedLM", "AutoTokenizer"}
    assert {(revision, trust) for _, revision, trust in seen} == {(COMMIT_A, False)}


def plant(hub_cache: Path, model_id: str, files: Path, commit: str, refs: list[str]) -> None:
    """``files`` as snapshot ``commit`` of ``model_id`` in the HF cache, named by ``refs``."""
    repo = hub_cache / f"models--{model_id.replace('/', '--')}"
    shutil.copytree(files, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)


@pytest.fixture
def two_revisions(tiny_copy, isolated, monkeypatch) -> str:
    """A hub id in the HF cache: main -> COMMIT_A (the tiny files), v2 -> COMMIT_B (changed
    weights)."""
    from huggingface_hub import constants

    hub_cache = isolated / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    model_id = "hfmatrix-test/pinned-bert"
    plant(hub_cache, model_id, tiny_copy, COMMIT_A, ["main"])
    perturb_weight(tiny_copy, "bert.embeddings.word_embeddings.weight")
    plant(hub_cache, model_id, tiny_copy, COMMIT_B, ["v2"])
    return model_id


@pytest.mark.parametrize(
    ("cli", "override", "commit"),
    [
        (None, None, COMMIT_A),
        ("v2", None, COMMIT_B),
        (COMMIT_B, None, COMMIT_B),
        (None, "v2", COMMIT_B),
        ("main", "v2", COMMIT_A),  # the command line wins
    ],
)
def test_revision_is_pinned_and_recorded(family, two_revisions, isolated, cli, override, commit):
    overrides = {two_revisions: {"revision": override}} if override else {}
    project = Project(project_copy(isolated / "project", overrides))
    record = family.TestBertModels(two_revisions, project, revision=cli).run_tests("cpu")
    assert record["status"] in ("passed", "failed"), record["reason"]
    assert record["revision"] == commit
    assert record["source"]["location"].endswith(f"/snapshots/{commit}")
    assert record["request"]["revision"] == (cli or override)


def test_a_revision_not_in_the_cache_is_skipped_offline(family, two_revisions, isolated):
    project = Project(project_copy(isolated / "project"))
    record = family.TestBertModels(two_revisions, project, revision="v3").run_tests("cpu")
    assert record["status"] == "skipped"
    assert "at revision 'v3' is not in the HF cache" in record["reason"]


def test_tiny_and_local_checkpoints_have_no_revision(family, tiny, isolated):
    project = Project(project_copy(isolated / "project"))
    assert family.TestBertModels("tiny", project, revision="v2").revision is None
    assert family.TestBertModels(str(tiny), project, revision="v2").revision is None


def test_overrides_revision_must_be_a_string(isolated):
    project = project_copy(isolated / "project")
    edit_json(project / "overrides.json", lambda data: data.update(x={"revision": 3}))
    with pytest.raises(Exception, match=r"overrides.json:\d+: overrides\['x'\].revision"):
        Project(project).overrides  # noqa: B018
