"""The GitHub Actions job matrix of the family sessions, every stack's (``nox -s matrix``);
needs no torch."""

from __future__ import annotations

import argparse
import re
from typing import Any

from hfmatrix.cli import OneLineParser
from hfmatrix.errors import UserError
from hfmatrix.project import Project
from hfmatrix.specs import is_runner_label


def runner_option(value: str) -> tuple[str, str]:
    """``--runner HW=LABEL`` as (hardware, label)."""
    hardware, sep, label = value.partition("=")
    if not sep or not hardware or not is_runner_label(label):
        raise argparse.ArgumentTypeError(f"{value!r} is not HW=LABEL (a label without spaces)")
    return hardware, label


def parser() -> OneLineParser:
    parser = OneLineParser(
        prog="nox -s matrix --",
        description="Print the GitHub Actions matrix of the family sessions: one line of JSON.",
    )
    parser.add_argument(
        "families", nargs="*", metavar="FAMILY",
        help="only these families, or sessions by name (bert-tf4) (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "-t", "--tags", action="append", default=[], metavar="TAG",
        help="only sessions with one of these tags, as nox -t does (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--runner", action="append", default=[], type=runner_option, metavar="HW=LABEL",
        help="run HW's jobs on runner LABEL, not env_specs/hardware/HW.toml's (repeatable)",
    )  # fmt: skip
    return parser


def runners(project: Project, overrides: list[tuple[str, str]]) -> dict[str, str]:
    """Each backend's runner label: its hardware spec's ``runner``, unless ``--runner`` says."""
    labels = {hw: project.hardware_spec(hw).runner for hw in project.hardware_names()}
    for hardware, label in overrides:
        if hardware not in labels:
            known = ", ".join(labels)
            raise UserError(f"--runner {hardware}={label}: unknown hardware {hardware!r} "
                            f"(known: {known})")  # fmt: skip
        labels[hardware] = label
    return labels


def family_sessions(project: Project) -> dict[str, tuple[str, str]]:
    """Each family session's name -> its (family, stack)."""
    return {
        project.session_name(family, stack): (family, stack)
        for stack in project.stacks()
        for family in project.families()
    }


def select(
    sessions: list[dict[str, Any]],
    owners: dict[str, tuple[str, str]],
    families: list[str],
    tags: list[str],
) -> list[dict]:
    """The sessions of ``families`` (a family, every stack's, or a session's name) that carry
    one of ``tags`` (no names or no tags: all)."""
    for kind, wanted, known in (
        ("family", families, {n for s in sessions for n in (s["name"], owners[s["name"]][0])}),
        ("tag", tags, {tag for s in sessions for tag in s["tags"]}),
    ):
        for name in wanted:
            if name not in known:
                raise UserError(f"unknown {kind} {name!r} (known: {', '.join(sorted(known))})")
    chosen = [
        s
        for s in sessions
        if (not families or {s["name"], owners[s["name"]][0]} & set(families))
        and (not tags or set(s["tags"]) & set(tags))
    ]
    if not chosen:
        raise UserError(f"no session of {', '.join(families)} has a tag {', '.join(tags)}")
    return chosen


def entry(
    session: dict[str, Any], owners: dict[str, tuple[str, str]], labels: dict[str, str]
) -> dict[str, str]:
    """One job: the nox session, its family, stack and backend, runner label and artifact
    name (``results-<family>-<hw>``; ``results-<family>-<stack>-<hw>`` off the default stack)."""
    (family, stack), hardware = owners[session["name"]], session["call_spec"]["hardware"]
    artifact = f"results-{session['name']}-{hardware}"
    return {
        "session": session["session"],
        "family": family,
        "stack": stack,
        "hardware": hardware,
        "runs-on": labels[hardware],
        "artifact": re.sub(r"[^\w.-]+", "-", artifact, flags=re.ASCII),
    }


def matrix(project: Project, sessions: list[dict[str, Any]], argv: list[str]) -> dict:
    """``{"include": [job, ...]}`` from the family sessions that ``nox -l --json`` lists."""
    args = parser().parse_args(argv)
    labels = runners(project, args.runner)
    owners = family_sessions(project)
    chosen = select(sessions, owners, args.families, args.tags)
    return {"include": [entry(s, owners, labels) for s in chosen]}
