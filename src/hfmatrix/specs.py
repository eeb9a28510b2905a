"""Environment specs (env_specs/) and per-model overrides (overrides.json), validated on load."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from hfmatrix.errors import UserError
from hfmatrix.files import Checker, line_of_key, read_json, read_toml

FAMILY_KEYS = {
    "family",
    "class",
    "architectures",
    "task",
    "default_model",
    "dependencies",
    "description",
}
HARDWARE_KEYS = {"hardware", "description", "dependencies", "runner"}
DEFAULT_RUNNER = "ubuntu-latest"
OVERRIDE_KEYS = {"additional_deps", "requires_remote_code", "revision", "notes"}
STACK_KEYS = {"stack", "description", "default", "dependencies", "hardware"}
# A stack's name joins family and hardware names in session names and tags (bert-tf4,
# tf4-cpu): letters, digits, '_' and '.', no '-'.
STACK_NAME = re.compile(r"^\w[\w.]*$", re.ASCII)


@dataclass(frozen=True)
class FamilySpec:
    """One architecture class: its family name, transformers class, task and dependency set."""

    family: str
    model_class: str
    task: str
    default_model: str
    dependencies: list[str]
    description: str = ""
    architectures: dict[str, str] = field(default_factory=dict)  # class -> config model_type


# Why a class no family tests stays untested (env_specs/classes/untested.toml).
UNTESTED_WHY = {
    "new-family": "its task is no family's: it needs a family of its own",
    "unsupported": "a family's task, but it cannot run through that family's tests yet",
}


@dataclass(frozen=True)
class Untested:
    """A class no family tests, and why (UNTESTED_WHY's key and one line)."""

    model_class: str
    why: str
    reason: str


@dataclass(frozen=True)
class Finding:
    """A tested class's declared failure on one backend (env_specs/classes/findings.toml):
    where ``stack`` holds (a requirement on an installed package) a record of the class on
    ``hardware`` whose reason contains ``match`` is this finding; ``reason`` says why."""

    model_class: str
    hardware: str
    stack: str
    match: str
    reason: str
    line: int | None = None  # where it is declared


FINDING_KEYS = {"stack", "match", "reason"}


@dataclass(frozen=True)
class HardwareSpec:
    """One hardware backend, the packages its environment needs and its CI jobs' runner."""

    hardware: str
    dependencies: list[str]
    description: str = ""
    runner: str = DEFAULT_RUNNER  # the GitHub Actions runner label (runs-on) of its CI jobs


@dataclass(frozen=True)
class StackSpec:
    """A named set of pins (env_specs/stacks/<name>.toml) installed with every family's
    dependencies; ``hardware`` None means every backend."""

    name: str
    description: str
    default: bool
    dependencies: list[str]
    hardware: list[str] | None = None


@dataclass(frozen=True)
class Override:
    """Per-model extras from overrides.json."""

    additional_deps: list[str] = field(default_factory=list)
    requires_remote_code: bool = False
    revision: str | None = None  # the Hub revision (branch, tag or commit) to test
    notes: str = ""


def requirements(values: list[str], checker: Checker, key: str) -> list[str]:
    """Validate PEP 508 requirement strings; a bad one names its file and line."""
    for value in values:
        try:
            Requirement(value)
        except InvalidRequirement as exc:
            why = str(exc).splitlines()[0]
            message = f"invalid requirement {value!r} in {key}: {why}"
            raise UserError(message, checker.path, checker.requirement_line(value)) from None
    return values


def installed_versions(values: list[str]) -> list[tuple[str, str | None, bool]]:
    """(requirement, installed version or None, satisfied) for each requirement string that
    applies here (its environment marker holds)."""
    from importlib import metadata

    rows = []
    for value in values:
        requirement = Requirement(value)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            rows.append((value, None, False))
            continue
        ok = requirement.specifier.contains(version, prereleases=True)
        rows.append((value, version, ok))
    return rows


def is_runner_label(value: str) -> bool:
    """Whether ``value`` can be a GitHub Actions runner label: not blank, no whitespace."""
    return bool(value) and not any(c.isspace() for c in value)


def revision(value: str | None, checker: Checker) -> str | None:
    """A revision value: None, or a non-blank string without whitespace."""
    if value is not None and (not value.strip() or any(c.isspace() for c in value)):
        raise checker.fail(f"revision {value!r} is not a branch, tag or commit", "revision")
    return value


def load_family_spec(path: Path) -> FamilySpec:
    """Read env_specs/<family>.toml."""
    data, text = read_toml(path)
    check = Checker(path, text)
    check.keys(data, "family spec", FAMILY_KEYS - {"description", "architectures"}, FAMILY_KEYS)
    for key in ("family", "class", "task", "default_model"):
        check.typed(data, key, str, "family spec")
    if data["family"] != path.stem:
        raise check.fail(f"family {data['family']!r} does not match the file name", "family")
    deps = requirements(
        check.string_list(data, "dependencies", "family spec"), check, "dependencies"
    )
    return FamilySpec(
        family=data["family"],
        model_class=data["class"],
        task=data["task"],
        default_model=data["default_model"],
        dependencies=deps,
        description=check.optional(data, "description", str, "family spec", ""),
        architectures=architectures(data, check),
    )


def architectures(data: dict, check: Checker) -> dict[str, str]:
    """The spec's {class: model_type} table (default: its one class, model_type unknown);
    it must name the spec's own class."""
    table = check.table(data.get("architectures", {data["class"]: ""}), "architectures")
    for name, model_type in table.items():
        if not isinstance(model_type, str):
            raise check.fail(f"architectures.{name} must be a model_type string", "architectures")
    if data["class"] not in table:
        raise check.fail(f"architectures must include the class {data['class']!r}",
                         "architectures")  # fmt: skip
    return dict(table)


def load_hardware_spec(path: Path) -> HardwareSpec:
    """Read env_specs/hardware/<hw>.toml (``runner``: a runs-on label, default ubuntu-latest)."""
    data, text = read_toml(path)
    check = Checker(path, text)
    check.keys(data, "hardware spec", {"hardware", "dependencies"}, HARDWARE_KEYS)
    check.typed(data, "hardware", str, "hardware spec")
    if data["hardware"] != path.stem:
        raise check.fail(f"hardware {data['hardware']!r} does not match the file name", "hardware")
    deps = requirements(
        check.string_list(data, "dependencies", "hardware spec"), check, "dependencies"
    )
    description = check.optional(data, "description", str, "hardware spec", "")
    runner = check.optional(data, "runner", str, "hardware spec", DEFAULT_RUNNER)
    if not is_runner_label(runner):
        raise check.fail(f"runner {runner!r} is not a runner label (blank or with spaces)",
                         "runner")  # fmt: skip
    return HardwareSpec(data["hardware"], deps, description, runner)


def load_stack_spec(path: Path) -> StackSpec:
    """Read env_specs/stacks/<name>.toml (``default``: false, ``hardware``: every backend,
    unless they say otherwise)."""
    data, text = read_toml(path)
    check = Checker(path, text)
    check.keys(data, "stack spec", {"stack", "dependencies"}, STACK_KEYS)
    name = check.typed(data, "stack", str, "stack spec")
    if name != path.stem:
        raise check.fail(f"stack {name!r} does not match the file name", "stack")
    if not STACK_NAME.match(name):
        raise check.fail(f"stack {name!r}: use letters, digits, '_' and '.' only", "stack")
    deps = requirements(check.string_list(data, "dependencies", "stack spec"), check,
                        "dependencies")  # fmt: skip
    hardware = check.string_list(data, "hardware", "stack spec", default=[]) or None
    if "hardware" in data and (not hardware or len(set(hardware)) < len(hardware)):
        raise check.fail("stack spec.hardware must list backends, each once", "hardware")
    return StackSpec(
        name=name,
        description=check.optional(data, "description", str, "stack spec", ""),
        default=check.optional(data, "default", bool, "stack spec", False),
        dependencies=deps,
        hardware=hardware,
    )


def load_overrides(path: Path) -> dict[str, Override]:
    """Read overrides.json: {model_id: {additional_deps, requires_remote_code, revision,
    notes}}."""
    data, text = read_json(path)
    Checker(path, text).table(data, "overrides")
    overrides = {}
    for model_id, entry in data.items():
        check = Checker(path, text).entry(model_id)
        check.table(entry, model_id)
        check.keys(entry, f"overrides[{model_id!r}]", set(), OVERRIDE_KEYS)
        where = f"overrides[{model_id!r}]"
        deps = check.string_list(entry, "additional_deps", where, default=[])
        overrides[model_id] = Override(
            additional_deps=requirements(deps, check, f"{where}.additional_deps"),
            requires_remote_code=check.optional(entry, "requires_remote_code", bool, where, False),
            revision=revision(check.optional(entry, "revision", str, where, None), check),
            notes=check.optional(entry, "notes", str, where, ""),
        )
    return overrides


def load_untested(path: Path) -> dict[str, Untested]:
    """Read env_specs/classes/untested.toml: ``[classes.<Class>]`` tables with ``why`` (a key of
    UNTESTED_WHY) and ``reason``; {} when the file is absent or lists none."""
    if not path.is_file():
        return {}
    data, text = read_toml(path)
    check = Checker(path, text)
    check.keys(data, "untested classes", set(), {"classes"})
    found = {}
    for name, entry in check.table(data.get("classes", {}), "classes").items():
        where, at = f"classes.{name}", check.entry(name)
        at.keys(at.table(entry, where), where, {"why", "reason"}, {"why", "reason"})
        why, reason = at.typed(entry, "why", str, where), at.typed(entry, "reason", str, where)
        if why not in UNTESTED_WHY:
            raise at.fail(f"{where}.why must be one of {', '.join(UNTESTED_WHY)}", "why")
        found[name] = Untested(name, why, reason)
    return found


def load_findings(path: Path) -> list[Finding]:
    """Read env_specs/classes/findings.toml: ``[findings.<Class>.<hardware>]`` tables with
    ``stack`` (a requirement on an installed package: a name and versions), ``match`` and
    ``reason``; [] when the file is absent or declares none."""
    if not path.is_file():
        return []
    data, text = read_toml(path)
    check = Checker(path, text)
    check.keys(data, "findings", set(), {"findings"})
    found = []
    for name, backends in check.table(data.get("findings", {}), "findings").items():
        at = check.entry(name)
        for hardware, entry in at.table(backends, f"findings.{name}").items():
            line = header_line(text, name, hardware)
            where, here = f"findings.{name}.{hardware}", check.at_line(line)
            here.keys(here.table(entry, where), where, FINDING_KEYS, FINDING_KEYS)
            values = {key: here.typed(entry, key, str, where) for key in sorted(FINDING_KEYS)}
            if not values["match"].strip() or not values["reason"].strip():
                raise here.fail(f"{where}: match and reason must not be blank", "match")
            stack = Requirement(requirements([values["stack"]], here, f"{where}.stack")[0])
            if stack.marker or stack.extras or stack.url:
                raise here.fail(f"{where}.stack must be a package name and versions, as "
                                "'optimum-intel<2.3'", "stack")  # fmt: skip
            found.append(Finding(name, hardware, line=line, **values))
    return found


def header_line(text: str, name: str, hardware: str) -> int | None:
    """The line of the table header ``[findings.<name>.<hardware>]``, else of ``hardware``
    after the class's first mention (an inline table)."""
    header = re.compile(rf"(?m)^[ \t]*\[findings\.{re.escape(name)}\.{re.escape(hardware)}\]")
    match = header.search(text)
    if match:
        return text.count("\n", 0, match.start()) + 1
    return line_of_key(text, hardware, Checker(Path(), text).entry(name).start)
