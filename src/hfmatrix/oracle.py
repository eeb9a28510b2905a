"""Class oracles: what any trained model of a class does on real inputs, as checks that
record their measured value beside the bound (and where the bound comes from), and checks
that cannot apply to a model, recorded with the reason instead of passing silently."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hfmatrix.checks import Check

NEAR = 0.2  # a passed bounded check within 20% of its bound is flagged in the report


@dataclass(frozen=True)
class Bound:
    """A limit a trained model meets by a wide margin and an untrained one misses:
    ``below`` True means the value must stay under ``limit``, else reach at least it."""

    limit: float
    source: str  # one line: where the figure comes from
    below: bool = True

    def holds(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value < self.limit if self.below else value >= self.limit


def bounded(name: str, value: float, bound: Bound, what: str = "value") -> Check:
    """``value`` (``what`` names it, e.g. "nll/token") on the right side of ``bound``."""
    value = float(value)
    side = "<" if bound.below else ">="
    detail = f"{what} {value:.4g} (must be {side} {bound.limit:.4g}; {bound.source})"
    return Check(
        name, bound.holds(value), detail, value=round(value, 6), bound=round(bound.limit, 6),
        below=bound.below, source=bound.source,
    )  # fmt: skip


def not_applicable(name: str, reason: str) -> Check:
    """A check that cannot apply to this model (another label set, too small a model, a
    non-English vocabulary): recorded with ``reason``, never counted as a pass or a fail."""
    return Check(name, True, reason, not_applicable=reason)


@dataclass(frozen=True)
class Published:
    """Expected outputs of a named checkpoint that its authors or transformers' integration
    tests publish, on inputs reproducible offline; the family's code compares them."""

    source: str  # repository, file and test (or model card) the figures come from
    values: dict[str, Any]
    revision: str | None = None  # the checkpoint revision they hold for; None: not pinned


def margin(check: dict[str, Any]) -> float | None:
    """How far a bounded check's value is from its bound, as a share of the bound
    (0: at the bound); None for a check without a bound."""
    value, bound = check.get("value"), check.get("bound")
    if value is None or bound is None or bound == 0:
        return None
    return (
        (bound - value) / abs(bound) if check.get("below", True) else (value - bound) / abs(bound)
    )


def near_bound(check: dict[str, Any]) -> bool:
    """A passed bounded check whose value lies within NEAR of its bound."""
    share = margin(check)
    return bool(check.get("passed")) and share is not None and share < NEAR
