"""A run compared with earlier ones (``hfmatrix report --baseline PATH``): per (model,
column) its transition since the baseline (new failure, fixed, ...), whether the checkpoint
changed, output drift where it did not, and the performance targets that got slower, only
where the difference is significant."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfmatrix import drift, findings
from hfmatrix.errors import UserError
from hfmatrix.merge import merge, result_trees
from hfmatrix.results import record_column, record_label

# per (model, column): how its status moved from the baseline to this run
TRANSITIONS = ("new failure", "fixed", "still failing", "newly skipped", "still skipped",
               "passing", "new model", "gone")  # fmt: skip
# what a row calls out, in the order a report lists rows: what needs a look first
EVENTS = ("new failure", "drift", "slower", "slower once", "fixed", "newly skipped",
          "still failing", "new model", "gone", "faster")  # fmt: skip
GATES = ("new-failures", "drift", "slower")  # what --fail-on can turn into exit status 1
# A target is slower when its median latency is SLOWER_RATIO times the baseline's or more AND
# a one-sided Mann-Whitney U test of the two runs' latency samples gives p < ALPHA, read both
# in seconds and in units of each run's calibration loop (perf.spin: how fast the machine ran
# beside the calls) where both runs have one; with a history (two baselines or more) the run
# before must have been slower too (two consecutive runs, as PyTorch's benchmark dashboard
# asks), else it is "slower once".
SLOWER_RATIO = 1.5  # the default: shared hosts move two runs of the same code up to 1.3x
ALPHA = 0.01
MIN_SAMPLES = 5  # latency samples a target needs on both sides to be compared
Key = tuple[str, str, str]  # family, model, column


@dataclass
class Baseline:
    """One earlier run: its records by (family, model, column), or, from a summary.json
    alone, its model rows (status and checkpoint only: no outputs, no latency samples)."""

    path: Path
    entries: dict[Key, dict[str, Any]] = field(default_factory=dict)
    records: bool = True  # full records (a result tree), not summary rows
    generated_at: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "entries": len(self.entries),
                "source": "records" if self.records else "summary.json",
                "generated_at": self.generated_at}  # fmt: skip


# ---------------------------------------------------------------- reading a baseline


def load(path: Path) -> Baseline:
    """A baseline from ``path``: a result tree, a directory of job artifacts, or a
    summary.json (its tree's records when they lie beside it). A path that holds none of
    these is a UserError."""
    path = Path(path)
    if path.is_file():
        summary = _summary(path)
        if (path.parent / "raw").is_dir():
            return _from_trees(path, [path.parent], summary.get("generated_at"))
        return _from_rows(path, summary)
    if not path.is_dir():
        raise UserError("--baseline: no such file or directory", path)
    beside = path / "summary.json"
    generated = _summary(beside).get("generated_at") if beside.is_file() else None
    return _from_trees(path, result_trees(path), generated)


def _summary(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"--baseline: not a summary.json ({exc})", path) from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith(
        "hfmatrix.summary/"
    ):
        raise UserError("--baseline: not an hfmatrix summary.json (no hfmatrix.summary schema)",
                        path)  # fmt: skip
    return data


def _from_trees(path: Path, trees: list[Path], generated_at: str | None) -> Baseline:
    """The trees' records; where none can be read (a record schema this version does not
    read) but a summary.json lies beside them, its rows."""
    merged = merge(trees)
    if merged.current:
        entries = _chosen(_record_entry(record) for record in merged.records)
        return Baseline(path, entries, generated_at=generated_at)
    beside = (path.parent if path.is_file() else path) / "summary.json"
    if beside.is_file():
        return _from_rows(path, _summary(beside))
    raise UserError("--baseline: no result records in it", path)


def _from_rows(path: Path, summary: dict[str, Any]) -> Baseline:
    rows = [row for row in summary.get("models") or [] if isinstance(row, dict)]
    entries = _chosen(entry for entry in map(_row_entry, rows) if entry)
    return Baseline(path, entries, records=False, generated_at=summary.get("generated_at"))


def _chosen(entries: Any) -> dict[Key, dict[str, Any]]:
    """One entry per key where records of several environments share a column: the worst
    status (a failure, then a pass, then a skip), the newest among those."""
    chosen: dict[Key, dict[str, Any]] = {}
    for entry in entries:
        held = chosen.get(entry["key"])
        if held is None or _rank(entry) > _rank(held):
            chosen[entry["key"]] = entry
    return chosen


def _rank(entry: dict[str, Any]) -> tuple[int, str]:
    status = entry["status"]
    worst = 2 if status in findings.FAILING else 1 if status == "passed" else 0
    return worst, str(entry["started_at"] or "")


def checkpoint(record: dict[str, Any]) -> str | None:
    """What a record's checkpoint is: its files' hash (tiny), its commit (hub), its files'
    names, sizes and times (local); None where the record does not say."""
    described = _dict(record.get("checkpoint")).get("sha256")
    files = _dict(record.get("request")).get("files")
    value = described or record.get("revision") or files
    return str(value) if value else None


def _record_entry(record: dict[str, Any]) -> dict[str, Any]:
    return {"key": (record["family"], record["model_id"], record_column(record)),
            "status": record["status"], "declared": findings.observed(record),
            "model_class": record.get("model_class"), "label": record_label(record),
            "reason": str(record.get("reason") or ""), "checkpoint": checkpoint(record),
            "started_at": record.get("started_at"), "record": record}  # fmt: skip


def _row_entry(row: dict[str, Any]) -> dict[str, Any] | None:
    """A summary.json model row as an entry (None for a row that is not one)."""
    if not all(isinstance(row.get(name), str) for name in ("family", "model_id", "hardware")):
        return None
    declared = _dict(row.get("finding")).get("observed") is True
    return {"key": (row["family"], row["model_id"], row["hardware"]),
            "status": row.get("status"), "declared": declared,
            "model_class": row.get("model_class"), "label": row.get("label"),
            "reason": str(row.get("reason") or ""), "checkpoint": row.get("checkpoint"),
            "started_at": row.get("started_at"), "record": None}  # fmt: skip


# ---------------------------------------------------------------- comparing


def transition(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """How a (model, column)'s status moved: one of TRANSITIONS."""
    if after is None:
        return "gone"
    now = after["status"] in findings.FAILING
    if before is None:
        return "new failure" if now else "new model"
    was = before["status"] in findings.FAILING
    if now:
        return "still failing" if was else "new failure"
    if after["status"] == "skipped":
        return "still skipped" if before["status"] == "skipped" else "newly skipped"
    return "fixed" if was else "passing"


