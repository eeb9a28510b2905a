"""models.json (registry) and the Project tree: queries, model selection, requirements."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hfmatrix.errors import UserError
from hfmatrix.project import RESULTS_ENV, Project, model_argument
from hfmatrix.registry import ModelEntry, family_models, load_models

ROOT = Path(__file__).resolve().parents[1]
BERT = {"class": "BertForMaskedLM", "family": "bert", "task": "fill-mask"}


def entry(tier: str = "hub", **changes) -> dict:
    return {**BERT, "tier": tier, **changes}


def write_models(path: Path, models: dict, schema: object = 1, **extra) -> Path:
    data = {"schema": schema, "models": models, **extra}
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def models_error(tmp_path: Path, models: dict, **kwargs) -> UserError:
    path = write_models(tmp_path / "models.json", models, **kwargs)
    with pytest.raises(UserError) as info:
        load_models(path)
    return info.value


@pytest.fixture
def project(tmp_path) -> Project:
    """A copy of the repo's env_specs/ and models.json with its own overrides.json."""
    root = tmp_path / "proj"
    shutil.copytree(ROOT / "env_specs", root / "env_specs")
    shutil.copy(ROOT / "models.json", root / "models.json")
    overrides = {
        "bert-base-uncased": {"additional_deps": ["accelerate>=0.26", "torch>=2.4"]},
        "bert-large-uncased": {"additional_deps": ["accelerate>=0.26", "einops"]},
        "distilbert-base-uncased": {"additional_deps": ["never-selected"]},
    }
    (root / "overrides.json").write_text(json.dumps(overrides), encoding="utf-8")
    return Project(root)


# --- models.json -----------------------------------------------------------------------------


def test_repo_models_load():
    models = load_models(ROOT / "models.json")
    assert models["tiny-bert"] == ModelEntry(
        "tiny-bert", "BertForMaskedLM", "bert", "fill-mask", "tiny", "curated", "bert"
    )
    assert all(model.model_id == key for key, model in models.items())
    assert all(model.tier in ("tiny", "hub") for model in models.values())


def test_repo_every_family_has_tiny_and_default_model():
    project = Project(ROOT)
    for family in project.families():
        spec = project.family_spec(family)
        assert project.tiny_model(family).family == family
        assert project.models[spec.default_model].family == family


def test_models_valid_with_source(tmp_path):
    path = write_models(tmp_path / "m.json", {"a": entry(source="curated"), "b": entry("tiny")})
    models = load_models(path)
    assert models["a"].source == models["b"].source == "curated"
    assert models["b"].tier == "tiny"


@pytest.mark.parametrize("schema", [3, 0, "1", None])
def test_schema_mismatch(tmp_path, schema):
    err = models_error(tmp_path, {"a": entry()}, schema=schema)
    assert "unsupported schema" in str(err)
    assert err.line == 2


@pytest.mark.parametrize("schema", [True, 1.0])
def test_schema_must_be_the_integer_one(tmp_path, schema):
    models_error(tmp_path, {"a": entry()}, schema=schema)


def test_top_level_unknown_and_missing_keys(tmp_path):
    err = models_error(tmp_path, {"a": entry()}, version=3)
    assert "unknown key 'version'" in str(err)
    path = tmp_path / "m.json"
    path.write_text('{"schema": 1}')
    with pytest.raises(UserError, match="missing key 'models'"):
        load_models(path)


def test_bad_tier_names_its_line(tmp_path):
    err = models_error(tmp_path, {"a": entry(), "b": entry("huge")})
    assert "tier must be one of tiny, hub" in str(err)
    assert f"{tmp_path / 'models.json'}:14:" in str(err)


def test_bad_source(tmp_path):
    err = models_error(tmp_path, {"a": entry(source="scraped")})
    assert "source must be one of curated" in str(err)


def test_entry_unknown_key(tmp_path):
    err = models_error(tmp_path, {"a": entry(popularity_rank="x")})
    assert "unknown key 'popularity_rank'" in str(err)
    assert err.line is not None


@pytest.mark.parametrize("key", ["class", "family", "task", "tier"])
def test_entry_missing_key(tmp_path, key):
    data = entry()
    del data[key]
    err = models_error(tmp_path, {"a": data})
    assert f"missing key {key!r}" in str(err)


