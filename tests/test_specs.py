"""env_specs/*.toml and overrides.json: loading and validation errors that name file and line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hfmatrix.errors import UserError
from hfmatrix.project import Project
from hfmatrix.specs import (
    FamilySpec,
    HardwareSpec,
    Override,
    StackSpec,
    load_family_spec,
    load_hardware_spec,
    load_overrides,
    load_stack_spec,
)

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "env_specs"

FAMILY = """\
family = "bert"
class = "BertForMaskedLM"
task = "fill-mask"
default_model = "bert-base-uncased"
dependencies = [
    "transformers>=4.46",
    "tokenizers>=0.20",
]
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def family_error(tmp_path: Path, text: str, name: str = "bert") -> UserError:
    path = write(tmp_path / f"{name}.toml", text)
    with pytest.raises(UserError) as info:
        load_family_spec(path)
    return info.value


def overrides_error(tmp_path: Path, data: object) -> UserError:
    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    path = write(tmp_path / "overrides.json", text)
    with pytest.raises(UserError) as info:
        load_overrides(path)
    return info.value


def test_user_error_format_and_exit_code():
    assert UserError.exit_code == 2
    assert str(UserError("bad", "f.toml", 3)) == "f.toml:3: bad"
    assert str(UserError("bad", "f.toml")) == "f.toml: bad"
    assert str(UserError("bad")) == "bad"


# --- the repository's own specs ------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.toml")), ids=lambda p: p.stem)
def test_repo_family_specs_load(path):
    spec = load_family_spec(path)
    assert isinstance(spec, FamilySpec)
    assert spec.family == path.stem
    assert spec.model_class and spec.task and spec.default_model
    assert spec.dependencies
    assert any(dep.startswith("transformers") for dep in spec.dependencies)


def test_repo_bert_spec_values():
    spec = load_family_spec(SPECS / "bert.toml")
    assert (spec.model_class, spec.task, spec.default_model) == (
        "BertForMaskedLM",
        "fill-mask",
        "bert-base-uncased",
    )


@pytest.mark.parametrize("path", sorted((SPECS / "hardware").glob("*.toml")), ids=lambda p: p.stem)
def test_repo_hardware_specs_load(path):
    spec = load_hardware_spec(path)
    assert isinstance(spec, HardwareSpec)
    assert spec.hardware == path.stem
    assert all(isinstance(dep, str) for dep in spec.dependencies)


def test_repo_has_cpu_cuda_openvino():
    names = {path.stem for path in (SPECS / "hardware").glob("*.toml")}
    assert {"cpu", "cuda", "openvino"} <= names


def test_repo_overrides_load():
    overrides = load_overrides(ROOT / "overrides.json")
    assert all(isinstance(value, Override) for value in overrides.values())
    llama = overrides["meta-llama/Llama-2-7b-hf"]
    assert llama.additional_deps == ["bitsandbytes>=0.39.0"]
    assert llama.requires_remote_code is True


# --- family spec errors ----------------------------------------------------------------------


def test_family_spec_valid_and_optional_description(tmp_path):
    spec = load_family_spec(write(tmp_path / "bert.toml", FAMILY))
    assert spec.description == ""
    assert spec.dependencies == ["transformers>=4.46", "tokenizers>=0.20"]


def test_malformed_toml_names_file_and_line(tmp_path):
    err = family_error(tmp_path, FAMILY.replace('task = "fill-mask"', "task = "))
    assert f"{tmp_path / 'bert.toml'}:3:" in str(err)
    assert err.line == 3
    assert "invalid TOML" in str(err)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        load_family_spec(tmp_path / "nope.toml")


def test_unknown_key_names_line(tmp_path):
    err = family_error(tmp_path, FAMILY + 'colour = "red"\n')
    assert "unknown key 'colour'" in str(err)
    assert f"bert.toml:{FAMILY.count(chr(10)) + 1}:" in str(err)


