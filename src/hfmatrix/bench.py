"""``nox -s bench``: measures hfmatrix itself and prints the figures side by side.

- timer: each tiny family's ``forward`` p50 as --performance measures it, against
  torch.utils.benchmark.Timer on the same model and inputs (the agreement of our figure);
- overhead: a family's nox session on a warm uv cache against the same tests run by pytest
  in an environment already prepared (this one), and the whole cpu matrix likewise;
- envs: building one family's environment with uv against pip;
- imports: what a session costs beyond one import of its stack and its tests run in-process
  (a family's session, each extra model, the cpu matrix), against the targets below;
- suite: the framework's own test suite (``nox -s tests``) against its target.
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
from hfmatrix.merge import load, record_files
from hfmatrix.project import Project

PARTS = ("timer", "overhead", "envs", "imports", "suite")
SESSION_RATIO = 1.2  # a family's session with its tiny model, over its floor
EXTRA_MODEL_S = 1.0  # each extra model's cost beyond its own tests
MATRIX_RATIO = 1.3  # the cpu matrix over the sum of the families' floors
SUITE_S = 8 * 60.0  # nox -s tests
EXTRA_COPIES = 3  # local copies of the tiny checkpoint added to a session
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
    if "imports" in parts:
        ok = one_import(project, args.family, args.repeats) and ok
    if "suite" in parts:
        ok = suite(project) and ok
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


def timed(
    command: list[str], cwd: Path, env: dict[str, str] | None = None, accept: tuple = (0,)
) -> float:
    """Wall seconds of a command that must exit with a status in ``accept`` (its output's
    tail if it does not)."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})  # fmt: skip
    if done.returncode not in accept:
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


# ---------------------------------------------------------------- one import per session

FLOOR = """
import sys
from pathlib import Path
sys.path.insert(0, {families!r})
from hfmatrix.bench import family_test_class
from hfmatrix.project import Project
project = Project(Path({root!r}))
record = family_test_class(project, {family!r})("tiny", project).run_tests("cpu")
sys.exit(record["status"] != "passed")
"""


def one_import(project: Project, family: str, repeats: int) -> bool:
    """Each family's floor (a fresh interpreter importing its stack and running its tiny
    model's tests in-process), against its nox session (environments built beforehand);
    each extra model of a session; the cpu matrix against the sum of the floors."""
    floors = {f: best_floor(project, f, repeats) for f in project.families()}
    for name, seconds in floors.items():
        print(f"  floor of {name}: {seconds:.1f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="hfmatrix-bench-") as tmp:
        work = Path(tmp)
        envs = work / "envs"
        nox = [sys.executable, "-m", "nox", "-f", str(project.root / "noxfile.py"),
               "--envdir", str(envs), "--reuse-existing-virtualenvs"]  # fmt: skip
        matrix = [*nox, "-t", "cpu", "--", "--model", "tiny"]
        timed([*matrix, "--results-dir", str(work / "warmup")], project.root)  # builds them
        session = [*nox, "-s", f"{family}(hardware='cpu')", "--", "--model", "tiny"]
        alone, _ = best_nox(repeats, session, work, project.root)
        copies = [shutil.copytree(project.root / "tiny" / family, work / f"copy{i}")
                  for i in range(EXTRA_COPIES)]  # fmt: skip
        more = [*session, *(arg for c in copies for arg in ("--model", str(c)))]
        # the untrained copies fail the class oracle as local models: a result, timed too
        with_copies, out = best_nox(repeats, more, work, project.root, accept=(0, 1))
        own = sum(r["duration_s"] for r in map(load, record_files(out)) if r["tier"] != "tiny")
        whole, _ = best_nox(repeats, matrix, work, project.root)
    extra = (with_copies - alone - own) / EXTRA_COPIES
    rows = [
        [f"{family} session, tiny only", f"{alone:.1f}", f"floor {floors[family]:.1f}",
         f"{alone / floors[family]:.2f}", f"<= {SESSION_RATIO}"],
        [f"each extra model ({EXTRA_COPIES} local copies)", f"{extra:.2f}",
         f"own tests {own / EXTRA_COPIES:.2f}", "-", f"<= {EXTRA_MODEL_S:g} s"],
        ["the cpu matrix (nox -t cpu)", f"{whole:.1f}", f"floors {sum(floors.values()):.1f}",
         f"{whole / sum(floors.values()):.2f}", f"<= {MATRIX_RATIO}"],
    ]  # fmt: skip
    verdicts = [alone <= SESSION_RATIO * floors[family], extra <= EXTRA_MODEL_S,
                whole <= MATRIX_RATIO * sum(floors.values())]  # fmt: skip
    for row, met in zip(rows, verdicts, strict=True):
        row.append("yes" if met else "NO")
    print(
        "\none import per session (tiny checkpoints, cpu; environments built beforehand)\n"
        + tabulate(rows, headers=["run", "seconds", "against", "ratio", "target", "met"])
    )
    return all(verdicts)


def best_floor(project: Project, family: str, repeats: int) -> float:
    code = FLOOR.format(families=str(project.root / "families"), root=str(project.root),
                        family=family)  # fmt: skip
    return min(timed([sys.executable, "-c", code], project.root) for _ in range(repeats))


def best_nox(
    repeats: int, command: list[str], work: Path, cwd: Path, accept: tuple = (0,)
) -> tuple[float, Path]:
    """The fastest wall time of a nox run into a fresh results dir, and that run's dir."""
    runs = []
    for _ in range(repeats):
        out = Path(tempfile.mkdtemp(dir=work))
        runs.append((timed([*command, "--results-dir", str(out)], cwd, accept=accept), out))
    return min(runs)


def suite(project: Project) -> bool:
    """The wall time of ``nox -s tests`` (its environment built from the warm uv cache)."""
    with tempfile.TemporaryDirectory(prefix="hfmatrix-bench-") as tmp:
        nox = [sys.executable, "-m", "nox", "-f", str(project.root / "noxfile.py"),
               "--envdir", tmp, "-s", "tests"]  # fmt: skip
        seconds = timed(nox, project.root)
    met = seconds <= SUITE_S
    print("\nthe framework's test suite\n" + tabulate(
        [["nox -s tests", f"{seconds:.0f}", f"<= {SUITE_S:.0f}", "yes" if met else "NO"]],
        headers=["run", "seconds", "target", "met"]))  # fmt: skip
    return met


if __name__ == "__main__":
    raise SystemExit(main())