@pytest.mark.parametrize(("models", "message"), [({"a": "x"}, "table/object"), ([], "table")])
def test_entry_and_models_must_be_objects(tmp_path, models, message):
    assert message in str(models_error(tmp_path, models))


def test_entry_wrong_type(tmp_path):
    err = models_error(tmp_path, {"a": entry(task=3)})
    assert "task must be str, not int" in str(err)


def test_wrong_type_names_offending_entry_line(tmp_path):
    err = models_error(tmp_path, {"a": entry(), "b": entry(task=3)})
    assert err.line == 13


def test_family_models_tiny_first_then_by_id(tmp_path):
    path = write_models(
        tmp_path / "m.json",
        {"z-hub": entry(), "a-hub": entry(), "tiny": entry("tiny"), "g": entry(family="gpt")},
    )
    ordered = [m.model_id for m in family_models(load_models(path), "bert")]
    assert ordered == ["tiny", "a-hub", "z-hub"]
    assert family_models(load_models(path), "nope") == []


# --- Project ---------------------------------------------------------------------------------


def test_find_from_subdirectory(project):
    sub = project.root / "env_specs" / "hardware"
    assert Project.find(sub).root == project.root.resolve()
    deeper = project.root / "a" / "b"
    deeper.mkdir(parents=True)
    assert Project.find(deeper).root == project.root.resolve()


def test_find_from_cwd(project, monkeypatch):
    monkeypatch.chdir(project.root / "env_specs")
    assert Project.find().root == project.root.resolve()


def test_find_outside_a_project(tmp_path):
    with pytest.raises(UserError, match="not inside an hfmatrix project"):
        Project.find(tmp_path)


def test_families_and_hardware(project):
    assert "bert" in project.families()
    assert "hardware" not in project.families()
    assert {"cpu", "cuda", "openvino"} <= set(project.hardware_names())


def test_family_models_tiny_first(project):
    ids = [m.model_id for m in project.family_models("bert")]
    assert ids[: len(BERT_TINY)] == sorted(BERT_TINY)
    assert ids[len(BERT_TINY) :] == sorted(ids[len(BERT_TINY) :])
    assert set(ids) == {m for m, e in project.models.items() if e.family == "bert"}


BERT_TINY = ["tiny-bert", "tiny-albert", "tiny-camembert", "tiny-deberta-v2", "tiny-distilbert",
             "tiny-electra", "tiny-mpnet", "tiny-roberta", "tiny-xlm-roberta"]  # fmt: skip


def test_select_models_default(project):
    """Every class's tiny checkpoint (the family's own class first), then the default."""
    assert project.select_models("bert", [], False) == [*BERT_TINY, "bert-base-uncased"]
    assert {project.models[m].model_class for m in BERT_TINY} == set(
        project.family_spec("bert").architectures
    )


def test_select_models_tiny_alias_and_dedup(project):
    assert project.select_models("bert", ["tiny"], False) == BERT_TINY
    assert project.select_models("bert", ["tiny-roberta"], False) == ["tiny-roberta"]
    chosen = project.select_models(
        "bert", ["bert-large-uncased", "tiny-bert", "tiny", "bert-large-uncased"], False
    )
    assert chosen == ["bert-large-uncased", *BERT_TINY]


def test_select_models_all(project):
    expected = [m.model_id for m in project.family_models("bert")]
    assert project.select_models("bert", [], True) == expected
    assert len(expected) == 18 and expected[: len(BERT_TINY)] == sorted(BERT_TINY)
    for args in ((["tiny"], True, None), (["tiny"], False, 2), ([], True, 1)):
        with pytest.raises(UserError, match="one of --model, --all-models and --representative"):
            project.select_models("bert", *args)


@pytest.mark.parametrize(
    ("call", "known"),
    [
        (lambda p: p.family_spec("nope"), "bert"),
        (lambda p: p.hardware_spec("tpu"), "cpu, cuda, mps, openvino"),
        (lambda p: p.install_requirements("nope", "cpu", []), "bert"),
        (lambda p: p.install_requirements("bert", "tpu", []), "cpu, cuda, mps, openvino"),
    ],
)
def test_unknown_names_list_known(project, call, known):
    with pytest.raises(UserError) as info:
        call(project)
    assert "unknown" in str(info.value)
    assert f"(known: {known}" in str(info.value)
    assert info.value.exit_code == 2


def test_select_all_models_of_unknown_family_raises(project):
    with pytest.raises(UserError, match="known: "):
        project.select_models("nope", [], True)


