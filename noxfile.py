"""hfmatrix sessions: one per family, parametrized by hardware; plus tests, report, lint, matrix.

nox -s bert                          every hardware variant of the bert family
nox -s "bert(hardware='cpu')"        one family on one backend
nox -t cuda                          one backend across families
nox -s bert -- --model bert-base-uncased
nox -s report                        merge results into test_results/
nox -s discover                      refresh models.json from the Hub
nox -s matrix -- -t cpu              the GitHub Actions job matrix of those sessions (JSON)
nox -s bench                         benchmarks of hfmatrix itself
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nox
from nox.command import CommandFailed
from nox.virtualenv import PassthroughEnv

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))

from hfmatrix import ci_matrix, hardware, results  # noqa: E402 - torch-free parts of the harness
from hfmatrix.cli import check_dtype, forwarded_options, perf_settings, run_parser  # noqa: E402
from hfmatrix.errors import UserError  # noqa: E402
from hfmatrix.project import Project  # noqa: E402

nox.options.default_venv_backend = "uv"
nox.options.error_on_external_run = True

PROJECT = Project(ROOT)
FAMILIES = PROJECT.families()
# Probed once, without torch: a backend this machine lacks gets no virtualenv at all.
UNUSABLE = {hw: hardware.probe(hw) for hw in PROJECT.hardware_names()}
nox.options.sessions = [*FAMILIES, "report"]


def hardware_params() -> list:
    """One param per backend; ``python=False`` (no environment) where the backend is missing."""
    return [
        nox.param(hw, False if UNUSABLE[hw] else None, id=f"hardware={hw!r}", tags=[hw])
        for hw in UNUSABLE
    ]


def user_error(error: UserError | str) -> None:
    """A mistake in the user's input: one line, exit status 2."""
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(UserError.exit_code)


def write_outcome(
    out: Path, family: str, hw: str, model_id: str, reason: str, status: str, dtype: str
) -> None:
    """Record a model whose tests cannot run in this session (and why)."""
    entry = PROJECT.model_entry(family, model_id)
    record = results.outcome_record(
        family, entry.model_class, model_id, entry.tier, hw, reason, status, dtype
    )
    record["task"] = entry.task
    results.write_record(out, record)


def run_family(session: nox.Session, family: str, hw: str) -> None:
    """Build the family's environment for ``hw`` and run its tests through pytest."""
    args = run_parser(f"nox -s {family} --").parse_args(session.posargs)
    if args.hardware or args.all_hardware:
        user_error(
            f"the session picks the hardware: nox -s \"{family}(hardware='...')\" or nox -t HW"
        )
    try:
        models = PROJECT.select_models(family, args.model, args.all_models, args.representative)
        check_dtype([hw], args.dtype)
        perf_settings(args)
        base = PROJECT.install_requirements(family, hw, [])
        out = Path(session.invoked_from, args.results_dir or PROJECT.results_dir)
        results.checked_results_dir(out)
    except UserError as exc:
        user_error(exc)
    if UNUSABLE[hw]:
        for model_id in models:
            write_outcome(out, family, hw, model_id, UNUSABLE[hw], "skipped", args.dtype)
        session.skip(f"{hw}: {UNUSABLE[hw]} (recorded in {out / 'raw'})")
    if isinstance(session.virtualenv, PassthroughEnv):  # a prepared machine (--no-venv)
        session.run("python", "-m", "hfmatrix", "check-env", f"--family={family}",
                    f"--hardware={hw}", *(f"--model={m}" for m in models))  # fmt: skip
        runnable = models
    else:
        session.install("-e", str(ROOT), *base)
        runnable = [m for m in models if install_extras(session, out, family, hw, m, args.dtype)]
    if runnable:
        session.run(
            "python", "-m", "pytest", str(ROOT / "families" / f"test_hf_{family}.py"),
            f"--hardware={hw}", f"--results-dir={out}",
            *(f"--model={model_id}" for model_id in runnable), *forwarded_options(args),
            f"--junitxml={out / 'junit' / f'{results.session_name(family, hw, args.dtype)}.xml'}",
            "-p", "no:cacheprovider", "-v", "-rs",
        )  # fmt: skip
    if len(runnable) < len(models):
        session.error(f"{len(models) - len(runnable)} model(s) could not be installed")


def install_extras(
    session: nox.Session, out: Path, family: str, hw: str, model_id: str, dtype: str
) -> bool:
    """Install a model's additional_deps; a failure is that model's error record."""
    override = PROJECT.overrides.get(model_id)
    if override is None or not override.additional_deps:
        return True
    try:
        session.install(*override.additional_deps)
    except CommandFailed as exc:
        deps = ", ".join(override.additional_deps)
        reason = f"installing its additional_deps ({deps}) failed: {exc.reason} (see the nox log)"
        write_outcome(out, family, hw, model_id, reason, "error", dtype)
        return False
    return True


def family_session(family: str) -> None:
    @nox.session(name=family, tags=[family])
    @nox.parametrize(["hardware", "python"], hardware_params())
    def session(session: nox.Session, hardware: str) -> None:
        run_family(session, family, hardware)

    session.__doc__ = (
        f"The {family} family (env_specs/{family}.toml, families/test_hf_{family}.py)."
    )


for _family in FAMILIES:
    family_session(_family)


def install_every_family(session: nox.Session) -> None:
    """The harness with its test extras and every family's cpu dependencies."""
    try:
        requirements = [r for f in FAMILIES for r in PROJECT.install_requirements(f, "cpu", [])]
    except UserError as exc:
        user_error(exc)
    session.install("-e", f"{ROOT}[test]", *dict.fromkeys(requirements))


@nox.session
def tests(session: nox.Session) -> None:
    """The framework's own test suite."""
    install_every_family(session)  # the suite runs each family's tiny checkpoint
    # tiny models only: one torch thread each, instead of threads fighting over the cores
    session.run("python", "-m", "pytest", *session.posargs, env={"OMP_NUM_THREADS": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks of hfmatrix itself: our forward timing against torch's Timer, nox's
    overhead against a prepared environment, uv against pip (prints tables)."""
    install_every_family(session)
    session.run("python", "-m", "hfmatrix.bench", *session.posargs)


def hfmatrix_command(session: nox.Session, command: str) -> None:
    """Run ``hfmatrix <command>`` in an environment with the harness alone (no torch)."""
    if not isinstance(session.virtualenv, PassthroughEnv):
        session.install("-e", str(ROOT))
    session.run("python", "-m", "hfmatrix", command, *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Merge every raw record into test_results/ (by_class, by_hardware, summary, coverage)."""
    hfmatrix_command(session, "report")


@nox.session
def discover(session: nox.Session) -> None:
    """Refresh models.json from the Hub: the most downloaded models of each class."""
    hfmatrix_command(session, "discover")


@nox.session(python=False)
def matrix(session: nox.Session) -> None:
    """The GitHub Actions matrix of the family sessions: one line of JSON on stdout."""
    listing = session.run(
        sys.executable, "-m", "nox", "-f", __file__, "-l", "--json", "-s", *FAMILIES,
        silent=True, stderr=None,
    )  # fmt: skip
    try:
        jobs = ci_matrix.matrix(PROJECT, json.loads(listing), session.posargs)
    except UserError as exc:
        user_error(exc)
    print(json.dumps(jobs, separators=(",", ":")))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
