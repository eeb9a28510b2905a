"""A family module run as a script from a Python that lacks the family's packages (a fresh
clone, after only the README's set-up step): the same arguments run in the family's nox
session, whose environment uv builds from env_specs/. Needs no torch; ``--help`` and a
mistaken argument are answered here."""

from __future__ import annotations

import os
import shlex
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from hfmatrix.cli import check_dtype, perf_settings, run_parser
from hfmatrix.errors import SETUP, UserError
from hfmatrix.project import Project
from hfmatrix.results import STACK_ENV
from hfmatrix.specs import installed_versions


def run_where_installed(script: Path, argv: list[str]) -> None:
    """Return when this Python has what ``script``'s family needs; else run ``argv`` in the
    family's nox session (this process becomes nox) or exit 2 naming what is missing."""
    family = script.stem.removeprefix("test_hf_")
    args = run_parser(script.name).parse_args(argv)  # --help answers here, without torch
    try:
        project = Project.find(script.parent)
        stack = os.environ.get(STACK_ENV) or project.default_stack().name
        project.select_models(family, args.model, args.all_models, args.representative)  # valid?
        hardware = list(dict.fromkeys(args.hardware)) or ["cpu"]
        check_dtype(hardware, args.dtype)
        perf_settings(args)
        missing = lacking(project, family, hardware, stack)
        if not missing:
            return  # a prepared environment: the script runs here
        nox = nox_command(project, family, stack, hardware, args.all_hardware, argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    print(f"{script.name}: this Python lacks {', '.join(missing)}; the same arguments run in "
          f"the family's environment: {shown(['python3', *nox[1:]])}", flush=True)  # fmt: skip
    os.execv(sys.executable, nox)


def lacking(project: Project, family: str, hardware: list[str], stack: str) -> list[str]:
    """The packages of the family's requirements (and the harness's) that this Python lacks.
    One it has in another version runs in place, as any prepared environment does."""
    wanted = [r for hw in hardware for r in project.install_requirements(family, hw, [], stack)]
    try:
        wanted += metadata.requires("hfmatrix") or []
    except metadata.PackageNotFoundError:
        wanted.append("hfmatrix")
    rows = installed_versions(list(dict.fromkeys(wanted)))
    return list(dict.fromkeys(Requirement(req).name for req, version, _ok in rows if not version))


def nox_command(
    project: Project, family: str, stack: str, hardware: list[str], every: bool, argv: list[str]
) -> list[str]:
    """``python -m nox`` for the family's session on each backend, with ``argv`` (less the
    hardware, which picks the session) after ``--``."""
    try:
        metadata.version("nox")
    except metadata.PackageNotFoundError:
        raise UserError(
            f"this Python has neither the {family} family's packages nor nox to build their "
            f"environment: run the README's set-up step ({SETUP})"
        ) from None
    name = project.session_name(family, stack)
    sessions = [name] if every else [f"{name}(hardware={hw!r})" for hw in hardware]
    rest = without_hardware(argv)
    noxfile = str(project.root / "noxfile.py")
    return [sys.executable, "-m", "nox", "-f", noxfile, "-s", *sessions, "--", *rest]


def without_hardware(argv: list[str]) -> list[str]:
    """``argv`` less --hardware X, --hardware=X and --all-hardware."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--hardware":
            skip = True
        elif not arg.startswith("--hardware=") and arg != "--all-hardware":
            rest.append(arg)
    return rest


def shown(command: list[str]) -> str:
    """``command`` as a shell line, a session name in double quotes as the README writes it."""
    return " ".join(f'"{arg}"' if "'" in arg and '"' not in arg else shlex.quote(arg)
                    for arg in command)  # fmt: skip
