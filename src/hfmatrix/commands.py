"""The ``hfmatrix`` command: report, check-env, models, discover, coverage."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tabulate import tabulate

from hfmatrix.cli import (
    OneLineParser,
    count_value,
    project_or_none,
    ratio_value,
    results_dir,
    say,
    whole_number,
)
from hfmatrix.errors import UserError
from hfmatrix.merge import result_trees
from hfmatrix.project import Project
from hfmatrix.registry import TIERS, ModelEntry

AVAILABILITY_THREADS = 8


def main(argv: list[str] | None = None) -> int:
    """The ``hfmatrix`` command."""
    parser = OneLineParser(prog="hfmatrix", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser(
        "report", help="merge result trees into one and build its report (summary, dashboard)"
    )
    report.add_argument("trees", nargs="*", metavar="DIR",
                        help="result trees to merge in (a job's test_results/, or a folder of "
                             "them, one per artifact)")  # fmt: skip
    report.add_argument("--results-dir", default=None, metavar="DIR",
                        help="the merged tree (default: $HFMATRIX_RESULTS_DIR, else "
                             "test_results/)")  # fmt: skip
    report.add_argument("--baseline", action="append", default=[], metavar="PATH",
                        help="an earlier run to compare with: its test_results/ tree, its "
                             "summary.json or a folder of its job artifacts (repeatable, "
                             "oldest first: a history)")  # fmt: skip
    report.add_argument("--slower-ratio", type=ratio_value, default=None, metavar="R",
                        help="a target is slower from R times the baseline's median "
                             "latency (default 1.5, for shared machines)")  # fmt: skip
    report.add_argument("--fail-on", metavar="WHAT",
                        help="exit 1 when the comparison shows any of these: "
                             "new-failures,drift,slower (comma-separated)")  # fmt: skip
    check = commands.add_parser(
        "check-env", help="does this environment satisfy a family's env specs (prepared machines)"
    )
    check.add_argument("--family", required=True)
    check.add_argument("--hardware", required=True)
    check.add_argument("--model", action="append", default=[], metavar="ID")
    check.add_argument("--stack", metavar="NAME", help="its pins too (default: the default stack)")
    listing = commands.add_parser(
        "models", help="the registry's models (filtered), and whether each can run here"
    )
    listing.add_argument("--family")
    listing.add_argument("--class", dest="model_class", metavar="CLASS")
    listing.add_argument("--task")
    listing.add_argument("--tier", choices=TIERS)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    find = commands.add_parser(
        "discover", help="add the Hub's most downloaded models of each class to models.json"
    )
    find.add_argument("--per-class", type=count_value, default=5, metavar="N",
                      help="models kept per architecture class (default 5)")  # fmt: skip
    find.add_argument("--min-downloads", type=whole_number, default=1000, metavar="N",
                      help="leave out models with fewer downloads (default 1000)")  # fmt: skip
    find.add_argument("--scan", type=count_value, default=500, metavar="N",
                      help="models read per Hub query at most (default 500)")  # fmt: skip
    cover = commands.add_parser(
        "coverage", help="classes in models.json no family tests; families with no hub models"
    )
    cover.add_argument("--json", action="store_true", help="print JSON instead of tables")
    frozen = commands.add_parser(
        "freeze", help="regenerate the tiny checkpoints' files (tiny/) from their recipes"
    )
    frozen.add_argument("--family", action="append", default=[], metavar="F",
                        help="only these families (repeatable; default: all)")  # fmt: skip
    frozen.add_argument("--model", action="append", default=[], metavar="TINY_ID",
                        help="only these tiny checkpoints (repeatable)")  # fmt: skip
    frozen.add_argument("--check", action="store_true",
                        help="compare the committed files with the recipes (exit 1 when "
                             "they differ); write nothing")  # fmt: skip
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = {
        "report": write_report,
        "check-env": check_env,
        "models": list_models,
        "discover": discover,
        "coverage": show_coverage,
        "freeze": freeze_tiny,
    }[args.command]
    try:
        return handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def registry_coverage(project: Project) -> dict[str, Any]:
    from hfmatrix.registry import coverage

    specs = project.family_specs()
    classes = {family: list(spec.architectures) for family, spec in specs.items()}
    return coverage(project.models, classes, project.untested)


def write_report(args: argparse.Namespace) -> int:
    """``hfmatrix report``: the report tree, with the registry's coverage in a project, and
    its comparison with the baselines; exit 1 where --fail-on names what it shows."""
    from hfmatrix import baseline
    from hfmatrix.report import write_report

    gates = [] if args.fail_on is None else baseline.parse_gates(args.fail_on)
    for flag, given in (("--fail-on", args.fail_on), ("--slower-ratio", args.slower_ratio)):
        if given is not None and not args.baseline:
            raise UserError(f"{flag} needs --baseline PATH: there is nothing to compare with")
    project = project_or_none()
    directory = results_dir(project, args.results_dir)
    trees = [tree for value in args.trees for tree in result_trees(Path(value))]
    baselines = [baseline.load(Path(value)) for value in args.baseline]
    for tree in trees:
        print(f"report: merging {tree}", flush=True)
    for earlier in baselines:
        print(f"report: baseline {earlier.path} ({len(earlier.entries)} results)", flush=True)
    coverage = registry_coverage(project) if project else None
    ratio = args.slower_ratio or baseline.SLOWER_RATIO
    summary = write_report(directory, coverage, trees, baselines, ratio)
    totals = ", ".join(f"{k} {v}" for k, v in summary["totals"].items() if v)
    history = f", {summary['history']} older runs in history/" if summary["history"] else ""
    print(f"report: {directory / 'summary.md'} ({totals or 'no records'}{history})")
    if summary["comparison"] is None:
        return 0
    since = {k: v for k, v in summary["comparison"]["totals"].items() if v}
    print("report: since the baseline: " + (", ".join(f"{k} {v}" for k, v in since.items())
                                             or "nothing to compare"))  # fmt: skip
    failed = baseline.gated(summary["comparison"], gates)
    for line in failed:
        print(f"report: --fail-on {line}", file=sys.stderr)
    return 1 if failed else 0


def freeze_tiny(args: argparse.Namespace) -> int:
    """``hfmatrix freeze``: write tiny/<name>/ from each recipe and capture the golden values
    of a checkpoint that has none, or (``--check``) exit 1 when the committed files are not
    what the recipe builds on this stack."""
    from importlib import metadata

    from hfmatrix import freeze

    project = Project.find()
    stack = f"transformers {metadata.version('transformers')}"
    differing = 0
    for family, model_id in tiny_checkpoints(project, args.family, args.model):
        if not args.check:
            say(f"freeze: {model_id}: {freeze.write(project, family, model_id)} ({stack})")
            stored = freeze.capture_golden(project, family, model_id)
            if stored:
                say(f"freeze: {model_id}: golden values captured into {stored}")
            continue
        found = freeze.differences(project, family, model_id)
        differing += bool(found)
        verdict = "; ".join(
            f"{k} recipe {a[:16]} != frozen {b[:16]}" for k, (a, b) in found.items()
        )
        say(f"freeze --check: {model_id}: {verdict or 'the frozen files are the recipe'} "
            f"({stack})")  # fmt: skip
    return 1 if differing else 0


def tiny_checkpoints(project: Project, families: list[str], models: list[str]) -> list:
    """(family, tiny model id) for the given families' tiny checkpoints (default: every
    family's), or the given tiny ids; an unknown family or a non-tiny id is a UserError."""
    for family in families:
        project.family_spec(family)
    chosen = [
        (family, entry.model_id)
        for family in families or project.families()
        for entry in project.tiny_models(family)
    ]
    for model_id in models:
        entry = project.models.get(model_id)
        if entry is None or entry.tier != "tiny":
            raise UserError(f"--model {model_id}: not a tiny checkpoint in models.json",
                            project.root / "models.json")  # fmt: skip
    return [(family, model_id) for family, model_id in chosen if not models or model_id in models]