def compare(
    records: list[dict[str, Any]], baselines: list[Baseline], ratio: float = SLOWER_RATIO
) -> dict[str, Any]:
    """summary.json's ``comparison``: this run's records against the last baseline (the
    earlier ones are its history, oldest first); a target is slower from ``ratio`` up."""
    current = _chosen(_record_entry(record) for record in records)
    last = baselines[-1]
    rows = [_row(key, last.entries.get(key), current.get(key), baselines, ratio)
            for key in sorted(set(current) | set(last.entries))]  # fmt: skip
    return {
        "baselines": [baseline.describe() for baseline in baselines],
        "events": list(EVENTS),  # the order rows are listed in
        "rule": {
            "slower_ratio": ratio,
            "alpha": ALPHA,
            "min_samples": MIN_SAMPLES,
            "consecutive_runs": 2 if len(baselines) > 1 else 1,
        },
        "totals": totals(rows),
        "rows": rows,
    }


def _row(
    key: Key, before: dict[str, Any] | None, after: dict[str, Any] | None,
    baselines: list[Baseline], ratio: float,
) -> dict[str, Any]:  # fmt: skip
    either = after or before or {}
    changed = None
    if before and after and before["checkpoint"] and after["checkpoint"]:
        changed = before["checkpoint"] != after["checkpoint"]
    row = {
        "family": key[0], "model_id": key[1], "column": key[2],
        "model_class": either.get("model_class"), "label": either.get("label") or key[2],
        "transition": transition(before, after),
        "status": after and after["status"], "baseline_status": before and before["status"],
        "declared": bool(after and after["declared"]),
        "reason": after["reason"] if after else "",
        "checkpoint_changed": changed,
        "drift": None, "performance": None,
    }  # fmt: skip
    if before and after and "skipped" not in (before["status"], after["status"]):
        row["drift"] = _drift(before, after, changed)
        history = [(b.entries.get(key) or {}).get("record") for b in baselines]
        row["performance"] = _performance(history, after["record"], ratio) or None
    row["events"] = events(row)
    return row


