"""Every class a family tests has a tiny checkpoint of its own (models.json, tiny/<name>/),
built by its recipe, with golden values (families/golden/<family>.json) that it passes on
this stack and that a changed weight fails. The family's own class is in test_families.py;
golden.py's capture and storage are here too."""

from __future__ import annotations

import json

import pytest
from families_helpers import ROOT, check_names, failed_checks, import_family, run
from faults import project_copy
from safetensors.torch import load_file, save_file

from hfmatrix import checkpoints, commands, freeze, golden
from hfmatrix.errors import UserError
from hfmatrix.expectations import Expected
from hfmatrix.project import Project

PROJECT = Project(ROOT)
ADDED = [  # (family, tiny id) of every class beyond the family's own
    pytest.param(family, entry.model_id, id=entry.model_id)
    for family in PROJECT.families()
    for entry in PROJECT.tiny_models(family)[1:]
]


def test_each_class_a_family_tests_has_one_tiny_checkpoint():
    for family in PROJECT.families():
        tiny = PROJECT.tiny_models(family)
        assert tiny[0].model_class == PROJECT.family_spec(family).model_class
        assert sorted(e.model_class for e in tiny) == sorted(
            PROJECT.family_spec(family).architectures
        )
    assert sum(len(PROJECT.tiny_models(f)) for f in PROJECT.families()) >= 15


@pytest.mark.parametrize(("family_name", "model_id"), ADDED)
def test_a_class_s_tiny_checkpoint_passes_its_golden_values(family_name, model_id, isolated):
    family = import_family(family_name)
    record = run(family, model_id)
    assert record["status"] == "passed", record["reason"]
    entry = PROJECT.models[model_id]
    assert record["loaded"]["class"] == entry.model_class == record["model_class"]
    config = json.loads(
        (checkpoints.tiny_path(ROOT, checkpoints.tiny_name(model_id)) / "config.json").read_text()
    )
    spec = PROJECT.family_spec(family_name)
    assert config["model_type"] == spec.architectures[entry.model_class] == entry.model_type
    stored = golden.read(ROOT, family_name)[model_id]
    compared = {name.split(".", 1)[1] for name in check_names(record)}
    assert set(stored) <= compared  # every golden value was compared, and held
    assert record["numerics"]["reference"] == "golden values"


@pytest.mark.parametrize(("family_name", "model_id"), ADDED)
def test_a_class_s_frozen_files_are_its_recipe(family_name, model_id):
    assert freeze.differences(PROJECT, family_name, model_id) == {}


@pytest.mark.parametrize(("family_name", "model_id"), ADDED)
def test_a_changed_weight_fails_a_class_s_golden_values(family_name, model_id, tmp_path,
                                                        monkeypatch):  # fmt: skip
    """The first weight's first element, changed in a copy of the frozen files."""
    family = import_family(family_name)
    copy = project_copy(tmp_path / "project")
    weights = checkpoints.tiny_path(copy, checkpoints.tiny_name(model_id)) / "model.safetensors"
    tensors = load_file(weights)
    first = sorted(tensors)[0]
    tensors[first].view(-1)[0] += 1.0
    save_file(tensors, weights, metadata={"format": "pt"})
    failed = failed_checks(run(family, model_id, project=Project(copy)))
    assert "from_pretrained.weights_sha256" in failed


def test_a_missing_golden_value_fails_naming_the_file_and_the_command(tmp_path):
    copy = project_copy(tmp_path / "project")
    path = golden.path(copy, "bert")
    data = golden.read(copy, "bert")
    del data["tiny-roberta"]["input_ids"]
    path.write_text(golden.render(data))
    record = run(import_family("bert"), "tiny-roberta", project=Project(copy))
    assert record["status"] == "failed"
    [check] = [c for c in record["tests"]["from_pretrained"]["checks"] if c["name"] == "input_ids"]
    assert check["detail"] == (
        f"no golden value for tiny-roberta in {path}: capture it with nox -s freeze -- "
        "--family bert"
    )


def test_freeze_captures_a_new_class_s_golden_values_and_never_rewrites_them(
    tmp_path, monkeypatch, capsys
):
    copy = project_copy(tmp_path / "project")
    before = golden.read(copy, "bert")
    data = dict(before)
    del data["tiny-electra"]
    golden.path(copy, "bert").write_text(golden.render(data))
    monkeypatch.chdir(copy)
    assert commands.main(["freeze", "--model", "tiny-electra"]) == 0
    assert "tiny-electra: golden values captured into" in capsys.readouterr().out
    after = golden.read(copy, "bert")
    assert after["tiny-electra"].keys() == before["tiny-electra"].keys()
    for name, value in after["tiny-electra"].items():  # the same values, to float rounding
        if isinstance(value, str) or name.endswith("ids"):
            assert value == before["tiny-electra"][name]
    with pytest.raises(UserError, match="already has golden values"):
        golden.add(copy, "bert", "tiny-electra", {"input_ids": [0]})
    assert golden.read(copy, "bert") == after


def test_a_golden_value_may_declare_where_a_stack_differs():
    declared = golden.decode(
        {"default": [1, 2], "differs": [{"stack": "transformers>=0", "value": [3], "reason": "r"}]}
    )
    assert isinstance(declared, Expected)
    assert declared.resolve() == ([3], "transformers>=0: r")
    assert golden.decode([1, 2]).resolve() == ([1, 2], None)
    assert golden.plain(0.12345678) == 0.123457


def test_the_untested_classes_file_says_why_and_is_checked(tmp_path):
    """env_specs/classes/untested.toml: every entry says why; a tested class there, or an
    unknown why, stops with the file and line."""
    from hfmatrix.project import UNTESTED_FILE
    from hfmatrix.specs import UNTESTED_WHY, load_untested

    found = load_untested(ROOT / UNTESTED_FILE)
    assert {"CLIPModel", "ViTModel", "BertModel"} <= set(found)
    assert all(entry.why in UNTESTED_WHY and entry.reason for entry in found.values())
    assert PROJECT.untested == found
    copy = project_copy(tmp_path / "project")
    path = copy / UNTESTED_FILE
    text = path.read_text()
    path.write_text(text + '\n[classes.RobertaForMaskedLM]\nwhy = "new-family"\nreason = "x"\n')
    with pytest.raises(UserError, match=r"classes\.RobertaForMaskedLM: the bert family tests it"):
        Project(copy).untested  # noqa: B018
    path.write_text(text.replace('why = "new-family"', 'why = "later"', 1))
    with pytest.raises(UserError) as error:
        load_untested(path)
    assert str(error.value).startswith(f"{path}:")
    assert "why must be one of new-family, unsupported" in str(error.value)