def list_models(args: argparse.Namespace) -> int:
    """``hfmatrix models``: the registry's entries that match, each with its availability."""
    from hfmatrix.registry import query
    from hfmatrix.sources import availability

    project = Project.find()
    if args.family is not None:
        project.family_spec(args.family)  # an unknown family is a mistake
    entries = query(project.models, args.family, args.model_class, args.task, args.tier)

    def row(entry: ModelEntry) -> dict[str, Any]:
        if entry.family is None:
            runs, where = False, "no family tests its class"
        else:
            runs, where = availability(entry.model_id, entry.tier)
        return {"model_id": entry.model_id, **entry.fields(), "available": runs, "where": where}

    with ThreadPoolExecutor(max_workers=AVAILABILITY_THREADS) as pool:  # each may ask the Hub
        rows = list(pool.map(row, entries))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    keys = ("model_id", "family", "class", "task", "tier", "downloads")
    table = [[*(row.get(key) for key in keys), "yes" if row["available"] else "no", row["where"]]
             for row in rows]  # fmt: skip
    headers = ("model", "family", "class", "task", "tier", "downloads", "runs here",
               "from / why not")  # fmt: skip
    print(tabulate(table, headers=headers, missingval="-") if rows else "no model matches")
    return 0


def discover(args: argparse.Namespace) -> int:
    """``hfmatrix discover``: models.json refreshed from the Hub, or left as it was."""
    from hfmatrix.discovery import DiscoveryError, Plan
    from hfmatrix.discovery import discover as ask_hub
    from hfmatrix.registry import write_models

    project = Project.find()
    path = project.root / "models.json"
    plan = Plan(args.per_class, args.min_downloads, args.scan)
    try:
        found = ask_hub(project.models, project.family_specs(), plan, say)
    except DiscoveryError as exc:
        print(f"error: hfmatrix discover: {exc}; {path} is unchanged", file=sys.stderr)
        return 1
    write_models(path, found.models)
    discovered = [e for e in found.models.values() if e.source == "discovered"]
    classes = {entry.model_class for entry in discovered}
    print(f"{path}: {len(discovered)} discovered models of {len(classes)} classes "
          f"({len(found.added)} new, {len(found.removed)} gone), "
          f"{len(found.models) - len(discovered)} curated")  # fmt: skip
    return 0


