"""Checks: one named verdict each, numeric ones with their measured difference and tolerance."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Check:
    """One assertion about a model's behaviour, kept in the record whether it passed or not."""

    name: str
    passed: bool
    detail: str = ""
    max_abs_diff: float | None = None
    atol: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value not in (None, "")}


def close(name: str, actual: Any, expected: Any, atol: float) -> Check:
    """``actual`` equals ``expected`` elementwise within ``atol`` (shapes must match)."""
    import torch

    got = torch.as_tensor(actual, dtype=torch.float64).detach().cpu()
    want = torch.as_tensor(expected, dtype=torch.float64).detach().cpu()
    if got.shape != want.shape:
        return Check(name, False, f"shape {tuple(got.shape)} != expected {tuple(want.shape)}")
    diff = float((got - want).abs().max()) if got.numel() else 0.0
    passed = not math.isnan(diff) and diff <= atol
    return Check(name, passed, f"max |diff| {diff:.3g} (atol {atol:g})", diff, atol)


def equal(name: str, actual: Any, expected: Any) -> Check:
    """``actual == expected`` exactly (token ids, labels, strings)."""
    if actual == expected:
        return Check(name, True)
    return Check(name, False, f"got {actual!r}, expected {expected!r}")


def truth(name: str, passed: bool, detail: str = "") -> Check:
    """A boolean property, with what was seen when it fails."""
    return Check(name, bool(passed), "" if passed else detail)


def numerics(checks: list[Check], reference: str) -> dict[str, Any]:
    """The record's numerics block: every numeric comparison, and the tightest one as headline."""
    numeric = [c for c in checks if c.max_abs_diff is not None and c.atol]
    if not numeric:
        return {"reference": reference, "comparisons": {}}
    worst = max(numeric, key=lambda c: c.max_abs_diff / c.atol)
    return {
        "reference": reference,
        "max_abs_diff": worst.max_abs_diff,
        "atol": worst.atol,
        "worst": worst.name,
        "comparisons": {
            c.name: {"max_abs_diff": c.max_abs_diff, "atol": c.atol, "passed": c.passed}
            for c in numeric
        },
    }
