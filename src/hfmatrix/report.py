"""Merge raw result records into the report tree: by_class/, by_hardware/, summary.json/.md."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tabulate import tabulate

from hfmatrix.files import atomic_write_text
from hfmatrix.results import SCHEMA, STATUSES, column, now, slug

SUMMARY_SCHEMA = "hfmatrix.summary/1"
REQUIRED_KEYS = ("schema", "family", "model_id", "hardware", "status")
REASON_WIDTH = 80


# ---------------------------------------------------------------- reading


def _load(path: Path) -> dict[str, Any]:
    """One raw record; a ValueError says why it cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} (line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"not a record: a JSON {type(data).__name__}, not an object")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(f"not a record: missing key(s) {', '.join(missing)}")
    for key in ("family", "model_id", "hardware"):
        if not isinstance(data[key], str) or not data[key]:
            raise ValueError(f"not a record: {key} must be a non-empty string")
    if data["schema"] != SCHEMA:
        raise ValueError(f"not a record: schema {data['schema']!r} (expected {SCHEMA!r})")
    if data["status"] not in STATUSES:
        raise ValueError(f"not a record: unknown status {data['status']!r}")
    return data


def _raw_files(results_dir: Path) -> list[Path]:
    return sorted(
        path
        for path in results_dir.glob("raw/*/*.json")
        if not path.name.startswith(".") and not path.parent.name.startswith(".")
    )


def _column(record: dict[str, Any]) -> str:
    dtype = record.get("dtype")
    return column(record["hardware"], dtype if isinstance(dtype, str) else None)


def _key(record: dict[str, Any]) -> tuple[str, str, str]:
    return record["family"], record["model_id"], _column(record)


def build_report(results_dir: Path) -> dict[str, Any]:
    """Read raw/*/*.json: {"records": [...] (newest per key), "unreadable": [{path, error}]}."""
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    unreadable: list[dict[str, str]] = []
    for path in _raw_files(Path(results_dir)):
        try:
            record = _load(path)
        except ValueError as exc:
            print(f"hfmatrix report: skipping {path}: {exc}", file=sys.stderr)
            unreadable.append({"path": str(path), "error": str(exc)})
            continue
        old = latest.get(_key(record))
        if old is None or str(record.get("started_at") or "") > str(old.get("started_at") or ""):
            latest[_key(record)] = record
    records = [latest[key] for key in sorted(latest)]
    return {"records": records, "unreadable": unreadable}


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


