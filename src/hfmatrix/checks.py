"""Checks: one named verdict each, numeric ones with their measured difference and tolerance."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from hfmatrix.expectations import Expected, resolve, unexplained


@dataclass
class Check:
    """One assertion about a model's behaviour, kept in the record whether it passed or not."""

    name: str
    passed: bool
    detail: str = ""
    max_abs_diff: float | None = None
    atol: float | None = None
    expectation: str | None = None  # the declared stack-specific golden value that applied
    value: float | None = None  # a bounded check's measured figure (oracle.bounded)
    bound: float | None = None  # ... and the bound it must meet, on the side ``below`` says
    below: bool | None = None  # True: value < bound passes; False: value >= bound passes
    source: str | None = None  # where the bound or the published value comes from
    not_applicable: str | None = None  # why the check cannot apply to this model

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value not in (None, "")}


def close(name: str, actual: Any, expected: Any, atol: float) -> Check:
    """``actual`` equals ``expected`` elementwise within ``atol`` (shapes must match);
    ``expected`` may be an Expected, whose value for this stack applies."""
    golden = isinstance(expected, Expected)
    expected, label = resolve(expected)
    return _stacked(_close(name, actual, expected, atol), label, golden)


def _close(name: str, actual: Any, expected: Any, atol: float) -> Check:
    import torch

    got = torch.as_tensor(actual, dtype=torch.float64).detach().cpu()
    want = torch.as_tensor(expected, dtype=torch.float64).detach().cpu()
    if got.shape != want.shape:
        return Check(name, False, f"shape {tuple(got.shape)} != expected {tuple(want.shape)}")
    diff = float((got - want).abs().max()) if got.numel() else 0.0
    passed = not math.isnan(diff) and diff <= atol
    return Check(name, passed, f"max |diff| {diff:.3g} (atol {atol:g})", diff, atol)


def equal(name: str, actual: Any, expected: Any) -> Check:
    """``actual == expected`` exactly (token ids, labels, strings); ``expected`` may be an
    Expected, whose value for this stack applies."""
    golden = isinstance(expected, Expected)
    expected, label = resolve(expected)
    if actual == expected:
        return Check(name, True, expectation=label)
    return _stacked(Check(name, False, f"got {actual!r}, expected {expected!r}"), label, golden)


def _stacked(check: Check, label: str | None, golden: bool) -> Check:
    """A golden check names the expectation it was held to; a failed one names the stack."""
    check.expectation = label
    if golden and not check.passed:
        check.detail = unexplained(check.detail, label)
    return check


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


def agree(name: str, actual: Any, expected: Any, atol: float) -> Check:
    """``actual`` matches ``expected`` leaf by leaf: floats (and float tensors) within
    ``atol``; everything else (token ids, labels, text, masks) exactly; same structure."""
    diffs: list[float] = []
    problem = _mismatch(actual, expected, "", diffs)
    worst = max(diffs, default=0.0)
    if problem is None and worst > atol:
        problem = f"max |diff| {worst:.3g} > atol {atol:g}"
    if not diffs:  # nothing numeric: ids, labels, text
        return Check(name, problem is None, problem or "")
    if problem is not None:
        return Check(name, False, problem, worst, atol)
    return Check(name, True, f"max |diff| {worst:.3g} (atol {atol:g})", worst, atol)


def _mismatch(actual: Any, expected: Any, path: str, diffs: list[float]) -> str | None:
    """The first structural or exact difference (and float differences into ``diffs``)."""
    import numpy as np
    import torch

    where = path or "output"
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        got, want = torch.as_tensor(actual).detach().cpu(), torch.as_tensor(expected).cpu()
        if got.shape != want.shape:
            return f"{where}: shape {tuple(got.shape)} != {tuple(want.shape)}"
        if want.is_floating_point():
            diff = (got.double() - want.double()).abs().nan_to_num(math.inf)
            diffs.append(float(diff.max()) if diff.numel() else 0.0)
            return None
        differing = int((got != want).sum())
        return f"{where}: {differing} of {want.numel()} elements differ" if differing else None
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or actual.keys() != expected.keys():
            return f"{where}: keys {_brief(actual)} != {_brief(expected)}"
        pairs = [(f"{path}.{key}", actual[key], expected[key]) for key in expected]
        return _first_mismatch(pairs, diffs)
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return f"{where}: {_brief(actual)} != {_brief(expected)}"
        items = zip(actual, expected, strict=True)
        return _first_mismatch([(f"{path}[{i}]", a, e) for i, (a, e) in enumerate(items)], diffs)
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        diff = abs(actual - expected)
        diffs.append(math.inf if math.isnan(diff) else diff)
        return None
    return None if actual == expected else f"{where}: {_brief(actual)} != {_brief(expected)}"


def _first_mismatch(pairs: list[tuple[str, Any, Any]], diffs: list[float]) -> str | None:
    for path, actual, expected in pairs:
        problem = _mismatch(actual, expected, path, diffs)
        if problem is not None:
            return problem
    return None


def _brief(value: Any) -> str:
    text = repr(sorted(value) if isinstance(value, dict) else value)
    return text if len(text) <= 120 else text[:117] + "..."