def events(row: dict[str, Any]) -> list[str]:
    """What a comparison row calls out, in EVENTS' order: its transition (unless passing or
    still skipped), drift, and its targets' performance verdicts."""
    found = {row["transition"]}
    found |= {"drift"} if _dict(row.get("drift")).get("status") == "drift" else set()
    found |= {target["status"] for target in (row.get("performance") or {}).values()}
    return [event for event in EVENTS if event in found]


def _drift(before: dict[str, Any], after: dict[str, Any], changed: bool | None) -> dict:
    """The outputs of this run against the baseline's, where both have them and the
    checkpoint is the same (drift.agreement at the class tolerance)."""
    old, new = before["record"], after["record"]
    if old is None:
        return {"status": "not compared", "why": "the baseline is a summary.json: no outputs"}
    if changed is not False:
        why = "the checkpoint changed" if changed else "the checkpoint is not identified"
        return {"status": "not compared", "why": why}
    if not (drift.comparable(old) and drift.comparable(new)):
        return {"status": "not compared", "why": "no outputs on one side"}
    found = drift.agreement(old, new)
    return {name: found[name] for name in ("status", "max_abs_diff", "atol", "greedy_ids_equal",
                                           "pipeline_equal", "where")}  # fmt: skip


# ---------------------------------------------------------------- performance


def _latencies(record: dict[str, Any]) -> dict[str, tuple[list[float], float | None]]:
    """target -> (its latency samples, the median of its calibration loop's times or None)."""
    targets = _dict(_dict(record.get("performance")).get("targets"))
    samples = {}
    for name, target in targets.items():
        values = _dict(_dict(target).get("latency")).get("values")
        unit = _dict(_dict(target).get("calibration")).get("median")
        if isinstance(values, list) and all(_real(v) for v in values):
            samples[name] = ([float(v) for v in values], unit if _real(unit) and unit else None)
    return samples


def _settings(record: dict[str, Any]) -> Any:
    return _dict(record.get("performance")).get("settings")


def slower(
    now: tuple[list[float], float | None],
    then: tuple[list[float], float | None],
    ratio: float = SLOWER_RATIO,
) -> dict[str, Any]:
    """``now`` against ``then`` (latency samples with their calibration medians): the median
    ratio and the one-sided Mann-Whitney U p-values of "now is slower" and "now is faster",
    in seconds and in calibration units (where both have a calibration); slower or faster
    only where both readings say so (a host that slowed everything moves the seconds, not
    the units; a calibration loop that alone sped up moves the units, not the seconds)."""
    from scipy.stats import mannwhitneyu

    calibrated = now[1] is not None and then[1] is not None
    readings = [(now[0], then[0])]
    if calibrated:
        readings.append(([v / now[1] for v in now[0]], [v / then[1] for v in then[0]]))
    ratios = [statistics.median(a) / statistics.median(b) for a, b in readings]
    slow = [float(mannwhitneyu(a, b, alternative="greater").pvalue) for a, b in readings]
    fast = [float(mannwhitneyu(a, b, alternative="less").pvalue) for a, b in readings]
    return {"ratio": ratios[-1], "raw_ratio": ratios[0], "p_slower": max(slow),
            "p_faster": max(fast), "machine_ratio": now[1] / then[1] if calibrated else None,
            "slower": min(ratios) >= ratio and max(slow) < ALPHA,
            "faster": max(ratios) <= 1 / ratio and max(fast) < ALPHA}  # fmt: skip