def _matrix(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in records:
        groups.setdefault(record["family"], {}).setdefault(_column(record), []).append(record)
    return {
        family: {hw: _matrix_cell(groups[family][hw]) for hw in sorted(groups[family])}
        for family in sorted(groups)
    }


def _matrix_cell(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Status and counts of one (class, hardware) cell, with the measured difference of the
    record closest to (or furthest past) its tolerance, and whether greedy ids matched."""
    counts = {k: v for k, v in _counts(records).items() if v}
    cell: dict[str, Any] = {"status": cell_status(counts), "counts": counts}
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
    return cell


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _model_row(record: dict[str, Any]) -> dict[str, Any]:
    tests = _dict(record.get("tests"))
    numerics = _dict(record.get("numerics"))
    return {
        "family": record["family"],
        "model_class": record.get("model_class"),
        "model_id": record["model_id"],
        "tier": record.get("tier"),
        "hardware": _column(record),
        "status": record["status"],
        "reason": str(record.get("reason") or ""),
        "tests": {name: _dict(test).get("status") for name, test in tests.items()},
        "max_abs_diff": numerics.get("max_abs_diff"),
        "atol": numerics.get("atol"),
    }


def summarize(
    results_dir: Path, report: dict[str, Any], registry: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The summary.json document for the output of build_report; with the registry's
    coverage (registry.coverage), the coverage of each family by these records too."""
    records = report["records"]
    return {
        "schema": SUMMARY_SCHEMA,
        "generated_at": now(),
        "results_dir": str(results_dir),
        "totals": {**_counts(records), "total": len(records)},
        "matrix": _matrix(records),
        "models": [_model_row(record) for record in records],
        "coverage": None if registry is None else _coverage(records, registry),
        "unreadable": report["unreadable"],
    }


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


def _matrix_md(summary: dict[str, Any]) -> str:
    matrix = summary["matrix"]
    hardware = sorted({hw for cells in matrix.values() for hw in cells})
    rows = []
    for family, cells in matrix.items():
        row: list[Any] = [family]
        for hw in hardware:
            cell = cells.get(hw, {})
            text = ", ".join(f"{status} {n}" for status, n in cell.get("counts", {}).items())
            if cell.get("max_abs_diff") is not None:
                text += f" (max |diff| {_diff(cell['max_abs_diff'])})"
            if cell.get("greedy_ids_match") is not None:
                text += ", ids " + ("match" if cell["greedy_ids_match"] else "DIFFER")
            row.append(text or "-")
        rows.append(row)
    return _table(["family", *hardware], rows)


def _models_md(summary: dict[str, Any]) -> str:
    headers = ["family", "model", "hardware", "status", "pipeline", "from_pretrained"]
    headers += ["max |diff|", "reason"]
    rows = [
        [
            row["family"],
            row["model_id"],
            row["hardware"],
            row["status"],
            row["tests"].get("pipeline") or "-",
            row["tests"].get("from_pretrained") or "-",
            _diff(row["max_abs_diff"]),
            _short(row["reason"]),
        ]
        for row in summary["models"]
    ]
    return _table(headers, rows)


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
    untested = coverage["untested_classes"]
    if untested:
        keys = ["class", "model_type", "task", "models", "downloads", "most_downloaded"]
        parts.append(f"Classes in models.json that no family tests ({len(untested)}):")
        parts.append(_table([k.replace("_", " ") for k in keys],
                            [[row[k] for k in keys] for row in untested]))  # fmt: skip
    return "\n\n".join(parts)


def render_markdown(summary: dict[str, Any]) -> str:
    """summary.md: totals, the class x hardware matrix, the per-model table, unreadable files."""
    totals = summary["totals"]
    counts = ", ".join(f"{status} {totals[status]}" for status in STATUSES)
    parts = [
        "# hfmatrix report",
        f"Generated {summary['generated_at']} from `{summary['results_dir']}`.",
        f"**Totals:** {totals['total']} records ({counts})",
    ]
    if summary["models"]:
        parts += ["## Class x hardware", _matrix_md(summary)]
        parts += ["## Models", _models_md(summary)]
    else:
        parts.append("No result records found.")
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


def _grouped(records: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    """Records by ``key`` ("family"), or by matrix column for "hardware"."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(_column(record) if key == "hardware" else record[key], []).append(record)
    return groups


def _by_class(records: list[dict[str, Any]]) -> dict[str, Any]:
    documents = {}
    for family, group in _grouped(records, "family").items():
        classes = {r.get("model_class") for r in group if isinstance(r.get("model_class"), str)}
        documents[f"{slug(family)}_models.json"] = {
            "family": family,
            "model_classes": sorted(classes),
            "records": sorted(group, key=lambda r: (r["model_id"], r["hardware"])),
        }
    return documents


def _by_hardware(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        f"{slug(hardware)}_results.json": {
            "hardware": hardware,
            "classes": {
                family: _matrix_cell(cell) for family, cell in _grouped(group, "family").items()
            },
            "records": sorted(group, key=lambda r: (r["family"], r["model_id"])),
        }
        for hardware, group in _grouped(records, "hardware").items()
    }


def write_report(results_dir: Path, registry: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the report tree under results_dir (with the registry's coverage, when given) and
    return the summary."""
    results_dir = Path(results_dir)
    report = build_report(results_dir)
    records = report["records"]
    _write_groups(results_dir / "by_class", _by_class(records))
    _write_groups(results_dir / "by_hardware", _by_hardware(records))
    summary = summarize(results_dir, report, registry)
    _write_json(results_dir / "summary.json", summary)
    atomic_write_text(results_dir / "summary.md", render_markdown(summary))
    return summary
