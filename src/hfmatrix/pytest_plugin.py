"""pytest plugin: each FamilyTest subclass in a family module becomes one test per
(model, hardware); each test writes its result record and passes, fails or skips with it."""

from __future__ import annotations

import inspect
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from hfmatrix import findings
from hfmatrix.cli import add_run_options, hardware_plan, perf_settings, results_dir
from hfmatrix.errors import UserError
from hfmatrix.harness import FamilyTest
from hfmatrix.project import Project
from hfmatrix.runner import RunSettings, run_model


def pytest_addoption(parser: pytest.Parser) -> None:
    add_run_options(parser.getgroup("hfmatrix", "hfmatrix model selection").addoption)


def pytest_configure(config: pytest.Config) -> None:
    """Check the options before anything runs: a mistake is one line and exit status 2."""
    options = config.option
    families = [
        match.group(1)
        for path in family_modules(config.args)
        if (match := re.fullmatch(r"test_hf_(\w+)\.py", path.name))
    ]
    try:
        project = Project.find(config.rootpath)
        for family in families:
            project.select_models(family, options.model, options.all_models, options.representative)
        hardware_plan(project, options.hardware, options.all_hardware, options.dtype)
        project.findings  # noqa: B018 -- a mistake there stops the run before any model
        results_dir(project, options.results_dir)
        perf_settings(options)
    except UserError as exc:
        pytest.exit(f"error: {exc}", returncode=exc.exit_code)


def family_modules(args: list[str]) -> list[Path]:
    """The family module files that pytest's arguments name, directly or by directory."""
    paths = [Path(arg.split("::")[0]) for arg in args]
    return [m for p in paths for m in (sorted(p.glob("test_hf_*.py")) if p.is_dir() else [p])]


def pytest_pycollect_makeitem(collector: Any, name: str, obj: Any) -> list[pytest.Item] | None:
    if not (inspect.isclass(obj) and issubclass(obj, FamilyTest) and obj is not FamilyTest):
        return None
    if obj.__module__ != collector.obj.__name__:
        return None
    options = collector.config.option
    project = Project.find(Path(collector.path).parent)
    models = project.select_models(
        obj.family, options.model, options.all_models, options.representative
    )
    backends = hardware_plan(project, options.hardware, options.all_hardware, options.dtype)
    settings = RunSettings.from_options(options, results_dir(project, options.results_dir))
    return [
        ModelItem.from_parent(collector, name=f"{name}[{model}-{hw}]", family_test=obj,
                              project=project, model_id=model, hardware=hw, settings=settings)
        for hw in backends
        for model in models
    ]  # fmt: skip


class ModelFailed(Exception):
    """A model's record says failed, error or timeout (and no declared finding)."""


class ModelItem(pytest.Item):
    """One model on one backend: runs the family's tests and writes the record."""

    def __init__(self, *, family_test: type[FamilyTest], project: Project, model_id: str,
                 hardware: str, settings: RunSettings, **kwargs: Any):  # fmt: skip
        super().__init__(**kwargs)
        self.family_test, self.project, self.settings = family_test, project, settings
        self.model_id, self.hardware = model_id, hardware

    def runtest(self) -> None:
        outcome = run_model(self.family_test, self.project, self.model_id, self.hardware,
                            self.settings, notify=_to_terminal)  # fmt: skip
        record, path = outcome.record, outcome.path
        self.user_properties.append(("record", str(path)))
        self.user_properties.append(("status", record["status"]))
        if outcome.resumed:
            self.user_properties.append(("resumed_from", record["started_at"]))
        if record["status"] == "skipped":
            pytest.skip(record["reason"])
        if findings.failing(record):
            raise ModelFailed(f"{record['status']}: {record['reason']}\nrecord: {path}")
        if findings.observed(record):  # a declared finding: reported, the session goes on
            pytest.xfail(f"{record['status']}: {findings.words(record)}")
        if record.get("finding"):  # declared, but it did not occur: in pytest's summary
            stale = f"{self.model_id} on {self.hardware}: {findings.words(record)}"
            warnings.warn(findings.StaleFinding(stale), stacklevel=1)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, ModelFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.family_test.family}: {self.model_id} on {self.hardware}"


def _to_terminal(line: str) -> None:
    """Progress of a long model run, past pytest's output capture."""
    print(line, file=sys.__stderr__, flush=True)