def show_coverage(args: argparse.Namespace) -> int:
    """``hfmatrix coverage``: what the families test against what models.json holds."""
    report = registry_coverage(Project.find())
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    rows = [[family, ", ".join(row["classes"]), row["models"], row["hub_models"]]
            for family, row in report["families"].items()]  # fmt: skip
    print(tabulate(rows, headers=("family", "classes tested", "models", "hub models")))
    print(f"\nfamilies with only their tiny checkpoint: {', '.join(report['tiny_only']) or '-'}")
    downloads = report["downloads"]
    share = downloads["share"]
    print("\nthe tested classes' share of models.json's downloads: " + (
        f"{share:.1%} ({downloads['tested_classes']:,} of {downloads['total']:,}, over "
        f"{downloads['counted_models']} models with a count)" if share is not None
        else "- (no model has a download count: run hfmatrix discover)"))  # fmt: skip
    untested = report["untested_classes"]
    print(f"\nclasses in models.json that no family tests: {len(untested)}")
    if untested:
        keys = ("class", "task", "models", "downloads", "most_downloaded", "why", "reason")
        table = [[row[key] for key in keys] for row in untested]
        print(tabulate(table, headers=[key.replace("_", " ") for key in keys], missingval="-"))
    return 0


def check_env(args: argparse.Namespace) -> int:
    """Print each requirement of (family, hardware, stack, models) with the installed version;
    exit 2 with one line naming what is missing or outside its range."""
    from importlib import metadata

    from hfmatrix.specs import installed_versions

    project = Project.find()
    stack = args.stack or project.default_stack().name
    own = metadata.requires("hfmatrix") or []  # the harness's own dependencies
    wanted = project.install_requirements(args.family, args.hardware, args.model, stack)
    requirements = [*wanted, *own]
    rows = installed_versions(list(dict.fromkeys(requirements)))
    table = [(req, version or "-", "yes" if ok else "NO") for req, version, ok in rows]
    print(tabulate(table, headers=("requirement", "installed", "satisfied")))
    unmet = [f"{req} ({version or 'not installed'})" for req, version, ok in rows if not ok]
    if unmet:
        specs = (f"env_specs/{args.family}.toml, env_specs/hardware/{args.hardware}.toml and "
                 f"env_specs/stacks/{stack}.toml")  # fmt: skip
        print(f"error: this environment does not satisfy {specs}: {'; '.join(unmet)}",
              file=sys.stderr)  # fmt: skip
        return UserError.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
