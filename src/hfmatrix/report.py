"""The report of a result tree (merged with others): by_class/, by_hardware/, summary.json,
summary.md and the index.html dashboard."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tabulate import tabulate

from hfmatrix import baseline, drift, findings, oracle
from hfmatrix.dashboard import render_dashboard
from hfmatrix.files import atomic_write_text
from hfmatrix.merge import Merged, fingerprint, host, key, merge, write_tree
from hfmatrix.results import (
    STATUSES,
    default_stack_name,
    now,
    record_label,
    slug,
    stack_name,
)

SUMMARY_SCHEMA = "hfmatrix.summary/6"
PERF_TARGETS = ("forward", "generate")  # the performance figures a matrix cell summarises
REASON_WIDTH = 80
FINDING_WIDTH = 300  # a finding's reason as a grid cell's list keeps it
UNKNOWN_CLASS = "(class not recorded)"
ORACLE_TESTS = ("oracle", "published")  # a hub or local model's tests of trained behaviour


# ---------------------------------------------------------------- reading


def build_report(results_dir: Path, inputs: list[Path] | tuple[Path, ...] = ()) -> Merged:
    """results_dir's records merged with those of the ``inputs`` trees (newest per key)."""
    trees = [Path(results_dir).resolve(), *(Path(tree).resolve() for tree in inputs)]
    return merge(list(dict.fromkeys(trees)))


def _column(record: dict[str, Any]) -> str:
    """The record's matrix column: ``cpu``, ``cuda-float16``, ``cpu@tf4`` (another stack)."""
    return key(record)[2]


def _stack(record: dict[str, Any]) -> str:
    """The name of the record's stack (the default stack's for a record that names none)."""
    return stack_name(record) or default_stack_name()


def _columns(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each matrix column's backend, dtype and stack, and its label in words (the most
    common among its records)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(_column(record), []).append(record)
    columns = {}
    for name, group in sorted(groups.items()):
        ran = [record for record in group if record.get("tests")]  # skips say less of a stack
        labels = Counter(record_label(record) for record in ran or group)
        first = group[0]
        columns[name] = {"hardware": first["hardware"], "dtype": first.get("dtype") or None,
                         "stack": _stack(first), "label": labels.most_common(1)[0][0]}  # fmt: skip
    return columns


# ---------------------------------------------------------------- summarising


def cell_status(counts: dict[str, int]) -> str:
    """One status for a set of results: error > failed > passed > skipped."""
    if counts.get("error") or counts.get("timeout"):
        return "error"
    if counts.get("failed"):
        return "failed"
    return "passed" if counts.get("passed") else "skipped"


def _counts(records: list[dict[str, Any]]) -> dict[str, int]:
    tally = Counter(record["status"] for record in records)
    return {status: tally.get(status, 0) for status in STATUSES}


