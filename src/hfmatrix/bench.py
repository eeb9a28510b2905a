"""``nox -s bench``: measures hfmatrix itself and prints the figures side by side.

- timer: each tiny family's ``forward`` p50 as --performance measures it, against
  torch.utils.benchmark.Timer on the same model and inputs (the agreement of our figure);
- overhead: a family's nox session on a warm uv cache against the same tests run by pytest
  in an environment already prepared (this one), and the whole cpu matrix likewise;
- envs: building one family's environment with uv against pip.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

from hfmatrix.cli import OneLineParser, count_value, positive
from hfmatrix.project import Project

PARTS = ("timer", "overhead", "envs")
AGREEMENT = 0.10  # our p50 within 10% of the independent timer's
MIN_CALLS = 100  # timed calls of each at least


def parse(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(prog="nox -s bench --", description=__doc__)
    parser.add_argument("--only", action="append", choices=PARTS, default=[],
                        help="run only these parts (repeatable; default: all)")  # fmt: skip
    parser.add_argument("--family", default="bert",
                        help="the overhead and envs parts' family (default bert)")  # fmt: skip
    parser.add_argument("--seconds", type=positive, default=3.0,
                        help="timed seconds per family and timer (default 3)")  # fmt: skip
    parser.add_argument("--repeats", type=count_value, default=1,
                        help="runs of each timed command; the best kept (default 1)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    project = Project.find()
    if args.family not in project.families():
        print(f"error: unknown family {args.family!r}", file=sys.stderr)
        return 2
    parts = args.only or list(PARTS)
    print(machine(), flush=True)
    ok = True
    if "timer" in parts:
        ok = timer_agreement(project, args.seconds)
    if "overhead" in parts:
        overhead(project, args.family, args.repeats)
    if "envs" in parts:
        environments(project, args.family)
    return 0 if ok else 1


def machine() -> str:
    import platform

    import psutil

    memory = psutil.virtual_memory().total / 1024**3
    cpu = platform.processor() or platform.machine()
    return (f"machine: {cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, "
            f"{platform.platform()}, Python {platform.python_version()}")  # fmt: skip


# ---------------------------------------------------------------- timer agreement


def timer_agreement(project: Project, seconds: float) -> bool:
    """Per tiny family: our forward p50 against torch.utils.benchmark.Timer's median of
    single calls (and, for scale, its blocked_autorange median, a mean per block)."""
    rows, ok = [], True
    for family in project.families():
        ours, single, ratio, blocked = forward_figures(project, family, seconds)
        agrees = abs(ratio - 1) <= AGREEMENT
        ok = ok and agrees
        rows.append([family, *(f"{value * 1e3:.4f}" for value in (ours, single, blocked)),
                     f"{ratio:.3f}", "yes" if agrees else "NO"])  # fmt: skip
        print(f"  {family}: ours {ours * 1e3:.4f} ms, Timer {single * 1e3:.4f} ms", flush=True)
    headers = ["family", "our p50 ms", "Timer median ms", "Timer blocked ms", "ratio",
               f"within {AGREEMENT:.0%}"]  # fmt: skip
    print("\nforward latency, tiny checkpoints on the CPU\n" + tabulate(rows, headers=headers))
    return ok


def forward_figures(
    project: Project, family: str, seconds: float
) -> tuple[float, float, float, float]:
    """On one loaded model: our forward p50 (the timing --performance does, call by call),
    Timer's median of single calls taken in alternation with ours (so both see the machine
    in the same state: a shared machine drifts from one second to the next), the ratio of
    the two, and for scale Timer's blocked_autorange median (a mean per block of calls)."""
    import torch
    from torch.utils.benchmark import Timer

    from hfmatrix import perf

    test = family_test_class(project, family)("tiny", project)
    model, processor, _ = test.load_model()
    clock, ours, single = perf.Clock(), [], []
    with torch.inference_mode():
        inputs = test.model_inputs(model, processor)
        timer = Timer("model(**inputs)", globals={"model": model, "inputs": inputs},
                      num_threads=torch.get_num_threads())  # fmt: skip
        perf.repeat(lambda: model(**inputs), perf.PerfSettings(iterations=1, duration_s=0), clock)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(ours) < MIN_CALLS:
            ours.append(clock.time(lambda: model(**inputs)))
            single.append(timer.timeit(1).median)
        blocked = timer.blocked_autorange(min_run_time=seconds).median
    mine, theirs = perf.percentile(ours, 50), perf.percentile(single, 50)
    return mine, theirs, mine / theirs, blocked


