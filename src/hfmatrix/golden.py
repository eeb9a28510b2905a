"""Golden values of the tiny checkpoints: ``families/golden/<family>.json``, one entry per
tiny model id, ``{check name: value}``. A value that legitimately differs on some stack is
``{"default": value, "differs": [{"stack": "transformers<5", "value": ..., "reason": ...}]}``
(expectations.Differs). ``hfmatrix freeze`` captures the values of a tiny checkpoint that has
none (a class just added) from its own run on the reference stack; it never rewrites an
entry: delete one to capture it again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hfmatrix.errors import UserError
from hfmatrix.expectations import Differs, Expected
from hfmatrix.files import atomic_write_text

DECIMALS = 6  # floats as captured: well inside every tolerance the checks use


def path(root: Path, family: str) -> Path:
    return root / "families" / "golden" / f"{family}.json"


def read(root: Path, family: str) -> dict[str, dict[str, Any]]:
    """The family's file as stored (model id -> {check name: value}); {} when absent."""
    where = path(root, family)
    if not where.is_file():
        return {}
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON: {exc.msg}", where, exc.lineno) from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UserError("expected {tiny model id: {check name: value}}", where)
    return data


def load(root: Path, family: str, model_id: str) -> dict[str, Expected]:
    """``model_id``'s golden values, each an Expected (its value for this stack resolves
    when a check compares)."""
    return {name: decode(value) for name, value in read(root, family).get(model_id, {}).items()}


def decode(value: Any) -> Expected:
    if isinstance(value, dict) and set(value) == {"default", "differs"}:
        differs = tuple(Differs(d["stack"], d["value"], d["reason"]) for d in value["differs"])
        return Expected(value["default"], differs)
    return Expected(value)


def plain(value: Any) -> Any:
    """A check's value as JSON keeps it: tensors and arrays as nested lists, floats rounded
    to DECIMALS, an Expected as its default and the stacks where it differs."""
    if isinstance(value, Expected):
        differs = [{"stack": d.stack, "value": plain(d.value), "reason": d.reason}
                   for d in value.differs]  # fmt: skip
        return (
            {"default": plain(value.default), "differs": differs}
            if differs
            else plain(value.default)
        )
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def add(root: Path, family: str, model_id: str, values: dict[str, Any]) -> Path:
    """Store ``model_id``'s captured values; an entry already there is a UserError."""
    data = read(root, family)
    if model_id in data:
        raise UserError(f"{model_id} already has golden values: delete its entry to capture "
                        "them again", path(root, family))  # fmt: skip
    data[model_id] = values
    where = path(root, family)
    where.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(where, render(data))
    return where


def render(data: dict[str, dict[str, Any]]) -> str:
    """One line per value (a matrix's rows on lines of their own), entries sorted by id."""
    lines = ["{"]
    for i, (model_id, values) in enumerate(sorted(data.items())):
        lines.append(f"  {json.dumps(model_id)}: {{")
        for j, (name, value) in enumerate(values.items()):
            comma = "," if j < len(values) - 1 else ""
            lines.append(f"    {json.dumps(name)}: {_value(value)}{comma}")
        lines.append("  }" + ("," if i < len(data) - 1 else ""))
    return "\n".join([*lines, "}"]) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(row, list) for row in value):
        rows = ",\n".join(f"      {json.dumps(row, ensure_ascii=False)}" for row in value)
        return f"[\n{rows}\n    ]"
    return json.dumps(value, ensure_ascii=False)