def _cells(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """column -> cell: the records on each column."""
    return {hw: _matrix_cell(group) for hw, group in sorted(_grouped(records, _column).items())}


def _matrix(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """family -> column -> cell: each family's records on each column."""
    return {family: _cells(group) for family, group in sorted(_grouped(records, _family).items())}


def _family(record: dict[str, Any]) -> str:
    return record["family"]


def _model_class(record: dict[str, Any]) -> str:
    name = record.get("model_class")
    return name if isinstance(name, str) and name else UNKNOWN_CLASS


def _class_matrix(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """family -> class -> column -> cell: the class x hardware grid, grouped by family."""
    return {
        family: {name: _cells(mine) for name, mine in sorted(_grouped(group, _model_class).items())}
        for family, group in sorted(_grouped(records, _family).items())
    }


def _matrix_cell(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Status and counts of one (class, hardware) cell, with the measured difference of the
    record closest to (or furthest past) its tolerance, whether greedy ids matched, and what
    failed (``findings``: each failing record's model, status and reason, and the declared
    finding it is, if any)."""
    counts = {k: v for k, v in _counts(records).items() if v}
    failing = [record for record in records if record["status"] in findings.FAILING]
    cell: dict[str, Any] = {"status": _status(records), "counts": counts}
    if failing:
        cell["findings"] = [_finding(record) for record in failing]
    measured = [
        numerics
        for numerics in (_dict(r.get("numerics")) for r in records)
        if _number(numerics.get("max_abs_diff")) and _number(numerics.get("atol"))
    ]
    if measured:
        worst = max(measured, key=lambda n: n["max_abs_diff"] / n["atol"])
        cell.update({key: worst.get(key) for key in ("max_abs_diff", "atol", "reference")})
    ids = [n["greedy_ids_match"] for n in measured if isinstance(n.get("greedy_ids_match"), bool)]
    if ids:
        cell["greedy_ids_match"] = all(ids)
    performance = _cell_performance(records)
    if performance:
        cell["performance"] = performance
    return cell


def _status(records: list[dict[str, Any]]) -> str:
    """The cell's status: its records' (cell_status), declared findings set aside; where
    those are its only failures, ``declared``."""
    undeclared = [record for record in records if not findings.observed(record)]
    status = cell_status(_counts(undeclared))
    return "declared" if status in ("passed", "skipped") and undeclared != records else status


def _finding(record: dict[str, Any]) -> dict[str, Any]:
    """A failing record as a grid cell lists it."""
    finding = _dict(record.get("finding"))
    return {
        "model_id": record["model_id"],
        "status": record["status"],
        "reason": _short(str(record.get("reason") or ""), FINDING_WIDTH),
        "declared": finding.get("reason") if findings.observed(record) else None,
    }


def _findings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every failing record (declared finding or not) and every declared finding that did
    not occur, by family, class and column."""
    rows = []
    for record in records:
        finding = _dict(record.get("finding"))
        if record["status"] not in findings.FAILING and not finding:
            continue
        if finding.get("observed"):
            state = "declared"
        else:
            state = "declared, did not occur" if finding else "new"
        rows.append({
            "family": record["family"], "model_class": _model_class(record),
            "model_id": record["model_id"], "hardware": _column(record),
            "status": record["status"], "finding": state,
            "reason": str(record.get("reason") or ""),
            "declared": finding.get("reason"), "declared_in": finding.get("declared_in"),
        })  # fmt: skip
    return sorted(rows, key=lambda r: (r["family"], r["model_class"], r["hardware"],
                                       r["model_id"]))  # fmt: skip


def _cell_performance(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per key target (forward, generate): the median over the cell's models of each figure,
    among the models measured with the settings most of them used (batch sizes or token
    counts do not mix), with those settings."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        row = _performance(record)
        if row:
            settings = _dict(record["performance"]).get("settings")
            groups.setdefault(json.dumps(settings, sort_keys=True), []).append(row)
    if not groups:
        return {}
    settings, rows = max(sorted(groups.items()), key=lambda item: len(item[1]))
    figures: dict[str, dict[str, Any]] = {}
    for name in PERF_TARGETS:
        found = [row[name] for row in rows if name in row]
        if found:
            figures[name] = {key: _median([f[key] for f in found])
                             for key in ("p50_s", "p90_s", "throughput", "max_ram_mb")}  # fmt: skip
            figures[name] |= {"throughput_unit": found[0]["throughput_unit"],
                              "models": len(found), "settings": json.loads(settings)}  # fmt: skip
    return figures


def _median(values: list[Any]) -> float | None:
    numbers = [value for value in values if _number(value)]
    return statistics.median(numbers) if numbers else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _model_row(record: dict[str, Any], history: Counter) -> dict[str, Any]:
    tests = _dict(record.get("tests"))
    numerics = _dict(record.get("numerics"))
    return {
        "family": record["family"],
        "model_class": _model_class(record),
        "model_id": record["model_id"],
        "tier": record.get("tier"),
        "hardware": _column(record),
        "stack": _stack(record),
        "label": record_label(record),
        "status": record["status"],
        "reason": str(record.get("reason") or ""),
        "tests": {name: _dict(test).get("status") for name, test in tests.items()},
        "max_abs_diff": numerics.get("max_abs_diff"),
        "atol": numerics.get("atol"),
        "environment": fingerprint(record),
        "host": host(record),
        "started_at": record.get("started_at"),
        "duration_s": record.get("duration_s"),
        "performance": _performance(record),
        "history": history.get(key(record), 0),
        "expectations": dict(_dict(record.get("expectations"))),
        "oracle": _oracle(record),
        "finding": _dict(record.get("finding")) or None,
        "checkpoint": baseline.checkpoint(record),
    }


def _oracle(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's class-oracle and published-value checks, each with its verdict:
    passed, near bound (passed within oracle.NEAR of its bound), failed or n/a."""
    rows = []
    for test in ORACLE_TESTS:
        for check in _dict(_dict(record.get("tests")).get(test)).get("checks") or []:
            share = oracle.margin(check)
            rows.append({
                "check": f"{test}.{check.get('name')}",
                "verdict": _oracle_verdict(check),
                "value": check.get("value"),
                "bound": check.get("bound"),
                "below": check.get("below"),
                "margin": None if share is None else round(share, 4),
                "source": check.get("source"),
                "detail": check.get("not_applicable") or check.get("detail") or "",
            })  # fmt: skip
    return rows


def _oracle_verdict(check: dict[str, Any]) -> str:
    if check.get("not_applicable"):
        return "n/a"
    if not check.get("passed"):
        return "failed"
    return "near bound" if oracle.near_bound(check) else "passed"


def _performance(record: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """Per target of the record's performance block: p50, p90, throughput, max_ram."""
    targets = _dict(_dict(record.get("performance")).get("targets"))
    figures = {}
    for name, target in targets.items():
        latency, throughput = _dict(_dict(target).get("latency")), _dict(target.get("throughput"))
        figures[name] = {
            "p50_s": latency.get("p50"),
            "p90_s": latency.get("p90"),
            "throughput": throughput.get("value"),
            "throughput_unit": throughput.get("unit"),
            "max_ram_mb": _dict(target.get("memory")).get("max_ram"),
        }
    return figures or None


def _environments(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The software stacks behind the records: versions, hosts, sessions, record count."""
    stacks: dict[str, dict[str, Any]] = {}
    for record in records:
        environment = _dict(record.get("environment"))
        stack = stacks.setdefault(fingerprint(record), {
            **{name: environment.get(name) for name in ("python", "torch", "transformers",
                                                         "platform")},
            "hosts": [], "sessions": [], "records": 0,
        })  # fmt: skip
        stack["records"] += 1
        for field, value in (("hosts", host(record)), ("sessions", record.get("session"))):
            if value and value not in stack[field]:
                stack[field] = sorted([*stack[field], value])
    return dict(sorted(stacks.items()))


def summarize(
    results_dir: Path,
    merged: Merged,
    registry: dict[str, Any] | None = None,
    inputs: list[Path] | tuple[Path, ...] = (),
    baselines: list[baseline.Baseline] | tuple[baseline.Baseline, ...] = (),
    ratio: float = baseline.SLOWER_RATIO,
) -> dict[str, Any]:
    """The summary.json document of a merge; with the registry's coverage
    (registry.coverage), the coverage of each family by these records too; with baselines,
    the comparison with them (``comparison``, a target slower from ``ratio`` up, and each
    grid cell's ``since``)."""
    records = merged.records
    history = Counter(run.key for run in merged.history)
    compared = drift.drift(records)
    comparison = baseline.compare(records, list(baselines), ratio) if baselines else None
    matrix, classes = _matrix(records), _class_matrix(records)
    if comparison:
        _since(matrix, classes, comparison["rows"])
    return {
        "schema": SUMMARY_SCHEMA,
        "generated_at": now(),
        "results_dir": str(results_dir),
        "inputs": [str(tree) for tree in inputs],
        "totals": {**_counts(records), "total": len(records)},
        "history": len(merged.history),
        "columns": _columns(records),
        "comparison": comparison,
        "matrix": matrix,
        "classes": classes,
        "findings": _findings(records),
        "models": [_model_row(record, history) for record in records],
        "drift": compared,
        "drift_totals": drift.totals(compared),
        "oracle_totals": dict(
            Counter(item["verdict"] for record in records for item in _oracle(record))
        ),
        "coverage": None if registry is None else _coverage(records, registry),
        "environments": _environments(records),
        "unreadable": merged.unreadable,
    }


def _since(matrix: dict[str, Any], classes: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Give each grid cell ``since``: its (model, column)s' events since the baseline (new
    failure, drift, slower, fixed, ...), counted."""
    for row in rows:
        if row["transition"] == "gone":  # not in this run's grid
            continue
        name = _model_class(row)  # as the grid names it
        for cell in (matrix[row["family"]][row["column"]],
                     classes[row["family"]][name][row["column"]]):  # fmt: skip
            since = cell.setdefault("since", {})
            for event in row["events"]:
                since[event] = since.get(event, 0) + 1


def _coverage(records: list[dict[str, Any]], registry: dict[str, Any]) -> dict[str, Any]:
    """The registry's coverage, each family with the models these records tested (any
    hardware) and those that passed everywhere they ran."""
    families = {}
    for family, row in registry["families"].items():
        mine = [record for record in records if record["family"] == family]
        statuses: dict[str, set[str]] = {}
        for record in mine:
            statuses.setdefault(record["model_id"], set()).add(record["status"])
        ran = {m: s for m, s in statuses.items() if s - {"skipped"}}
        passed = [m for m, s in ran.items() if s <= {"passed", "skipped"}]
        families[family] = {**row, "tested_models": len(ran), "passed_models": len(passed)}
    return {**registry, "families": families}


# ---------------------------------------------------------------- markdown


def _cell(text: Any) -> str:
    """A value made safe for one cell of a GitHub table."""
    return " ".join(str("" if text is None else text).split()).replace("|", "\\|")


def _short(text: str, width: int = REASON_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _diff(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    heads = [_cell(name) for name in headers]
    return tabulate(cells, headers=heads, tablefmt="github", disable_numparse=True)


def _label(summary: dict[str, Any], column: str) -> str:
    return (summary.get("columns") or {}).get(column, {}).get("label") or column


def _hardware(summary: dict[str, Any]) -> list[str]:
    return sorted({hw for cells in summary["matrix"].values() for hw in cells})


def _cell_md(cell: dict[str, Any] | None) -> str:
    """A grid cell in words: counts, max |diff|, greedy ids, "(declared)" where every
    failure in it is a declared finding."""
    if not cell:
        return "-"
    text = ", ".join(f"{status} {n}" for status, n in cell.get("counts", {}).items())
    if cell.get("status") == "declared":
        text += " (declared)"
    if cell.get("max_abs_diff") is not None:
        text += f" (max |diff| {_diff(cell['max_abs_diff'])})"
    if cell.get("greedy_ids_match") is not None:
        text += ", ids " + ("match" if cell["greedy_ids_match"] else "DIFFER")
    return text or "-"


def _matrix_md(summary: dict[str, Any]) -> str:
    """One row per family, summing its classes."""
    hardware = _hardware(summary)
    rows = [[family, *(_cell_md(cells.get(hw)) for hw in hardware)]
            for family, cells in summary["matrix"].items()]  # fmt: skip
    return _table(["family", *(_label(summary, hw) for hw in hardware)], rows)


def _classes_md(summary: dict[str, Any]) -> str:
    """One row per class, grouped under its family (named on the group's first row)."""
    hardware = _hardware(summary)
    rows = [
        [family if i == 0 else "", name, *(_cell_md(cells.get(hw)) for hw in hardware)]
        for family, classes in (summary.get("classes") or {}).items()
        for i, (name, cells) in enumerate(classes.items())
    ]
    return _table(["family", "class", *(_label(summary, hw) for hw in hardware)], rows)


def _findings_md(summary: dict[str, Any]) -> str:
    """What failed, per class and column: declared findings (with the declaration's reason),
    new failures, and declared findings that did not occur."""
    rows = [[row["family"], row["model_class"], row["model_id"], row["hardware"], row["status"],
             row["finding"], _short(row["declared"] or ""), _short(row["reason"], 160)]
            for row in summary.get("findings") or []]  # fmt: skip
    headers = ["family", "class", "model", "hardware", "status", "finding", "declared as",
               "reason"]  # fmt: skip
    return _table(headers, rows) if rows else ""


def _models_md(summary: dict[str, Any]) -> str:
    headers = ["family", "model", "hardware", "status", "pipeline", "from_pretrained"]
    headers += ["oracle", "max |diff|", "reason"]
    rows = [
        [
            row["family"],
            row["model_id"],
            row["hardware"],
            row["status"],
            row["tests"].get("pipeline") or "-",
            row["tests"].get("from_pretrained") or "-",
            row["tests"].get("oracle") or "-",
            _diff(row["max_abs_diff"]),
            _short(row["reason"]),
        ]
        for row in summary["models"]
    ]
    return _table(headers, rows)


def _oracle_md(summary: dict[str, Any]) -> str:
    """Each hub or local model's class-oracle and published-value checks: the measured value
    beside its bound, how far from it, and the verdict (n/a with its reason)."""
    rows = []
    for row in summary["models"]:
        for item in row.get("oracle") or []:
            bound = item["bound"]
            side = "" if bound is None else ("< " if item["below"] is not False else ">= ")
            margin = "" if item["margin"] is None else f"{100 * item['margin']:.0f}%"
            verdict = item["verdict"].upper() if item["verdict"] != "passed" else "passed"
            detail = item["detail"] if item["verdict"] in ("n/a", "failed") else ""
            rows.append([
                row["family"], row["model_id"], row["hardware"], item["check"],
                _number_text(item["value"]), f"{side}{_number_text(bound)}" if side else "",
                margin, verdict, _short(detail or item["source"] or ""),
            ])  # fmt: skip
    headers = ["family", "model", "hardware", "check", "value", "bound", "margin", "verdict"]
    return _table([*headers, "reason or source"], rows) if rows else ""


def _number_text(value: Any) -> str:
    return "" if value is None else f"{value:.4g}"


def _expectations_md(summary: dict[str, Any]) -> str:
    """The golden values held to a stack's declared difference, per model and column."""
    rows = [
        [row["family"], row["model_id"], row["hardware"], check, _short(label)]
        for row in summary["models"]
        for check, label in sorted(row.get("expectations", {}).items())
    ]
    return (
        _table(["family", "model", "hardware", "check", "declared for (why)"], rows) if rows else ""
    )


def _performance_md(summary: dict[str, Any]) -> str:
    """Per class and column, the median over its models of the key targets' figures; the
    family named on its first row."""
    rows = []
    for family, classes in (summary.get("classes") or {}).items():
        for name, cells in classes.items():
            for column, cell in cells.items():
                for target, figures in cell.get("performance", {}).items():
                    rate = f"{_diff(figures['throughput'])} {figures['throughput_unit'] or ''}"
                    rows.append([family, name, column, target, figures["models"],
                                 _ms(figures["p50_s"]), _ms(figures["p90_s"]), rate.strip(),
                                 _diff(figures["max_ram_mb"])])  # fmt: skip
                    family = ""
    headers = ["family", "class", "hardware", "target", "models", "p50 ms", "p90 ms",
               "throughput", "max_ram MB"]  # fmt: skip
    return _table(headers, rows) if rows else ""


def _ms(seconds: Any) -> str:
    return _diff(seconds * 1000) if _number(seconds) else ""


def _coverage_md(coverage: dict[str, Any]) -> str:
    headers = ["family", "classes tested", "models.json models", "hub", "tested", "passed"]
    rows = [
        [family, ", ".join(row["classes"]), row["models"], row["hub_models"],
         row["tested_models"], row["passed_models"]]
        for family, row in coverage["families"].items()
    ]  # fmt: skip
    parts = [_table(headers, rows)]
    if coverage["tiny_only"]:
        parts.append(
            f"Families with only their tiny checkpoint: {', '.join(coverage['tiny_only'])}."
        )
    share = (coverage.get("downloads") or {}).get("share")
    if share is not None:
        parts.append(f"The tested classes hold {share:.1%} of models.json's downloads.")
    untested = coverage["untested_classes"]
    if untested:
        keys = ["class", "task", "models", "downloads", "most_downloaded", "why", "reason"]
        parts.append(f"Classes in models.json that no family tests ({len(untested)}):")
        parts.append(_table([k.replace("_", " ") for k in keys],
                            [[row.get(k) for k in keys] for row in untested]))  # fmt: skip
    return "\n\n".join(parts)


def _yes_no(value: Any) -> str:
    return "" if value is None else "yes" if value else "NO"


def _drift_md(summary: dict[str, Any]) -> str:
    """Per model (and checkpoint): its baseline, and each other record's agreement with it."""
    totals = summary.get("drift_totals") or {}
    parts = [", ".join(f"{status} {totals.get(status, 0)}" for status in drift.STATUSES)]
    headers = ["stack", "column", "status", "max |diff|", "atol", "greedy ids equal",
               "pipeline equal", "first difference"]  # fmt: skip
    for group in summary["drift"]:
        base = group["baseline"]
        checkpoint = f", checkpoint {group['checkpoint'][:12]}" if group["checkpoint"] else ""
        parts.append(f"### {group['family']} · {group['model_id']} ({group['dtype']}{checkpoint})")
        parts.append(f"Baseline: {base['label']} (stack {base['stack']}).")
        rows = [[row["stack"], row["label"], row["status"], _diff(row["max_abs_diff"]),
                 _diff(row["atol"]), _yes_no(row["greedy_ids_equal"]),
                 _yes_no(row["pipeline_equal"]), row["where"] or ""]
                for row in group["rows"]]  # fmt: skip
        parts.append(_table(headers, rows))
    return "\n\n".join(parts)


def _performance_words(row: dict[str, Any]) -> str:
    """The row's compared targets: ``forward slower x1.6 (p 2e-06)``."""
    words = []
    for name, target in (row.get("performance") or {}).items():
        if target["status"] in ("slower", "slower once", "faster"):
            p_value = target["p_faster" if target["status"] == "faster" else "p_slower"]
            words.append(f"{name} {target['status']} x{target['ratio']:.2f} (p {p_value:.1g})")
    return "; ".join(words)


def _since_md(comparison: dict[str, Any]) -> list[str]:
    """The "Since the baseline" section: what it compared with, the totals, then every
    (model, column) with something to say, new failures first."""
    base = comparison["baselines"][-1]
    history = len(comparison["baselines"]) - 1
    earlier = f", with {history} earlier run(s) as its history" if history else ""
    totals = comparison["totals"]
    counts = ", ".join(f"{name} {totals[name]}" for name in baseline.EVENTS if totals.get(name))
    generated = f", generated {base['generated_at']}" if base["generated_at"] else ""
    lines = [f"Compared with `{base['path']}` ({base['entries']} results from its "
             f"{base['source']}{generated}{earlier}): {counts or 'nothing changed'}."]  # fmt: skip
    rule = comparison["rule"]
    rows = sorted((r for r in comparison["rows"] if r["events"]),
                  key=lambda r: (baseline.EVENTS.index(r["events"][0]), r["family"],
                                 r["model_id"], r["column"]))  # fmt: skip
    table = [[", ".join(r["events"]), r["family"], r["model_class"] or "", r["model_id"],
              r["column"], r["baseline_status"] or "-", r["status"] or "-",
              _yes_no(r["checkpoint_changed"]) if r["checkpoint_changed"] is not None else "?",
              _drift_words(r.get("drift")), _performance_words(r),
              _short(r["reason"] + (" (declared finding)" if r["declared"] else ""))]
             for r in rows]  # fmt: skip
    headers = ["since the baseline", "family", "class", "model", "column", "was", "now",
               "checkpoint changed", "outputs", "performance", "reason"]  # fmt: skip
    if table:
        lines.append(_table(headers, table))
    twice = ", in two consecutive runs" if rule["consecutive_runs"] > 1 else ""
    lines.append(
        f"A target is slower when its median latency is x{rule['slower_ratio']} the "
        f"baseline's or more and a one-sided Mann-Whitney U test of both runs' samples gives "
        f"p < {rule['alpha']}, in seconds and in calibration units{twice}."
    )
    return lines


def _drift_words(found: dict[str, Any] | None) -> str:
    if not found:
        return ""
    if found["status"] != "drift":
        return found["status"] + (f" ({found['why']})" if found.get("why") else "")
    return (
        f"drift: max |diff| {_diff(found['max_abs_diff'])} > {_diff(found['atol'])} "
        f"at {found['where']}"
    )


def render_markdown(summary: dict[str, Any]) -> str:
    """summary.md: what changed since the baseline (with one), totals, the family and class x
    hardware grids, the findings, the per-model table, unreadable files."""
    totals = summary["totals"]
    counts = ", ".join(f"{status} {totals[status]}" for status in STATUSES)
    parts = [
        "# hfmatrix report",
        f"Generated {summary['generated_at']} from `{summary['results_dir']}`.",
    ]
    if summary.get("comparison"):
        parts += ["## Since the baseline", *_since_md(summary["comparison"])]
    parts.append(f"**Totals:** {totals['total']} records ({counts})")
    if summary["models"]:
        parts += ["## Family x hardware", _matrix_md(summary)]
        parts += ["## Class x hardware", _classes_md(summary)]
        found = _findings_md(summary)
        if found:
            declared = sum(row["finding"] == "declared" for row in summary["findings"])
            note = (
                f"{len(summary['findings'])} rows, {declared} of them declared findings "
                f"(env_specs/classes/findings.toml), which do not fail their session."
            )
            parts += ["## Findings", note, found]
        parts += ["## Models", _models_md(summary)]
    else:
        parts.append("No result records found.")
    performance = _performance_md(summary)
    if performance:
        parts += ["## Performance", performance]
    oracles = _oracle_md(summary)
    if oracles:
        near = (summary.get("oracle_totals") or {}).get("near bound", 0)
        note = f"{near} passed within {oracle.NEAR:.0%} of their bound (NEAR BOUND)."
        parts += ["## Class oracles and published values", note, oracles]
    expectations = _expectations_md(summary)
    if expectations:
        parts += ["## Declared expectations", expectations]
    if summary.get("drift"):
        parts += ["## Drift", _drift_md(summary)]
    if summary.get("coverage"):
        parts += ["## Coverage", _coverage_md(summary["coverage"])]
    if summary["unreadable"]:
        rows = [[item["path"], item["error"]] for item in summary["unreadable"]]
        parts += ["## Unreadable records", _table(["file", "error"], rows)]
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- writing


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def _write_groups(directory: Path, documents: dict[str, Any]) -> None:
    """Write one JSON file per name and remove the *.json files no longer produced."""
    for name, data in documents.items():
        _write_json(directory / name, data)
    for old in directory.glob("*.json") if directory.is_dir() else []:
        if old.name not in documents:
            old.unlink(missing_ok=True)


def _grouped(
    records: list[dict[str, Any]], key: Callable[[dict[str, Any]], str]
) -> dict[str, list[dict[str, Any]]]:
    """Records by ``key(record)`` (_family, _column, _model_class), in their order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return groups


def _by_class(records: list[dict[str, Any]]) -> dict[str, Any]:
    documents = {}
    for family, group in _grouped(records, _family).items():
        classes = {r.get("model_class") for r in group if isinstance(r.get("model_class"), str)}
        documents[f"{slug(family)}_models.json"] = {
            "family": family,
            "model_classes": sorted(classes),
            "records": sorted(group, key=lambda r: (r["model_id"], r["hardware"])),
        }
    return documents


def _by_hardware(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        f"{slug(hardware.replace('@', '-'))}_results.json": {
            "hardware": hardware,
            "classes": {
                family: _matrix_cell(cell) for family, cell in _grouped(group, _family).items()
            },
            "model_classes": {  # family -> class -> cell
                family: {name: cells[hardware] for name, cells in classes.items()}
                for family, classes in _class_matrix(group).items()
            },
            "records": sorted(group, key=lambda r: (r["family"], r["model_id"])),
        }
        for hardware, group in _grouped(records, _column).items()
    }


def write_report(
    results_dir: Path,
    registry: dict[str, Any] | None = None,
    inputs: list[Path] | tuple[Path, ...] = (),
    baselines: list[baseline.Baseline] | tuple[baseline.Baseline, ...] = (),
    ratio: float = baseline.SLOWER_RATIO,
) -> dict[str, Any]:
    """Merge the ``inputs`` trees into results_dir, build its report (with the registry's
    coverage, when given; compared with the baselines, when given, a target slower from
    ``ratio`` up) and return the summary."""
    results_dir = Path(results_dir)
    merged = build_report(results_dir, inputs)
    if inputs:
        write_tree(results_dir.resolve(), merged)
        unreadable = merged.unreadable  # the inputs' too
        merged = build_report(results_dir)  # the records as the merged tree now holds them
        merged.unreadable = unreadable
    records = merged.records
    _write_groups(results_dir / "by_class", _by_class(records))
    _write_groups(results_dir / "by_hardware", _by_hardware(records))
    summary = summarize(results_dir, merged, registry, inputs, baselines, ratio)
    _write_json(results_dir / "summary.json", summary)
    atomic_write_text(results_dir / "summary.md", render_markdown(summary))
    atomic_write_text(results_dir / "index.html", render_dashboard(summary))
    return summary
