"""Command lines: a family module run as a script, and the ``hfmatrix`` command."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfmatrix import findings, hardware, results
from hfmatrix.errors import UserError
from hfmatrix.perf import PerfSettings
from hfmatrix.project import RESULTS_ENV, Project

if TYPE_CHECKING:
    from hfmatrix.harness import FamilyTest


def positive(value: str) -> float:
    """A positive number of seconds or GiB."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive number")
    return number


def nonnegative(value: str) -> float:
    """A number of seconds, 0 or more."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be 0 or more")
    return number


def count_value(value: str) -> int:
    """A whole number of at least 1."""
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return int(value)


def whole_number(value: str) -> int:
    """A whole number, 0 or more."""
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number")
    return int(value)


def ratio_value(value: str) -> float:
    """A ratio above 1 (hfmatrix report --slower-ratio)."""
    try:
        ratio = float(value)
    except ValueError:
        ratio = 0.0
    if not 1 < ratio < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a ratio above 1")
    return ratio


def revision_value(value: str) -> str:
    if not value.strip() or any(c.isspace() for c in value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a branch, tag or commit")
    return value


# (flags, argparse keyword arguments): shared by scripts, nox posargs and the pytest plugin.
RUN_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--model",), dict(action="append", default=[], metavar="ID",
        help="model id, local checkpoint directory or 'tiny' (repeatable); default: the "
             "tiny checkpoint and the family's default hub model")),
    (("--all-models",), dict(action="store_true",
        help="every model of the family in models.json")),
    (("--representative",), dict(default=None, metavar="N", type=count_value,
        help="the tiny checkpoint and the N most-downloaded models.json models of each "
             "class of the family (a routine run)")),
    (("--hardware",), dict(action="append", default=[], metavar="HW",
        help="backend to run on (repeatable; default: cpu)")),
    (("--all-hardware",), dict(action="store_true",
        help="every backend usable from this environment")),
    (("--results-dir",), dict(default=None, metavar="DIR",
        help="where records go (default: $HFMATRIX_RESULTS_DIR or test_results/)")),
    (("--revision",), dict(default=None, metavar="REV", type=revision_value,
        help="Hub revision (branch, tag or commit) of the run's Hub models (default: their "
             "overrides.json revision, else main); tiny and local checkpoints have none")),
    (("--allow-remote-code",), dict(action="store_true",
        help="run the own code of models that overrides.json marks requires_remote_code "
             "(without it they are skipped)")),
    (("--allow-pickle",), dict(action="store_true",
        help="load a checkpoint that has only pickle weights (pytorch_model.bin, *.pt, "
             "*.pth): unpickling can run code (without it such a checkpoint is skipped)")),
    (("--timeout",), dict(default=None, metavar="SECONDS", type=positive,
        help="time limit per model, all its tests (default: the family's, 900 s for most)")),
    (("--max-memory",), dict(default=None, metavar="GIB", type=positive,
        help="memory limit per model in GiB (default: 90%% of this machine's memory)")),
    (("--dtype",), dict(default="float32", choices=("float32", "float16", "bfloat16"),
        help="the dtype of the model under test, compared with the fp32 CPU reference at the "
             "dtype's tolerance (default float32; openvino runs f32)")),
    (("--resume",), dict(action="store_true",
        help="keep a model's passing record from the same environment instead of rerunning")),
    (("--performance",), dict(action="store_true",
        help="after the tests, measure latency, throughput and memory (a performance block "
             "in each record)")),
    (("--perf-warmup",), dict(default=None, metavar="N", type=whole_number,
        help=f"--performance: untimed calls first (default {PerfSettings.warmup})")),
    (("--perf-iterations",), dict(default=None, metavar="N", type=count_value,
        help=f"--performance: timed calls at least (default {PerfSettings.iterations})")),
    (("--perf-duration",), dict(default=None, metavar="SECONDS", type=nonnegative,
        help=f"--performance: seconds of timed calls at least (default "
             f"{PerfSettings.duration_s:g})")),
    (("--perf-batch-size",), dict(default=None, metavar="N", type=count_value,
        help=f"--performance: the fixed inputs repeated to this batch size (default "
             f"{PerfSettings.batch_size})")),
    (("--perf-new-tokens",), dict(default=None, metavar="N", type=count_value,
        help=f"--performance: tokens each generate call adds (default "
             f"{PerfSettings.new_tokens})")),
]  # fmt: skip
PERF_OPTIONS = {"perf_warmup": "warmup", "perf_iterations": "iterations",
                "perf_duration": "duration_s", "perf_batch_size": "batch_size",
                "perf_new_tokens": "new_tokens"}  # fmt: skip
FORWARDED = ("revision", "allow_remote_code", "allow_pickle", "timeout", "max_memory", "dtype",
             "resume", "performance", *PERF_OPTIONS)  # fmt: skip


def perf_settings(options: argparse.Namespace) -> PerfSettings | None:
    """--performance and its --perf-* values; a --perf-* value alone is a UserError."""
    given = {field: getattr(options, name) for name, field in PERF_OPTIONS.items()
             if getattr(options, name) is not None}  # fmt: skip
    if not options.performance:
        if given:
            flags = ", ".join(f"--{name.replace('_', '-')}" for name in PERF_OPTIONS
                              if getattr(options, name) is not None)  # fmt: skip
            raise UserError(f"{flags} without --performance")
        return None
    return PerfSettings(**given)


def forwarded_options(options: argparse.Namespace) -> list[str]:
    """The run options among ``options`` as command-line flags (nox passes them to pytest)."""
    flags = []
    for name in FORWARDED:
        value, flag = getattr(options, name), "--" + name.replace("_", "-")
        if name == "dtype" and value == "float32":
            continue
        if value is True:
            flags.append(flag)
        elif value not in (None, False):
            flags.append(f"{flag}={value}")
    return flags


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_parser(prog: str) -> OneLineParser:
    parser = OneLineParser(prog=prog)
    add_run_options(parser.add_argument)
    return parser


def add_run_options(add: Callable[..., Any]) -> None:
    for flags, kwargs in RUN_OPTIONS:
        add(*flags, **kwargs)


def hardware_plan(
    project: Project, requested: list[str], all_hardware: bool, dtype: str = "float32"
) -> list[str]:
    """The backends a run covers; unknown names (or openvino in half precision) are a
    UserError."""
    for name in requested:
        project.hardware_spec(name)
    if all_hardware:  # openvino runs f32 only: not part of a half-precision run
        plan = [hw for hw in project.hardware_names() if hardware.usable(hw) is None]
        plan = [hw for hw in plan if dtype == "float32" or hw != "openvino"]
    else:
        plan = list(dict.fromkeys(requested)) or ["cpu"]
    check_dtype(plan, dtype)
    return plan


def check_dtype(plan: list[str], dtype: str) -> None:
    if dtype != "float32" and "openvino" in plan:
        raise UserError(f"--dtype {dtype}: openvino runs in f32 (its INFERENCE_PRECISION_HINT)")


def results_dir(project: Project | None, option: str | None) -> Path:
    """--results-dir, else $HFMATRIX_RESULTS_DIR, else test_results/ (of the project)."""
    if option:
        path = Path(option)
    elif project is not None:
        path = project.results_dir
    else:
        path = Path(os.environ.get(RESULTS_ENV) or "test_results")
    return results.checked_results_dir(path)


def project_or_none() -> Project | None:
    try:
        return Project.find()
    except UserError:
        return None


def family_main(family_test: type[FamilyTest], argv: list[str] | None = None) -> int:
    """Entry point of ``python families/test_hf_<family>.py``."""
    from hfmatrix.runner import RunSettings

    parser = run_parser(f"test_hf_{family_test.family}.py")
    args = parser.parse_args(argv)
    try:
        project = Project.find(Path(inspect.getfile(family_test)).parent)
        models = project.select_models(
            family_test.family, args.model, args.all_models, args.representative
        )
        backends = hardware_plan(project, args.hardware, args.all_hardware, args.dtype)
        project.findings  # noqa: B018 -- a mistake there stops the run before any model
        plan = [(m, hw) for hw in backends for m in models]
        settings = RunSettings.from_options(args, results_dir(project, args.results_dir))
        records = [run_and_write(family_test, project, settings, plan, i) for i in range(len(plan))]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print_table(records)
    print(f"records: {settings.results_dir / 'raw'}")
    return 1 if any(findings.failing(r) for r in records) else 0


def run_and_write(
    family_test: type[FamilyTest], project: Project, settings: Any, plan: list, index: int
) -> dict:
    from hfmatrix.runner import run_model

    model_id, hw = plan[index]
    print(f"[{index + 1}/{len(plan)}] {family_test.family}: {model_id} on {hw} ...", flush=True)
    start = time.perf_counter()
    outcome = run_model(family_test, project, model_id, hw, settings, notify=say)
    record = outcome.record
    if outcome.resumed:
        print(f"    passed (resumed: record of {record['started_at']})", flush=True)
    else:
        reason = f": {record['reason'][:160]}" if record["reason"] else ""
        wall = time.perf_counter() - start  # with the test process's start
        print(f"    {record['status']} in {wall:.1f}s{reason}", flush=True)
        if findings.words(record):
            print(f"    {findings.words(record)}", flush=True)
    return record


def say(line: str) -> None:
    print(line, flush=True)


TABLE_TESTS = ("pipeline", "from_pretrained", "oracle")


def print_table(records: list[dict]) -> None:
    from tabulate import tabulate

    rows = [
        (r["model_id"], r["hardware"],
         f"{r['status']} (declared)" if findings.observed(r) else r["status"],
         *(r["tests"].get(t, {}).get("status", "-") for t in TABLE_TESTS),
         r["numerics"].get("max_abs_diff", "-"))
        for r in records
    ]  # fmt: skip
    headers = ("model", "hardware", "status", *TABLE_TESTS, "max |diff|")
    print(tabulate(rows, headers=headers))