def test_select_models_unknown_family_default_raises(project):
    with pytest.raises(UserError):
        project.select_models("nope", [], False)


def test_install_requirements_merges_without_duplicates(project):
    family = project.family_spec("bert").dependencies
    deps = project.install_requirements(
        "bert", "openvino", ["tiny-bert", "bert-base-uncased", "bert-large-uncased"]
    )
    assert deps[: len(family)] == family
    assert deps[len(family) :] == [
        "torch>=2.4",
        "optimum-intel[openvino]>=2.2",
        "transformers>=5,<6",  # the default stack's pin
        "accelerate>=0.26",
        "einops",
    ]
    assert len(deps) == len(set(deps))
    assert "never-selected" not in deps


def test_install_requirements_without_overrides(project):
    deps = project.install_requirements("bert", "cpu", ["tiny-bert"])
    stack = project.default_stack().dependencies
    assert deps == [*project.family_spec("bert").dependencies, "torch>=2.4", *stack]


def test_bad_overrides_in_project_is_user_error(project):
    (project.root / "overrides.json").write_text('{"x": {"requires_remote_code": 1}}')
    with pytest.raises(UserError, match=r"overrides\.json:1:"):
        project.install_requirements("bert", "cpu", ["x"])


def test_results_dir(project, monkeypatch, tmp_path):
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    assert project.results_dir == project.root / "test_results"
    monkeypatch.setenv(RESULTS_ENV, "")
    assert project.results_dir == project.root / "test_results"
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "out"))
    assert project.results_dir == tmp_path / "out"


# --- --model arguments -----------------------------------------------------------------------


def test_model_argument_directory_becomes_absolute(tmp_path, monkeypatch):
    (tmp_path / "ckpt").mkdir()
    monkeypatch.chdir(tmp_path)
    for value in ("ckpt", "./ckpt", str(tmp_path / "ckpt")):
        assert model_argument(value) == str(tmp_path / "ckpt")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("./typo-dir", "no such directory"),
        ("/abs/nope", "no such directory"),
        ("~/nope-hfmatrix", "no such directory"),
        ("", "neither a directory nor a valid Hub model id"),
        ("not a valid id!!", "neither a directory nor a valid Hub model id"),
        ("a/b/c", "neither a directory nor a valid Hub model id"),
        ("org--x/name", "neither a directory nor a valid Hub model id"),
    ],
)
def test_model_argument_mistakes(value, message):
    with pytest.raises(UserError, match=message):
        model_argument(value)


@pytest.mark.parametrize("value", ["bert-base-uncased", "google/vit-base-patch16-224", "a_b.c"])
def test_model_argument_hub_ids(value):
    assert model_argument(value) == value


def test_model_of_another_family_is_a_user_error(project):
    with pytest.raises(UserError, match="gpt2 is a gpt-family model"):
        project.select_models("bert", ["gpt2"], False)


def test_models_json_family_must_exist(project):
    models = json.loads((project.root / "models.json").read_text())
    models["models"]["x"] = entry(family="bret")
    (project.root / "models.json").write_text(json.dumps(models, indent=2))
    with pytest.raises(UserError, match=r"models\['x'\]\.family 'bret' is unknown"):
        project.select_models("bert", [], True)


# --- schema 2: the Hub's fields, discovered entries ---------------------------------------------

HUB_FIELDS = {"model_type": "bert", "downloads": 7, "likes": 1, "gated": False,
              "last_modified": "2024-03-01T12:00:00Z", "remote_code": False}  # fmt: skip


