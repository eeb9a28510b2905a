"""Declared findings: a tested class's known failure on a backend (an export the backend's
tools do not support yet), declared in env_specs/classes/findings.toml with its reason. A
record that fails as declared keeps its status and reason and says so (``finding``); it
does not fail its session. One that fails otherwise still does, and a declared finding
that did not occur (the record passed) is named so that its declaration can go."""

from __future__ import annotations

from typing import Any

from hfmatrix.expectations import holds
from hfmatrix.specs import Finding

FAILING = ("failed", "error", "timeout")


class StaleFinding(UserWarning):
    """A declared finding that did not occur: its declaration can go."""


def declared_for(record: dict[str, Any], findings: list[Finding]) -> Finding | None:
    """The finding declared for the record's class on its backend, on this stack."""
    here = (record.get("model_class"), record.get("hardware"))
    for finding in findings:
        if (finding.model_class, finding.hardware) == here and holds(finding.stack):
            return finding
    return None


def mark(record: dict[str, Any], findings: list[Finding], where: str) -> None:
    """Set the record's ``finding`` where one is declared for it: ``observed`` when the
    record fails with the declared text in its reason, not when it passed (the declaration
    is stale); a record failing otherwise, or skipped, gets none."""
    record.pop("finding", None)  # a resumed record is judged by today's declarations
    finding = declared_for(record, findings)
    if finding is None:
        return
    observed = record["status"] in FAILING and finding.match in str(record.get("reason") or "")
    if record["status"] != "passed" and not observed:
        return
    line = f":{finding.line}" if finding.line else ""
    record["finding"] = {"observed": observed, "reason": finding.reason,
                         "stack": finding.stack, "declared_in": f"{where}{line}"}  # fmt: skip


def failing(record: dict[str, Any]) -> bool:
    """Whether the record fails its session: a failing status, not a declared finding."""
    return record["status"] in FAILING and not observed(record)


def observed(record: dict[str, Any]) -> bool:
    """Whether the record is a declared finding that occurred."""
    finding = record.get("finding")
    return isinstance(finding, dict) and finding.get("observed") is True


def words(record: dict[str, Any]) -> str:
    """The record's finding in a few words, for a session's output ("" without one)."""
    finding = record.get("finding")
    if not isinstance(finding, dict):
        return ""
    if finding.get("observed"):
        return f"declared finding ({finding.get('declared_in')}): {finding.get('reason')}"
    return (f"a finding is declared in {finding.get('declared_in')} but did not occur for "
            "this model: remove it once no model of the class shows it")  # fmt: skip
