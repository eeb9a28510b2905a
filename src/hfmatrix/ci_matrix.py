"""The GitHub Actions job matrix of the family sessions (``nox -s matrix``); needs no torch."""

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
        "families", nargs="*", metavar="FAMILY", help="only these families (default: all)"
    )
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


def select(sessions: list[dict[str, Any]], families: list[str], tags: list[str]) -> list[dict]:
    """The sessions of ``families`` that carry one of ``tags`` (no names or no tags: all)."""
    for kind, wanted, known in (
        ("family", families, {s["name"] for s in sessions}),
        ("tag", tags, {tag for s in sessions for tag in s["tags"]}),
    ):
        for name in wanted:
            if name not in known:
                raise UserError(f"unknown {kind} {name!r} (known: {', '.join(sorted(known))})")
    chosen = [
        s
        for s in sessions
        if (not families or s["name"] in families) and (not tags or set(s["tags"]) & set(tags))
    ]
    if not chosen:
        raise UserError(f"no session of {', '.join(families)} has a tag {', '.join(tags)}")
    return chosen


def entry(session: dict[str, Any], labels: dict[str, str]) -> dict[str, str]:
    """One job: the nox session, its family and backend, runner label and artifact name."""
    family, hardware = session["name"], session["call_spec"]["hardware"]
    return {
        "session": session["session"],
        "family": family,
        "hardware": hardware,
        "runs-on": labels[hardware],
        "artifact": re.sub(r"[^\w.-]+", "-", f"results-{family}-{hardware}", flags=re.ASCII),
    }


def matrix(project: Project, sessions: list[dict[str, Any]], argv: list[str]) -> dict:
    """``{"include": [job, ...]}`` from the family sessions that ``nox -l --json`` lists."""
    args = parser().parse_args(argv)
    labels = runners(project, args.runner)
    return {"include": [entry(s, labels) for s in select(sessions, args.families, args.tags)]}