@pytest.mark.parametrize("key", ["family", "class", "task", "default_model", "dependencies"])
def test_missing_key(tmp_path, key):
    start = FAMILY.index(f"{key} =")
    end = len(FAMILY) if key == "dependencies" else FAMILY.index("\n", start) + 1
    err = family_error(tmp_path, FAMILY[:start] + FAMILY[end:])
    assert f"missing key {key!r}" in str(err)
    assert str(tmp_path / "bert.toml") in str(err)


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ('task = "fill-mask"', "task = 3", 3),
        ('class = "BertForMaskedLM"', "class = true", 2),
        ('default_model = "bert-base-uncased"', 'default_model = ["x"]', 4),
    ],
)
def test_wrong_type_names_key_line(tmp_path, old, new, line):
    err = family_error(tmp_path, FAMILY.replace(old, new))
    assert "must be str" in str(err)
    assert f"bert.toml:{line}:" in str(err)


def test_dependencies_must_be_list_of_strings(tmp_path):
    start = FAMILY.index("dependencies")
    err = family_error(tmp_path, FAMILY[:start] + 'dependencies = "torch"\n')
    assert "must be list" in str(err)
    err = family_error(tmp_path, FAMILY[:start] + 'dependencies = ["torch", 2]\n')
    assert "must hold strings" in str(err)


def test_family_name_must_match_file_name(tmp_path):
    err = family_error(tmp_path, FAMILY, name="gpt")
    assert "does not match the file name" in str(err)
    assert f"{tmp_path / 'gpt.toml'}:1:" in str(err)


def test_family_mismatch_in_repo_spec_names_key_line(tmp_path):
    text = (SPECS / "bert.toml").read_text().replace('family = "bert"', 'family = "gpt"')
    line = text.splitlines().index('family = "gpt"') + 1
    err = family_error(tmp_path, text)
    assert f"bert.toml:{line}:" in str(err)


@pytest.mark.parametrize("bad", ["torch>>2", "foo[bar", "torch=="])
def test_invalid_requirement_names_file_and_line(tmp_path, bad):
    text = FAMILY.replace('"tokenizers>=0.20"', f'"{bad}"')
    err = family_error(tmp_path, text)
    assert f"{tmp_path / 'bert.toml'}:7:" in str(err)
    assert f"invalid requirement {bad!r}" in str(err)


def test_invalid_hardware_requirement_names_line(tmp_path):
    path = write(
        tmp_path / "cpu.toml", 'hardware = "cpu"\ndependencies = [\n  "torch",\n  "torch>>2",\n]\n'
    )
    with pytest.raises(UserError, match=r"cpu\.toml:4: invalid requirement 'torch>>2'"):
        load_hardware_spec(path)


def test_invalid_requirement_message_is_one_line(tmp_path):
    err = family_error(tmp_path, FAMILY.replace('"tokenizers>=0.20"', '"torch>>2"'))
    assert "\n" not in str(err)


def test_empty_requirement_names_its_line(tmp_path):
    err = family_error(tmp_path, FAMILY.replace('"tokenizers>=0.20"', '""'))
    assert err.line == 7


def test_hardware_name_must_match_file_name(tmp_path):
    path = write(tmp_path / "cuda.toml", 'hardware = "cpu"\ndependencies = []\n')
    with pytest.raises(UserError, match="does not match the file name"):
        load_hardware_spec(path)


def test_hardware_unknown_and_missing_keys(tmp_path):
    path = write(tmp_path / "cpu.toml", 'hardware = "cpu"\ndependencies = []\nextra = 1\n')
    with pytest.raises(UserError, match=r"cpu\.toml:3: unknown key 'extra'"):
        load_hardware_spec(path)
    path = write(tmp_path / "cpu.toml", 'hardware = "cpu"\n')
    with pytest.raises(UserError, match="missing key 'dependencies'"):
        load_hardware_spec(path)


# --- overrides.json --------------------------------------------------------------------------


def test_overrides_valid_and_defaults(tmp_path):
    path = write(
        tmp_path / "overrides.json",
        json.dumps(
            {
                "a": {"additional_deps": ["x>=1", "y"], "requires_remote_code": True},
                "b": {"notes": "n", "revision": "v1.0"},
                "c": {},
            }
        ),
    )
    overrides = load_overrides(path)
    assert overrides["a"] == Override(["x>=1", "y"], requires_remote_code=True)
    assert overrides["b"] == Override(notes="n", revision="v1.0")
    assert overrides["c"] == Override()


