"""The project tree: where the families, env specs, overrides and model database live."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from hfmatrix.errors import UserError
from hfmatrix.files import line_of_key
from hfmatrix.registry import ModelEntry, family_models, load_models, representative
from hfmatrix.specs import (
    FamilySpec,
    Finding,
    HardwareSpec,
    Override,
    StackSpec,
    Untested,
    load_family_spec,
    load_findings,
    load_hardware_spec,
    load_overrides,
    load_stack_spec,
    load_untested,
)

RESULTS_ENV = "HFMATRIX_RESULTS_DIR"
UNTESTED_FILE = "env_specs/classes/untested.toml"  # the classes no family tests, and why
FINDINGS_FILE = "env_specs/classes/findings.toml"  # tested classes' declared backend failures
# A Hub repo id: [namespace/]name, word characters, '.' and '-' (huggingface_hub's rule).
REPO_ID = re.compile(r"^(?:\w[\w.-]{0,95}/)?\w[\w.-]{0,95}$")


@dataclass
class Project:
    """A checkout of hfmatrix: noxfile.py, families/, env_specs/, overrides.json, models.json."""

    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """The project containing ``start`` (default: the current directory)."""
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            if (candidate / "env_specs").is_dir() and (candidate / "models.json").is_file():
                return cls(candidate)
        raise UserError("not inside an hfmatrix project (no env_specs/ and models.json)", here)

    @property
    def results_dir(self) -> Path:
        """Where results go: $HFMATRIX_RESULTS_DIR, else test_results/ in the project."""
        return Path(os.environ.get(RESULTS_ENV) or self.root / "test_results")

    def families(self) -> list[str]:
        return sorted(path.stem for path in (self.root / "env_specs").glob("*.toml"))

    def family_specs(self) -> dict[str, FamilySpec]:
        """Every family's spec; two families that claim one class are a UserError."""
        specs = {family: self.family_spec(family) for family in self.families()}
        owner: dict[str, str] = {}
        for family, spec in specs.items():
            for name in spec.architectures:
                if name in owner:
                    path = self.root / "env_specs" / f"{family}.toml"
                    raise UserError(f"architectures: {name} is tested by the {owner[name]} "
                                    "family already", path)  # fmt: skip
                owner[name] = family
        return specs

    def hardware_names(self) -> list[str]:
        return sorted(path.stem for path in (self.root / "env_specs" / "hardware").glob("*.toml"))

    def family_spec(self, family: str) -> FamilySpec:
        if family not in self.families():
            raise UserError(f"unknown family {family!r} (known: {', '.join(self.families())})")
        return load_family_spec(self.root / "env_specs" / f"{family}.toml")

    def hardware_spec(self, hardware: str) -> HardwareSpec:
        if hardware not in self.hardware_names():
            known = ", ".join(self.hardware_names())
            raise UserError(f"unknown hardware {hardware!r} (known: {known})")
        return load_hardware_spec(self.root / "env_specs" / "hardware" / f"{hardware}.toml")

    @property
    def stacks_dir(self) -> Path:
        return self.root / "env_specs" / "stacks"

    def stacks(self) -> dict[str, StackSpec]:
        """Every stack's spec, by name; a backend no hardware spec declares, or a name that
        is also a family's or a backend's, is a UserError naming the file and line."""
        paths = sorted(self.stacks_dir.glob("*.toml"))
        specs = {path.stem: load_stack_spec(path) for path in paths}
        for spec in specs.values():
            self.check_stack(spec)
        return specs

    def check_stack(self, spec: StackSpec) -> None:
        """A stack's name and backends against the families and hardware specs."""
        path = self.stacks_dir / f"{spec.name}.toml"
        text = path.read_text(encoding="utf-8")
        kind = {**dict.fromkeys(self.hardware_names(), "hardware backend"),
                **dict.fromkeys(self.families(), "family")}.get(spec.name)  # fmt: skip
        if kind:
            message = f"stack {spec.name!r} has the name of a {kind}"
            raise UserError(message, path, line_of_key(text, "stack"))
        unknown = sorted(set(spec.hardware or []) - set(self.hardware_names()))
        if unknown:
            known = ", ".join(self.hardware_names())
            message = f"unknown hardware {', '.join(map(repr, unknown))} (known: {known})"
            raise UserError(message, path, line_of_key(text, "hardware"))

    def stack_spec(self, name: str) -> StackSpec:
        stacks = self.stacks()
        if name not in stacks:
            raise UserError(f"unknown stack {name!r} (known: {', '.join(stacks)})")
        return stacks[name]

    def default_stack(self) -> StackSpec:
        """The one stack whose spec says ``default = true``."""
        defaults = [spec for spec in self.stacks().values() if spec.default]
        if len(defaults) != 1:
            which = ", ".join(spec.name for spec in defaults) or "none"
            raise UserError(f"exactly one stack must say default = true (found: {which})",
                            self.stacks_dir)  # fmt: skip
        return defaults[0]

    def stack_hardware(self, stack: StackSpec) -> list[str]:
        """The backends a stack has sessions for (its ``hardware``, else every backend), in
        the order of hardware_names()."""
        return [hw for hw in self.hardware_names() if hw in (stack.hardware or [hw])]

    def session_name(self, family: str, stack: str) -> str:
        """A family session's name: the family on the default stack, else ``family-stack``."""
        return family if stack == self.default_stack().name else f"{family}-{stack}"

    @cached_property
    def untested(self) -> dict[str, Untested]:
        """env_specs/classes/untested.toml: the classes no family tests and why; a class a
        family does test is a UserError there."""
        path = self.root / UNTESTED_FILE
        found = load_untested(path)
        for family, spec in self.family_specs().items():
            for name in set(spec.architectures) & set(found):
                raise UserError(f"classes.{name}: the {family} family tests it "
                                f"(env_specs/{family}.toml)", path)  # fmt: skip
        return found

    @cached_property
    def findings(self) -> list[Finding]:
        """env_specs/classes/findings.toml: the declared failures of tested classes on a
        backend; a class no family tests or an unknown backend is a UserError there."""
        path = self.root / FINDINGS_FILE
        found = load_findings(path)
        tested = {name for spec in self.family_specs().values() for name in spec.architectures}
        for finding in found:
            where = f"findings.{finding.model_class}.{finding.hardware}"
            if finding.model_class not in tested:
                raise UserError(f"{where}: no family tests {finding.model_class}", path,
                                finding.line)  # fmt: skip
            if finding.hardware not in self.hardware_names():
                known = ", ".join(self.hardware_names())
                raise UserError(f"{where}: unknown hardware {finding.hardware!r} (known: "
                                f"{known})", path, finding.line)  # fmt: skip
        return found

    @cached_property
    def overrides(self) -> dict[str, Override]:
        return load_overrides(self.root / "overrides.json")

    @cached_property
    def models(self) -> dict[str, ModelEntry]:
        specs = self.family_specs()
        return load_models(
            self.root / "models.json", {f: list(spec.architectures) for f, spec in specs.items()}
        )

    def family_models(self, family: str) -> list[ModelEntry]:
        return family_models(self.models, family)

    def model_entry(self, family: str, model_id: str) -> ModelEntry:
        """The registry entry of ``model_id``, or one made from the family spec for an id or
        directory that models.json does not list. A model of another family is a UserError."""
        entry = self.models.get(model_id)
        if entry is not None:
            if entry.family != family:
                owner = f"a {entry.family}-family model" if entry.family else "a model"
                which = "" if entry.family else ", a class no family tests"
                raise UserError(
                    f"{model_id} is {owner} ({entry.model_class}{which}), not {family}",
                    self.root / "models.json",
                )
            return entry
        spec = self.family_spec(family)
        tier = "local" if Path(model_id).expanduser().is_dir() else "hub"
        return ModelEntry(model_id, spec.model_class, family, spec.task, tier, "argument")

    def tiny_models(self, family: str) -> list[ModelEntry]:
        """The family's tiny checkpoints, one per class it tests: its own class's first."""
        own = self.family_spec(family).model_class
        tiny = [entry for entry in self.family_models(family) if entry.tier == "tiny"]
        if not tiny:
            raise UserError(f"no tiny checkpoint for family {family!r}", self.root / "models.json")
        return sorted(tiny, key=lambda entry: entry.model_class != own)

    def tiny_model(self, family: str) -> ModelEntry:
        """The tiny checkpoint of the family's own class ("tiny" in the API)."""
        return self.tiny_models(family)[0]

    def select_models(
        self, family: str, requested: list[str], all_models: bool, top: int | None = None
    ) -> list[str]:
        """The model ids a run tests: --model ids, --all-models, --representative N, or the
        tiny checkpoints + default model ("tiny" among --model ids: every tiny checkpoint of
        the family). Validates every file a run reads first (a mistake stops it
        before any model)."""
        spec = self.family_spec(family)
        self.overrides  # noqa: B018 - loading validates
        if sum(map(bool, (requested, all_models, top))) > 1:
            raise UserError("use one of --model, --all-models and --representative")
        if top:
            return [entry.model_id for entry in representative(self.models, family, top)]
        if all_models:
            return [entry.model_id for entry in self.family_models(family)]
        tiny = [entry.model_id for entry in self.tiny_models(family)]
        if requested:
            chosen = [i for m in requested for i in (tiny if m == "tiny" else [model_argument(m)])]
            for model_id in chosen:
                self.model_entry(family, model_id)
            return list(dict.fromkeys(chosen))
        return [*tiny, spec.default_model]

    def install_requirements(
        self, family: str, hardware: str, model_ids: list[str], stack: str | None = None
    ) -> list[str]:
        """Family deps + hardware deps + the stack's pins (default: the default stack's) +
        additional_deps of the selected models, in order."""
        deps = [*self.family_spec(family).dependencies, *self.hardware_spec(hardware).dependencies]
        spec = self.default_stack() if stack is None else self.stack_spec(stack)
        if hardware not in self.stack_hardware(spec):
            backends = ", ".join(self.stack_hardware(spec))
            raise UserError(f"stack {spec.name!r} has no {hardware} sessions (its hardware: "
                            f"{backends})", self.stacks_dir / f"{spec.name}.toml")  # fmt: skip
        deps.extend(spec.dependencies)
        for model_id in model_ids:
            override = self.overrides.get(model_id)
            if override:
                deps.extend(override.additional_deps)
        return list(dict.fromkeys(deps))


def model_argument(value: str) -> str:
    """A --model value: an existing directory (made absolute) or a valid Hub repo id."""
    path = Path(value).expanduser()
    if value.strip() and path.is_dir():
        return str(path.resolve())
    if value.startswith(("/", ".", "~")) or value.endswith("/"):
        raise UserError(f"--model {value!r}: no such directory")
    if not REPO_ID.match(value) or "--" in value or ".." in value:
        raise UserError(f"--model {value!r}: neither a directory nor a valid Hub model id")
    return value