def test_schema_2_entry_round_trips(tmp_path):
    from hfmatrix.registry import render_models

    models = {
        "a": entry(**HUB_FIELDS),
        "b": {"class": "Qwen2ForCausalLM", "family": None, "task": None, "tier": "hub",
              "source": "discovered", "downloads": 3},
    }  # fmt: skip
    loaded = load_models(write_models(tmp_path / "models.json", models, schema=2))
    assert loaded["a"].downloads == 7 and loaded["a"].gated is False
    assert (loaded["b"].family, loaded["b"].task, loaded["b"].likes) == (None, None, None)
    text = render_models(loaded)
    assert json.loads(text)["models"]["a"] == {**entry(**HUB_FIELDS), "source": "curated"}
    (tmp_path / "again.json").write_text(text)
    assert load_models(tmp_path / "again.json") == loaded
    assert len(text.splitlines()) == 7  # one line per model, 5 around them


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"family": None}, "family may be null only for a discovered model"),
        ({"task": None}, "task is needed: the pipeline task its family runs"),
        ({"downloads": -1}, "downloads must not be negative"),
        ({"downloads": True}, "downloads must be int, not bool"),
        ({"likes": "9"}, "likes must be int, not str"),
        ({"gated": "manual"}, "gated must be bool, not str"),
        ({"source": "scraped"}, "source must be one of curated, discovered"),
    ],
)
def test_schema_2_mistakes_name_file_and_line(tmp_path, change, message):
    err = models_error(tmp_path, {"a": entry(), "b": entry(**change)}, schema=2)
    assert message in str(err)
    assert err.line is not None and err.line >= 9  # b's lines, not a's


def test_representative_takes_the_most_downloaded_of_each_class(tmp_path):
    from hfmatrix.registry import representative

    distil = {"class": "DistilBertForMaskedLM"}
    models = load_models(write_models(tmp_path / "models.json", {
        "tiny": entry("tiny"),
        "low": entry(downloads=10), "high": entry(downloads=900), "unknown": entry(),
        "mid": entry(downloads=500), "d1": entry(**distil), "d2": entry(**distil, downloads=1),
    }, schema=2))  # fmt: skip
    chosen = [e.model_id for e in representative(models, "bert", 2)]
    assert chosen == ["tiny", "high", "mid", "d2", "d1"]
    assert [e.model_id for e in representative(models, "bert", 1)] == ["tiny", "high", "d2"]
    assert [e.model_id for e in representative(models, "gpt", 3)] == []


def test_select_models_representative(project):
    chosen = project.select_models("bert", [], False, 1)
    assert chosen[: len(BERT_TINY)] == sorted(BERT_TINY)  # then one per class: no downloads yet
    assert chosen[len(BERT_TINY) :] == [
        "albert/albert-base-v2",
        "bert-base-uncased",
        "almanach/camembert-base",
        "microsoft/deberta-v3-base",
        "distilbert-base-uncased",
        "google/electra-small-generator",
        "FacebookAI/roberta-base",
        "FacebookAI/xlm-roberta-base",
    ]  # fmt: skip  (by class, by id within each class)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": "discovered", "tier": "tiny"}, "a discovered model's tier is hub"),
        ({"last_modified": "last week"}, "last_modified must be an ISO 8601 time"),
    ],
)
def test_discovered_fields_are_checked(tmp_path, change, message):
    assert message in str(models_error(tmp_path, {"a": entry(**change)}, schema=2))


def test_a_class_its_family_does_not_test_is_an_error(project):
    path = project.root / "models.json"
    data = json.loads(path.read_text())
    data["models"]["acme/gpt2"] = entry(**{"class": "GPT2LMHeadModel"})
    path.write_text(json.dumps(data, indent=1))
    with pytest.raises(UserError, match="'GPT2LMHeadModel' is not a class the bert family"):
        project.models  # noqa: B018


def test_two_families_claiming_one_class_is_an_error(project):
    spec = project.root / "env_specs" / "gpt.toml"
    spec.write_text(spec.read_text() + 'BertForMaskedLM = "bert"\n')  # in [architectures]
    with pytest.raises(UserError, match="BertForMaskedLM is tested by the bert family already"):
        project.family_specs()


def test_the_readme_s_table_of_the_most_downloaded_classes_matches_the_project():
    """Each class of the README's table (from published Hub rankings) is tested by the
    family it names or listed in env_specs/classes/untested.toml with the same why; the
    counts in the sentence below the table are the table's."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### The Hub's most downloaded classes", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")][1:]
    project = Project(ROOT)
    families = {f: spec.architectures for f, spec in project.family_specs().items()}
    tested = 0
    for name, _, verdict in ((r[0].lstrip("| "), r[1], r[2].rstrip(" |")) for r in rows):
        if verdict.startswith("untested: "):
            assert project.untested[name].why == verdict.removeprefix("untested: "), name
        else:
            assert name in families[verdict], name
            tested += 1
    assert len(rows) >= 25
    assert f"Of these {len(rows)} classes, {tested} are tested" in " ".join(section.split())
    assert f"the {len(rows) - tested} others are in" in " ".join(section.split())
