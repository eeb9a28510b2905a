"""The child process that runs one model's tests: ``python -m hfmatrix.child JOB SAVE`` in a
fresh interpreter, or ``run_forked`` in a child forked from the session's process.

JOB (JSON) names the family module, its test class, the model, the backend and the run's
options; the child saves ``{"final": bool, "record": {...}}`` to SAVE after each test, so a
parent that has to kill it still keeps the tests that finished.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from hfmatrix.files import atomic_write_text
from hfmatrix.perf import PerfSettings
from hfmatrix.project import Project
from hfmatrix.sources import Source


def main(argv: list[str]) -> None:
    job, save_path = json.loads(argv[0]), Path(argv[1])
    watch_and_report(job)  # before the imports: they take a while
    run(job, save_path, load_class(Path(job["module"]), job["test_class"]))


def watch_and_report(job: dict[str, Any]) -> None:
    """Stacks on a crash or when the parent asks (SIGUSR1, before a timeout kill), into this
    process's output; and an end when the parent ends."""
    faulthandler.enable()  # a crash prints the Python stacks into the parent's log
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    exit_with_parent(job["parent_pid"])


def run(job: dict[str, Any], save_path: Path, test_class: type) -> None:
    """Run the job's tests with ``test_class``, saving the record after each; exit 0."""
    test = test_class(
        job["model_id"],
        Project(Path(job["project"])),
        revision=job["revision"],
        allow_remote_code=job["allow_remote_code"],
        allow_pickle=job["allow_pickle"],
        dtype=job["dtype"],
        performance=PerfSettings(**job["performance"]) if job.get("performance") else None,
    )
    if job.get("source"):
        test._source = Source(**job["source"])  # resolved (and the Hub probed) by the parent

    def save(record: dict[str, Any], final: bool = False) -> None:
        text = json.dumps({"final": final, "record": record}, default=str)
        atomic_write_text(save_path, text)

    save(test.run_tests(job["hardware"], progress=save), final=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # done: no interpreter teardown (threads, device runtimes) to hang in


def run_forked(job: dict[str, Any], save_path: Path, test_class: type) -> None:
    """The same, in a child forked from the session's process (``forking.fork``): the
    imports are the parent's, the class is the parent's."""
    watch_and_report(job)
    run(job, save_path, test_class)


def load_class(module_path: Path, name: str) -> type:
    """Class ``name`` of the family module at ``module_path``."""
    return getattr(load_module(module_path), name)


def load_module(module_path: Path) -> ModuleType:
    """The family module at ``module_path``, imported under its file name."""
    spec = importlib.util.spec_from_file_location(module_path.stem, module_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {module_path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_path.stem] = module
    spec.loader.exec_module(module)
    return module


def exit_with_parent(parent: int) -> None:
    """End this process when its parent dies (a killed session leaves no orphans running),
    even when that happened before this process got here."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(0, signal.SIGKILL)  # this process group: the child and its helpers

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1:])
