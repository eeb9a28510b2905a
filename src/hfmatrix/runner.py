"""Running one model on one backend for a session: reuse a passing record (--resume), record
what stops it before any test (policy, availability), else run its tests in a child process;
write the record the moment it is known."""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfmatrix import findings, results
from hfmatrix import hardware as hardware_module
from hfmatrix.isolation import Limits, default_max_memory, run_in_child
from hfmatrix.perf import PerfSettings
from hfmatrix.project import FINDINGS_FILE

if TYPE_CHECKING:
    from hfmatrix.harness import FamilyTest
    from hfmatrix.project import Project

GIB = 1024**3


@dataclass(frozen=True)
class RunSettings:
    """The options of a run (see cli.RUN_OPTIONS)."""

    results_dir: Path
    revision: str | None = None
    allow_remote_code: bool = False
    allow_pickle: bool = False  # load pickle-only checkpoints (their unpickling can run code)
    timeout_s: float | None = None  # None: the family's default
    max_memory_gib: float | None = None  # None: 90% of the machine's memory
    dtype: str = "float32"
    resume: bool = False
    performance: PerfSettings | None = None  # --performance: measure after the tests

    @classmethod
    def from_options(cls, options: Any, results_dir: Path) -> RunSettings:
        from hfmatrix.cli import perf_settings

        return cls(
            results_dir=results_dir,
            revision=options.revision,
            allow_remote_code=options.allow_remote_code,
            allow_pickle=options.allow_pickle,
            timeout_s=options.timeout,
            max_memory_gib=options.max_memory,
            dtype=options.dtype,
            resume=options.resume,
            performance=perf_settings(options),
        )

    def limits(self, family_test: type[FamilyTest]) -> Limits:
        memory = self.max_memory_gib
        return Limits(
            timeout_s=self.timeout_s or family_test.timeout_s,
            max_memory=int(memory * GIB) if memory else default_max_memory(),
        )


@dataclass
class Outcome:
    record: dict[str, Any]
    path: Path
    resumed: bool = False


def run_model(
    family_test: type[FamilyTest],
    project: Project,
    model_id: str,
    hardware: str,
    settings: RunSettings,
    notify: Callable[[str], None] = print,
) -> Outcome:
    """Run (or resume) one model on one backend and write its record."""
    test = family_test(
        model_id,
        project,
        revision=settings.revision,
        allow_remote_code=settings.allow_remote_code,
        allow_pickle=settings.allow_pickle,
        dtype=settings.dtype,
        performance=settings.performance,
    )
    blank = test.new_record(hardware)
    blank["environment"] = results.environment()
    path = results.record_path(settings.results_dir, blank)
    record = stopped_before_tests(test, blank)
    if settings.resume and (previous := reusable(path, blank)) is not None:
        findings.mark(previous, project.findings, FINDINGS_FILE)
        return Outcome(previous, path, resumed=True)
    if record is None:
        log = settings.results_dir / "logs" / blank["session"] / f"{path.stem}.log"
        job = child_job(test, hardware)
        limits = settings.limits(family_test)
        record = run_in_child(job, family_test, limits, blank, log, notify)
    findings.mark(record, project.findings, FINDINGS_FILE)
    results.write_record(settings.results_dir, record, path)
    return Outcome(record, path)


def stopped_before_tests(test: FamilyTest, blank: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a model that must not run here (a missing backend, the remote-code
    policy, an unavailable hub model), found without starting a child; else None. A hub
    model's source is resolved here, once, and its commit goes into ``blank``."""
    start = time.perf_counter()
    try:
        outcome = hardware_module.usable(blank["hardware"])
        outcome = ("skipped", outcome) if outcome else None
        if outcome is None and test.tier != "tiny":  # tiny: built in the child
            outcome = test.blocked()
    except Exception as exc:  # e.g. the Hub has no such repository
        outcome = ("error", f"{type(exc).__name__}: {exc}"[:2000])
    if test._source is not None:
        blank["source"] = asdict(test._source)
        blank["revision"] = test._source.revision
    if outcome is None:
        return None
    record = dict(blank, status=outcome[0], reason=outcome[1])
    record["duration_s"] = round(time.perf_counter() - start, 3)
    return record


def child_job(test: FamilyTest, hardware: str) -> dict[str, Any]:
    """What the child process needs to rebuild ``test`` and run it."""
    resolved = test._source  # the parent's resolution (and Hub probe), when it made one
    return {
        "parent_pid": os.getpid(),
        "project": str(test.project.root),
        "module": inspect.getfile(type(test)),
        "test_class": type(test).__name__,
        "model_id": test.model_id,
        "hardware": hardware,
        "revision": test.revision,
        "allow_remote_code": test.trust_remote_code,
        "allow_pickle": test.allow_pickle,
        "dtype": test.dtype,
        "performance": test.performance.as_dict() if test.performance else None,
        "source": asdict(resolved) if resolved else None,
    }


def reusable(path: Path, blank: dict[str, Any]) -> dict[str, Any] | None:
    """The record at ``path`` if it passed for the same model, backend, environment and
    request, and (when the source resolved now) the same commit."""
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(previous, dict) or previous.get("status") != "passed":
        return None
    same = all(previous.get(key) == blank[key] for key in ("model_id", "hardware", "request"))
    fingerprint = (previous.get("environment") or {}).get("fingerprint")
    same = same and fingerprint == blank["environment"]["fingerprint"]
    commit = blank.get("revision")
    return previous if same and commit in (None, previous.get("revision")) else None
