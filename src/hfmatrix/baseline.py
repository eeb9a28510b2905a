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
SLOWER_RATIO = 1.2
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
        rows = [row for row in summary.get("models") or [] if isinstance(row, dict)]
        entries = _newest(entry for entry in map(_row_entry, rows) if entry)
        return Baseline(path, entries, records=False, generated_at=summary.get("generated_at"))
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
    merged = merge(trees)
    if not merged.current:
        raise UserError("--baseline: no result records in it", path)
    entries = _newest(_record_entry(record) for record in merged.records)
    return Baseline(path, entries, generated_at=generated_at)


def _newest(entries: Any) -> dict[Key, dict[str, Any]]:
    """One entry per key: the newest run (records of two environments share a column)."""
    chosen: dict[Key, dict[str, Any]] = {}
    for entry in entries:
        held = chosen.get(entry["key"])
        if held is None or str(entry["started_at"] or "") > str(held["started_at"] or ""):
            chosen[entry["key"]] = entry
    return chosen


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
    if before is None:
        return "new model"
    if after is None:
        return "gone"
    was, now = before["status"] in findings.FAILING, after["status"] in findings.FAILING
    if now:
        return "still failing" if was else "new failure"
    if after["status"] == "skipped":
        return "still skipped" if before["status"] == "skipped" else "newly skipped"
    return "fixed" if was else "passing"


def compare(records: list[dict[str, Any]], baselines: list[Baseline]) -> dict[str, Any]:
    """summary.json's ``comparison``: this run's records against the last baseline (the
    earlier ones are its history, oldest first)."""
    current = _newest(_record_entry(record) for record in records)
    last = baselines[-1]
    rows = [_row(key, last.entries.get(key), current.get(key), baselines)
            for key in sorted(set(current) | set(last.entries))]  # fmt: skip
    return {
        "baselines": [baseline.describe() for baseline in baselines],
        "rule": {
            "slower_ratio": SLOWER_RATIO,
            "alpha": ALPHA,
            "min_samples": MIN_SAMPLES,
            "consecutive_runs": 2 if len(baselines) > 1 else 1,
        },
        "totals": totals(rows),
        "rows": rows,
    }


def _row(
    key: Key, before: dict[str, Any] | None, after: dict[str, Any] | None,
    baselines: list[Baseline],
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
        history = [b.entries.get(key) for b in baselines]
        row["performance"] = _performance([h["record"] for h in history if h and h["record"]],
                                          after["record"]) or None  # fmt: skip
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
        unit = _dict(target.get("calibration")).get("median")
        if isinstance(values, list) and all(_real(v) for v in values):
            samples[name] = ([float(v) for v in values], unit if _real(unit) and unit else None)
    return samples


def _settings(record: dict[str, Any]) -> Any:
    return _dict(record.get("performance")).get("settings")


def slower(now: tuple[list[float], float | None], then: tuple[list[float], float | None]) -> dict:
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
            "slower": min(ratios) >= SLOWER_RATIO and max(slow) < ALPHA,
            "faster": max(ratios) <= 1 / SLOWER_RATIO and max(fast) < ALPHA}  # fmt: skip


def _performance(history: list[dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
    """target -> its verdict against the baseline (the last of ``history``): slower (with a
    history: this run and the last both slower than the run before the last), slower once
    (this run only, where a history asks for two), faster, unchanged, not compared."""
    if record is None or not history:
        return {}
    now = _latencies(record)
    rows = {}
    for name, samples in now.items():
        past = [(h, _latencies(h).get(name)) for h in history if _settings(h) == _settings(record)]
        past = [(h, s) for h, s in past if s and len(s[0]) >= MIN_SAMPLES]
        if len(samples[0]) < MIN_SAMPLES or not past or past[-1][0] is not history[-1]:
            why = (f"{len(samples[0])} samples" if len(samples[0]) < MIN_SAMPLES else
                   "the baseline has no samples of it with the same settings")  # fmt: skip
            rows[name] = {"status": "not compared", "why": why}
            continue
        last = past[-1][1]
        found = slower(samples, last)
        status = "slower" if found["slower"] else "faster" if found["faster"] else "unchanged"
        against, rule = last, "one run"
        if len(past) > 1:  # slower: this run and the one before, both against the run before
            reference, rule = past[-2][1], "two consecutive runs"
            then = slower(samples, reference)
            if then["slower"] and slower(last, reference)["slower"]:
                status, found, against = "slower", then, reference
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
    """What of ``gates`` (names in GATES) the comparison shows, in words ("" for none): a
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