def _performance(
    history: list[dict[str, Any] | None], record: dict[str, Any], ratio: float
) -> dict[str, Any]:
    """target -> its verdict against the last baseline (``history``: the baselines' records
    of this model and column, oldest first, None where one has none): slower (with a
    history: this run and the last both slower than the run before the last), slower once
    (this run only, where a history asks for two, or the run before the last has no
    samples to ask), faster, unchanged, not compared. Targets of fewer than MIN_SAMPLES
    samples (load_model, first_forward) are left out."""
    if not history or history[-1] is None:
        return {}
    rows = {}
    for name, samples in _latencies(record).items():
        if len(samples[0]) < MIN_SAMPLES:
            continue
        before, last = (_samples(h, name, record) for h in [None, *history][-2:])
        if last is None:
            rows[name] = {
                "status": "not compared",
                "why": "the baseline has no samples of it with the same settings",
            }
            continue
        found = slower(samples, last, ratio)
        status = "slower" if found["slower"] else "faster" if found["faster"] else "unchanged"
        against, rule = last, "one run"
        if len(history) > 1:  # slower: this run and the last, both against the run before
            rule, then = "two consecutive runs", before and slower(samples, before, ratio)
            if then and then["slower"] and slower(last, before, ratio)["slower"]:
                status, found, against = "slower", then, before
            elif status == "slower":
                status = "slower once"
        rows[name] = {"status": status, "rule": rule, "ratio": round(found["ratio"], 4),
                      "raw_ratio": round(found["raw_ratio"], 4),
                      "machine_ratio": found["machine_ratio"] and round(found["machine_ratio"], 4),
                      "p_slower": found["p_slower"], "p_faster": found["p_faster"],
                      "median_s": statistics.median(samples[0]),
                      "baseline_median_s": statistics.median(against[0]),
                      "samples": [len(samples[0]), len(against[0])],
                      "same_host": _host(record) == _host(history[-1])}  # fmt: skip
    return rows


def _samples(
    earlier: dict[str, Any] | None, name: str, record: dict[str, Any]
) -> tuple[list[float], float | None] | None:
    """``earlier``'s samples of target ``name``, where it was measured with ``record``'s
    settings, MIN_SAMPLES times or more, and not all in zero time."""
    if earlier is None or _settings(earlier) != _settings(record):
        return None
    found = _latencies(earlier).get(name)
    if not found or len(found[0]) < MIN_SAMPLES or not statistics.median(found[0]) > 0:
        return None
    return found


def _host(record: dict[str, Any]) -> Any:
    return _dict(record.get("environment")).get("host")


# ---------------------------------------------------------------- totals and gates


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many (model, column)s made each transition, drifted, got slower or faster."""
    counts = dict.fromkeys((*TRANSITIONS, *EVENTS), 0)
    for row in rows:
        for name in {row["transition"], *row["events"]}:
            counts[name] += 1
    return counts


def gated(comparison: dict[str, Any], gates: list[str]) -> list[str]:
    """What of ``gates`` (names in GATES) the comparison shows, a line each (none: empty): a
    new failure that is a declared finding does not count."""
    rows = comparison["rows"]
    found = {
        "new-failures": [r for r in rows if "new failure" in r["events"] and not r["declared"]],
        "drift": [r for r in rows if "drift" in r["events"]],
        "slower": [r for r in rows if "slower" in r["events"]],
    }
    return [
        f"{gate}: {len(found[gate])} ({', '.join(_where(r) for r in found[gate][:5])}"
        f"{', ...' if len(found[gate]) > 5 else ''})"
        for gate in gates
        if found[gate]
    ]


def _where(row: dict[str, Any]) -> str:
    return f"{row['family']}/{row['model_id']} on {row['column']}"


def parse_gates(text: str) -> list[str]:
    """``new-failures,drift,slower`` (any subset) as a list; an unknown name is a UserError."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in GATES]
    if unknown or not names:
        raise UserError(f"--fail-on {text!r}: choose from {', '.join(GATES)} (comma-separated)")
    return list(dict.fromkeys(names))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