def family_test_class(project: Project, family: str) -> type:
    """The FamilyTest subclass that families/test_hf_<family>.py defines."""
    from hfmatrix.child import load_module
    from hfmatrix.harness import FamilyTest

    module = load_module(project.root / "families" / f"test_hf_{family}.py")
    (found,) = [value for value in vars(module).values()
                if isinstance(value, type) and issubclass(value, FamilyTest)
                and value.__module__ == module.__name__]  # fmt: skip
    return found


# ---------------------------------------------------------------- orchestration overhead


def overhead(project: Project, family: str, repeats: int) -> None:
    """nox (fresh environments from the warm uv cache) against pytest in this prepared
    environment: one family's cpu session, then the whole cpu matrix."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="hfmatrix-bench-") as tmp:
        work = Path(tmp)
        nox = [sys.executable, "-m", "nox", "-f", str(project.root / "noxfile.py")]
        session = f"{family}(hardware='cpu')"
        cases = [
            (f"{family} on cpu",
             [*nox, "-s", session, "--envdir", "{envs}", "--", "--model", "tiny",
              "--results-dir", "{out}"],
             [sys.executable, "-m", "pytest", f"families/test_hf_{family}.py", "--model",
              "tiny", "--results-dir", "{out}", "-q", "-p", "no:cacheprovider"]),
            ("the cpu matrix (8 families)",
             [*nox, "-t", "cpu", "--envdir", "{envs}", "--", "--model", "tiny",
              "--results-dir", "{out}"],
             [sys.executable, "-m", "pytest", "families", "--model", "tiny",
              "--results-dir", "{out}", "-q", "-p", "no:cacheprovider"]),
        ]  # fmt: skip
        for label, through_nox, prepared in cases:
            with_nox = best_of(repeats, through_nox, work, project.root)
            direct = best_of(repeats, prepared, work, project.root)
            rows.append([label, f"{with_nox:.1f}", f"{direct:.1f}", f"{with_nox / direct:.2f}"])
            print(f"  {label}: nox {with_nox:.1f} s, prepared {direct:.1f} s", flush=True)
    headers = ["run (tiny checkpoints)", "nox s", "prepared env s", "ratio"]
    print("\norchestration overhead (nox builds each environment from the warm uv cache)\n"
          + tabulate(rows, headers=headers))  # fmt: skip


def best_of(repeats: int, command: list[str], work: Path, cwd: Path) -> float:
    """The fastest wall time of ``command`` (fresh {envs} and {out} dirs each time)."""
    times = []
    for _ in range(repeats):
        envs, out = Path(tempfile.mkdtemp(dir=work)), Path(tempfile.mkdtemp(dir=work))
        args = [part.format(envs=envs, out=out) for part in command]
        times.append(timed(args, cwd))
        shutil.rmtree(envs, ignore_errors=True)
    return min(times)


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Wall seconds of a command that must succeed (its output's tail if it does not)."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})  # fmt: skip
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-2000:]
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{tail}")
    return time.perf_counter() - start


# ---------------------------------------------------------------- environment builds


def environments(project: Project, family: str) -> None:
    """One family's cpu environment built by uv and by pip, each from its cache as found
    (pip twice: the second run shows it warm)."""
    requirements = [f"-e{project.root}", *project.install_requirements(family, "cpu", [])]
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="hfmatrix-envs-") as tmp:
        for tool in ("uv", "pip", "pip"):
            venv = Path(tempfile.mkdtemp(dir=tmp))
            seconds = build(tool, venv, requirements, project.root)
            torch = installed(venv, "torch")
            rows.append([tool, f"{seconds:.1f}", torch])
            print(f"  {tool}: {seconds:.1f} s (torch {torch})", flush=True)
            shutil.rmtree(venv, ignore_errors=True)
    print(f"\nbuilding the {family} cpu environment ({len(requirements)} requirements)\n"
          + tabulate(rows, headers=["tool", "seconds", "torch"]))  # fmt: skip


def build(tool: str, venv: Path, requirements: list[str], cwd: Path) -> float:
    if tool == "uv":
        uv = shutil.which("uv") or "uv"
        return timed([uv, "venv", "-q", "-p", sys.executable, str(venv)], cwd) + timed(
            [uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), *requirements], cwd
        )
    return timed([sys.executable, "-m", "venv", str(venv)], cwd) + timed(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *requirements], cwd
    )


def installed(venv: Path, name: str) -> str:
    code = f"from importlib.metadata import version; print(version({name!r}))"
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                          text=True)  # fmt: skip
    return done.stdout.strip() or "-"


if __name__ == "__main__":
    raise SystemExit(main())