@pytest.mark.parametrize("value", ["", "  ", "main branch", 3])
def test_overrides_bad_revision_names_line(tmp_path, value):
    text = '{\n  "a": {\n    "notes": "x",\n    "revision": ' + json.dumps(value) + "\n  }\n}\n"
    err = overrides_error(tmp_path, text)
    assert err.line == 4
    assert "revision" in str(err)


def test_overrides_bad_json_names_line(tmp_path):
    err = overrides_error(tmp_path, '{\n  "a": {\n    "notes": "x",\n  }\n}\n')
    assert f"{tmp_path / 'overrides.json'}:4:" in str(err)
    assert "invalid JSON" in str(err)


def test_overrides_top_level_must_be_object(tmp_path):
    err = overrides_error(tmp_path, ["a"])
    assert "must be a table/object" in str(err)


def test_overrides_entry_must_be_object(tmp_path):
    err = overrides_error(tmp_path, {"a": {}, "b": ["x"]})
    assert "must be a table/object, not list" in str(err)
    assert err.line == 3


def test_overrides_unknown_key(tmp_path):
    err = overrides_error(tmp_path, {"a": {"additional_dep": ["x"]}})
    assert "unknown key 'additional_dep'" in str(err)
    assert err.line == 3


@pytest.mark.parametrize(
    ("value", "message", "line"),
    [
        ("x>=1", "must be list", 3),
        ({"x": 1}, "must be list", 3),
        (["x", 1], "must hold strings", 3),
        (["x", None], "must hold strings", 3),
        (["ok", "torch>>2"], "invalid requirement 'torch>>2'", 5),
    ],
)
def test_overrides_bad_additional_deps(tmp_path, value, message, line):
    err = overrides_error(tmp_path, {"m": {"additional_deps": value}})
    assert message in str(err)
    assert f"{tmp_path / 'overrides.json'}:{line}:" in str(err)


@pytest.mark.parametrize("value", [1, 0, "true", None, [True]])
def test_overrides_requires_remote_code_must_be_bool(tmp_path, value):
    err = overrides_error(tmp_path, {"m": {"requires_remote_code": value}})
    assert "requires_remote_code must be bool" in str(err)
    assert err.line == 3


def test_overrides_notes_must_be_str(tmp_path):
    err = overrides_error(tmp_path, {"m": {"notes": 5}})
    assert "notes must be str" in str(err)


def test_overrides_error_names_line_of_offending_entry(tmp_path):
    data = {"a": {"requires_remote_code": True}, "b": {"requires_remote_code": 1}}
    err = overrides_error(tmp_path, data)
    assert err.line == 6


def test_installed_versions_says_what_is_missing_or_out_of_range():
    from hfmatrix.specs import installed_versions

    rows = installed_versions(
        ["pytest>=1", "pytest<1", "hfmatrix-no-such-package", "pytest; python_version < '3'"]
    )
    assert [(req, ok) for req, _, ok in rows] == [
        ("pytest>=1", True),
        ("pytest<1", False),
        ("hfmatrix-no-such-package", False),
    ]
    assert rows[2][1] is None


# --- architectures: the classes a family tests ------------------------------------------------


def test_architectures_default_to_the_spec_class(tmp_path):
    spec = load_family_spec(write(tmp_path / "bert.toml", FAMILY))
    assert spec.architectures == {"BertForMaskedLM": ""}


def test_repo_specs_name_their_classes_model_types():
    spec = load_family_spec(SPECS / "bert.toml")
    assert spec.architectures["BertForMaskedLM"] == "bert"
    assert spec.architectures["XLMRobertaForMaskedLM"] == "xlm-roberta"
    assert len(spec.architectures) == 9
    for path in SPECS.glob("*.toml"):
        spec = load_family_spec(path)
        assert spec.model_class in spec.architectures and all(spec.architectures.values())


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('{ DistilBertForMaskedLM = "distilbert" }', "architectures must include the class"),
        ("{ BertForMaskedLM = 3 }", "architectures.BertForMaskedLM must be a model_type string"),
        ('"bert"', "architectures must be a table/object"),
    ],
)
def test_bad_architectures_name_file_and_line(tmp_path, table, message):
    err = family_error(tmp_path, FAMILY + f"architectures = {table}\n")
    assert message in str(err)
    assert err.line == FAMILY.count("\n") + 1


# --- stacks: env_specs/stacks/<name>.toml -----------------------------------------------------

STACK = """\
stack = "tf4"
description = "the last transformers 4.x line"
dependencies = ["transformers>=4.57,<4.58"]
hardware = ["cpu", "cuda"]
"""


def stack_error(tmp_path: Path, text: str, name: str = "tf4") -> UserError:
    path = write(tmp_path / f"{name}.toml", text)
    with pytest.raises(UserError) as info:
        load_stack_spec(path)
    return info.value


def test_repo_stacks_load_with_one_default():
    stacks = Project(ROOT).stacks()
    assert list(stacks) == ["latest", "optimum", "tf4"]
    assert all(isinstance(spec, StackSpec) and spec.dependencies for spec in stacks.values())
    assert Project(ROOT).default_stack() == stacks["latest"]
    assert stacks["latest"].hardware is None and stacks["latest"].default
    assert stacks["tf4"].dependencies == ["transformers>=4.57,<4.58"]
    assert stacks["tf4"].hardware == ["cpu", "cuda", "mps"]
    assert stacks["optimum"].hardware == ["cpu", "openvino"]


def test_stack_spec_valid_and_defaults(tmp_path):
    spec = load_stack_spec(write(tmp_path / "tf4.toml", STACK))
    assert spec == StackSpec("tf4", "the last transformers 4.x line", False,
                             ["transformers>=4.57,<4.58"], ["cpu", "cuda"])  # fmt: skip
    bare = load_stack_spec(write(tmp_path / "x.toml", 'stack = "x"\ndependencies = []\n'))
    assert (bare.description, bare.default, bare.hardware) == ("", False, None)


@pytest.mark.parametrize(
    ("old", "new", "message", "line"),
    [
        ('stack = "tf4"', 'stack = "tf5"', "stack 'tf5' does not match the file name", 1),
        ('stack = "tf4"', "stack = 4", "stack spec.stack must be str, not int", 1),
        ('description = "the last transformers 4.x line"', "description = 1",
         "stack spec.description must be str", 2),
        ('hardware = ["cpu", "cuda"]', 'default = "yes"', "stack spec.default must be bool", 4),
        ('hardware = ["cpu", "cuda"]', 'hardware = "cpu"', "stack spec.hardware must be list", 4),
        ('hardware = ["cpu", "cuda"]', "hardware = []", "must list backends, each once", 4),
        ('hardware = ["cpu", "cuda"]', 'hardware = ["cpu", "cpu"]', "each once", 4),
        ('hardware = ["cpu", "cuda"]', "hardware = [1]", "hardware must hold strings", 4),
        ('hardware = ["cpu", "cuda"]', 'colour = "red"', "unknown key 'colour' in stack spec", 4),
        ('["transformers>=4.57,<4.58"]', '["transformers>>4.57"]',
         "invalid requirement 'transformers>>4.57' in dependencies", 3),
        ('["transformers>=4.57,<4.58"]', '"transformers"', "stack spec.dependencies must be list",
         3),
        ('description = "the', "description = the", "invalid TOML", 2),
    ],
)  # fmt: skip
def test_stack_spec_errors_name_file_and_line(tmp_path, old, new, message, line):
    err = stack_error(tmp_path, STACK.replace(old, new))
    assert str(err).startswith(f"{tmp_path / 'tf4.toml'}:{line}: ")
    assert message in str(err)
    assert err.exit_code == 2


@pytest.mark.parametrize("key", ["stack", "dependencies"])
def test_stack_spec_missing_key(tmp_path, key):
    text = "".join(line for line in STACK.splitlines(True) if not line.startswith(key))
    assert f"missing key {key!r} in stack spec" in str(stack_error(tmp_path, text))


def test_stack_name_joins_session_names(tmp_path):
    text = STACK.replace('stack = "tf4"', 'stack = "tf-4"')
    err = stack_error(tmp_path, text, "tf-4")
    assert "tf-4.toml:1: stack 'tf-4': use letters, digits" in str(err)


@pytest.fixture
def project(tmp_path) -> Project:
    """A copy of the repo's env_specs/ (and models.json) to break."""
    root = tmp_path / "proj"
    shutil.copytree(SPECS, root / "env_specs")
    shutil.copy(ROOT / "models.json", root / "models.json")
    return Project(root)


def stacks_error(project: Project, call=Project.stacks) -> UserError:
    with pytest.raises(UserError) as info:
        call(project)
    return info.value


def test_stack_hardware_must_be_a_hardware_spec(project):
    path = write(project.stacks_dir / "tf4.toml", STACK.replace('"cuda"', '"tpu"'))
    err = stacks_error(project)
    assert str(err).startswith(f"{path}:4: unknown hardware 'tpu' (known: cpu, cuda, mps, ")


@pytest.mark.parametrize(("name", "kind"), [("bert", "family"), ("cpu", "hardware backend")])
def test_stack_name_must_not_be_a_family_or_backend(project, name, kind):
    path = write(project.stacks_dir / f"{name}.toml", STACK.replace('"tf4"', f'"{name}"'))
    assert str(stacks_error(project)) == f"{path}:1: stack {name!r} has the name of a {kind}"


def test_exactly_one_default_stack(project):
    (project.stacks_dir / "latest.toml").unlink()
    err = stacks_error(project, Project.default_stack)
    assert (
        str(err) == f"{project.stacks_dir}: exactly one stack must say default = true (found: none)"
    )
    write(project.stacks_dir / "a.toml", 'stack = "a"\ndefault = true\ndependencies = []\n')
    write(project.stacks_dir / "b.toml", 'stack = "b"\ndefault = true\ndependencies = []\n')
    assert "(found: a, b)" in str(stacks_error(project, Project.default_stack))


def test_unknown_stack_lists_the_known(project):
    err = stacks_error(project, lambda p: p.stack_spec("tf3"))
    assert str(err) == "unknown stack 'tf3' (known: latest, optimum, tf4)"


def test_install_requirements_add_the_stack_pins(project):
    family = project.family_spec("bert").dependencies
    assert project.install_requirements("bert", "cpu", []) == [
        *family, "torch>=2.4", "transformers>=5,<6"
    ]  # fmt: skip
    assert project.install_requirements("bert", "cpu", [], "tf4")[-1] == "transformers>=4.57,<4.58"
    optimum = project.install_requirements("bert", "openvino", [], "optimum")
    assert optimum[len(family) :] == [
        "torch>=2.4", "optimum-intel[openvino]>=2.2", "transformers>=5.5,<5.6",
        "optimum-intel[openvino]>=2.2,<2.3",
    ]  # fmt: skip
    err = stacks_error(project, lambda p: p.install_requirements("bert", "openvino", [], "tf4"))
    assert "stack 'tf4' has no openvino sessions (its hardware: cpu, cuda, mps)" in str(err)


def check_env(project: Project, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "hfmatrix", "check-env", "--family", "bert", *args]
    return subprocess.run(command, cwd=project.root, capture_output=True, text=True, timeout=60)


def test_check_env_checks_the_stack_pins(project):
    done = check_env(project, "--hardware", "cpu", "--stack", "tf4")
    assert "transformers>=4.57,<4.58" in done.stdout
    import transformers

    if not transformers.__version__.startswith("4.57."):
        assert done.returncode == 2
        assert done.stderr.strip() == (
            "error: this environment does not satisfy env_specs/bert.toml, "
            "env_specs/hardware/cpu.toml and env_specs/stacks/tf4.toml: "
            f"transformers>=4.57,<4.58 ({transformers.__version__})"
        )
    default = check_env(project, "--hardware", "cpu")
    assert "transformers>=5,<6" in default.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hardware", "cpu", "--stack", "tf3"], "error: unknown stack 'tf3' (known: "),
        (["--hardware", "openvino", "--stack", "tf4"], "stack 'tf4' has no openvino sessions"),
    ],
)
def test_check_env_stack_mistakes_exit_2(project, args, message):
    done = check_env(project, *args)
    assert done.returncode == 2 and message in done.stderr


def test_a_malformed_stack_stops_check_env_with_file_and_line(project):
    path = project.stacks_dir / "tf4.toml"
    path.write_text(path.read_text().replace("transformers>=4.57,<4.58", "transformers>>4.57"))
    done = check_env(project, "--hardware", "cpu")
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {path}:")
    assert "invalid requirement 'transformers>>4.57'" in done.stderr
