"""Fingerprints of a model's outputs, and drift between stacks and hardware.

A record's ``fingerprint`` keeps what its run's reference outputs and pipeline output looked
like in a few kilobytes of JSON (``compact``); the report compares the fingerprints of one
checkpoint across stacks and backends (``drift``) against one baseline record.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from hfmatrix.merge import fingerprint as environment_of
from hfmatrix.results import (
    REFERENCE_DTYPE,
    default_stack_name,
    record_column,
    record_label,
    stack_name,
)

SAMPLE = 64  # float values kept per tensor, evenly spaced over its flattened values
POSITIONS = 64  # positions whose argmax a logits-like tensor keeps
IDS = 512  # integer values kept exactly
ITEMS = 64  # items kept per list, keys per mapping
TEXT = 2000  # characters kept per string
DEPTH = 8  # nesting kept
LIMIT = 64 * 1024  # bytes of one fingerprint's JSON
IGNORED = frozenset({"dtype"})  # informative leaves that are not compared
STATUSES = ("agree", "declared", "drift")


# ---------------------------------------------------------------- compact


def compact(value: Any, name: str = "", depth: int = 0) -> Any:
    """``value`` (any output: tensors, arrays, ids, text, images, nested dicts and lists) as
    small JSON: float tensors as statistics and a sample, ids exactly (capped), the rest
    recursed with capped lengths. ``name`` is the key it sits under."""
    if depth > DEPTH:
        return _brief(value)
    if _is_array(value):
        return _array(value, name)
    if _is_image(value):
        return _image(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value[:TEXT] if isinstance(value, str) else value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Mapping):
        items = list(value.items())[:ITEMS]
        return {str(key): compact(item, str(key), depth + 1) for key, item in items}
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return list(value[:IDS])
        return [compact(item, name, depth + 1) for item in value[:ITEMS]]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy scalar
        return compact(value.item(), name, depth)
    return _brief(value)


def _float(value: float) -> float | str:
    """A float to 8 significant digits; NaN and infinities as text (JSON has none)."""
    value = float(value)
    return float(f"{value:.8g}") if math.isfinite(value) else str(value)


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:199] + "…"


def _is_array(value: Any) -> bool:
    module = type(value).__module__.split(".")[0]
    return module in ("torch", "numpy") and hasattr(value, "shape") and hasattr(value, "dtype")


def _is_image(value: Any) -> bool:
    return all(hasattr(value, attr) for attr in ("size", "mode", "getbands"))


def _numpy(value: Any) -> tuple[Any, str]:
    """(a numpy array of ``value``, its dtype's name)."""
    import numpy as np

    dtype = str(value.dtype).removeprefix("torch.")
    if hasattr(value, "detach"):  # a torch tensor; bf16 and fp16 read as fp32
        tensor = value.detach().cpu()
        value = tensor.float() if tensor.is_floating_point() else tensor
        return value.numpy(), dtype
    return np.asarray(value), dtype


def _array(value: Any, name: str) -> Any:
    array, dtype = _numpy(value)
    if array.ndim == 0:
        return compact(array.item(), name)
    if array.dtype.kind in "iu":
        return _ints(array, dtype)
    if array.dtype.kind == "b":
        return {"shape": list(array.shape), "dtype": dtype, "true": int(array.sum()),
                "sha256": _sha256(array.astype("uint8"))}  # fmt: skip
    if array.dtype.kind == "f":
        return _floats(array, dtype, name)
    return _brief(value)


def _ints(array: Any, dtype: str) -> Any:
    """Token ids and other integers: exact values (a mask or image: a summary)."""
    if array.size <= IDS:
        return array.tolist()
    flat = array.reshape(-1)
    return {"shape": list(array.shape), "dtype": dtype, "sum": int(flat.sum(dtype="int64")),
            "head": flat[:SAMPLE].tolist(), "sha256": _sha256(flat.astype("int64"))}  # fmt: skip


def _floats(array: Any, dtype: str, name: str) -> dict[str, Any]:
    """Shape, mean, std, SAMPLE evenly spaced values and, for logits, the argmax of up to
    POSITIONS positions."""
    flat = array.reshape(-1).astype("float64")
    summary: dict[str, Any] = {
        "shape": list(array.shape),
        "dtype": dtype,
        "mean": _float(flat.mean()) if flat.size else None,
        "std": _float(flat.std()) if flat.size else None,
        "sample": [_float(x) for x in flat[_spaced(flat.size, SAMPLE)]],
    }
    logits_like = "logit" in name.lower() or not name
    if logits_like and array.ndim >= 2 and array.shape[-1] > 1 and flat.size:
        rows = array.reshape(-1, array.shape[-1])
        summary["argmax"] = rows[_spaced(len(rows), POSITIONS)].argmax(-1).tolist()
    return summary


def _spaced(size: int, count: int) -> Any:
    """Up to ``count`` evenly spaced indices into ``size`` items, first and last included."""
    import numpy as np

    if size <= count:
        return np.arange(size)
    return np.linspace(0, size - 1, count).round().astype("int64")


def _image(image: Any) -> dict[str, Any]:
    import numpy as np

    pixels = np.asarray(image, dtype="float64")
    return {"image": {"size": list(image.size), "mode": image.mode,
                      "mean": _float(pixels.mean()), "std": _float(pixels.std())}}  # fmt: skip


def _sha256(array: Any) -> str:
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


# ---------------------------------------------------------------- the record's block


class Capture:
    """The outputs of one run that its fingerprint keeps, compacted as the tests produce
    them; a failure is kept as an error, never raised into the tests."""

    def __init__(self) -> None:
        self.parts: dict[str, Any] = {}
        self.errors: list[str] = []

    def add(self, part: str, produce: Callable[[], Any]) -> None:
        """Keep ``produce()`` compacted as ``part`` ("outputs" or "pipeline")."""
        try:
            self.parts[part] = compact(produce())
        except Exception as exc:  # the fingerprint never changes a verdict
            self.errors.append(f"{part}: {type(exc).__name__}: {exc}"[:500])

    def block(self, record: dict[str, Any], atol: float) -> dict[str, Any] | None:
        """The record's ``fingerprint`` (None when no test got as far as outputs), at most
        LIMIT bytes of JSON; what was captured is cleared."""
        parts, errors = self.parts, self.errors
        self.parts, self.errors = {}, []
        if not parts and not errors:
            return None
        try:
            return _bounded(_block(record, atol, parts, errors))
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def _block(
    record: dict[str, Any], atol: float, parts: dict[str, Any], errors: list[str]
) -> dict[str, Any]:
    checkpoint = record.get("checkpoint")
    sha256 = checkpoint.get("sha256") if isinstance(checkpoint, dict) else None
    block = {
        "checkpoint": {"revision": record.get("revision"), "sha256": sha256},
        "atol": atol,
        "outputs": parts.get("outputs"),
        "pipeline": parts.get("pipeline"),
    }
    if errors:
        block["error"] = "; ".join(errors)
    return block


def _bounded(block: dict[str, Any]) -> dict[str, Any]:
    """``block`` with its largest part dropped (and named in its error) while over LIMIT."""
    for part in ("pipeline", "outputs"):
        size = len(json.dumps(block, default=str))
        if size <= LIMIT:
            break
        block[part] = None
        note = f"{part} left out: the fingerprint was {size} bytes"
        block["error"] = "; ".join(filter(None, [block.get("error"), note]))
    return block


# ---------------------------------------------------------------- comparing two


class _Walk:
    """The largest float difference and the first differing leaf of two compact values."""

    def __init__(self, atol: float) -> None:
        self.atol, self.worst, self.where = atol, None, None

    def differ(self, path: str) -> None:
        self.where = self.where or path

    def visit(self, one: Any, other: Any, path: str) -> None:
        if isinstance(one, dict) and isinstance(other, dict):
            if one.get("shape") != other.get("shape"):  # samples of two shapes do not pair up
                self.differ(f"{path}.shape")
                return
            for key in [*one, *(k for k in other if k not in one)]:
                if key in IGNORED:
                    continue
                if key not in one or key not in other:
                    self.differ(f"{path}.{key}")
                else:
                    self.visit(one[key], other[key], f"{path}.{key}")
        elif isinstance(one, list) and isinstance(other, list):
            if len(one) != len(other):
                self.differ(f"{path} (length {len(one)} != {len(other)})")
                return
            for index, (a, b) in enumerate(zip(one, other, strict=True)):
                self.visit(a, b, f"{path}[{index}]")
        elif _real(one) and _real(other) and (isinstance(one, float) or isinstance(other, float)):
            diff = abs(one - other)
            self.worst = diff if self.worst is None else max(self.worst, diff)
            if diff > self.atol:
                self.differ(path)
        elif one != other:
            self.differ(path)


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare(base: dict[str, Any], other: dict[str, Any], atol: float) -> dict[str, Any]:
    """Two fingerprints, over the parts both have: ``max_abs_diff`` (float leaves: tensor
    statistics and samples, pipeline scores), ``greedy_ids_equal``, ``pipeline_equal`` (ids,
    labels and text exactly, floats within ``atol``), ``where`` (the first differing leaf)
    and ``differs``."""
    walk = _Walk(atol)
    for part in ("outputs", "pipeline"):
        if base.get(part) is not None and other.get(part) is not None:
            walk.visit(base[part], other[part], part)
    ids = [_dict(fp.get("outputs")).get("greedy_ids") for fp in (base, other)]
    piped = [fp.get("pipeline") for fp in (base, other)]
    pipeline_equal = None
    if None not in piped:
        only_pipeline = _Walk(atol)
        only_pipeline.visit(piped[0], piped[1], "pipeline")
        pipeline_equal = only_pipeline.where is None
    return {
        "max_abs_diff": walk.worst,
        "greedy_ids_equal": None if None in ids else ids[0] == ids[1],
        "pipeline_equal": pipeline_equal,
        "where": walk.where,
        "differs": walk.where is not None,
    }


# ---------------------------------------------------------------- drift over records


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def comparable(record: dict[str, Any]) -> bool:
    """A record whose fingerprint holds outputs to compare (not old or skipped ones)."""
    block = _dict(record.get("fingerprint"))
    return block.get("outputs") is not None or block.get("pipeline") is not None


def identity(record: dict[str, Any]) -> str:
    """The checkpoint a fingerprint is of: its files' sha256, else its revision."""
    checkpoint = _dict(_dict(record.get("fingerprint")).get("checkpoint"))
    return str(checkpoint.get("sha256") or checkpoint.get("revision") or "")


def _dtype(record: dict[str, Any]) -> str:
    dtype = record.get("dtype")
    return dtype if isinstance(dtype, str) else REFERENCE_DTYPE


def tolerance(record: dict[str, Any]) -> float:
    """The record's tolerance: its fingerprint's (the class's), or on another backend or in
    half precision its numerics' atol when that is larger."""
    atols = [_dict(record.get("fingerprint")).get("atol")]
    if record.get("hardware") != "cpu" or _dtype(record) != REFERENCE_DTYPE:
        atols.append(_dict(record.get("numerics")).get("atol"))
    return max((a for a in atols if _real(a)), default=0.0)


def _order(record: dict[str, Any]) -> tuple[bool, str, str, str]:
    name = stack_name(record)
    return name is not None, name or "", record_column(record), environment_of(record)


def baseline(group: list[dict[str, Any]]) -> dict[str, Any]:
    """The default stack's cpu fp32 record, else the first by (stack, column)."""
    reference = [r for r in group if stack_name(r) is None and record_column(r) == "cpu"]
    return min(reference or group, key=_order)


def _where(record: dict[str, Any]) -> dict[str, Any]:
    return {"stack": stack_name(record) or default_stack_name(),
            "column": record_column(record), "label": record_label(record),
            "environment": environment_of(record)}  # fmt: skip


def agreement(base: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Whether ``record``'s fingerprint agrees with ``base``'s at the larger tolerance of the
    two: agree, declared (the stacks' declared golden values explain it) or drift."""
    atol = max(tolerance(base), tolerance(record))
    found = compare(base["fingerprint"], record["fingerprint"], atol)
    declared = {**_dict(base.get("expectations")), **_dict(record.get("expectations"))}
    # declared: the golden values, held to the stack's declared ones, still passed
    held = declared and all(r.get("status") == "passed" for r in (base, record))
    status = "agree" if not found["differs"] else "declared" if held else "drift"
    row = {**_where(record), "status": status, "max_abs_diff": found["max_abs_diff"],
           "atol": atol, "greedy_ids_equal": found["greedy_ids_equal"],
           "pipeline_equal": found["pipeline_equal"], "where": found["where"]}  # fmt: skip
    if status == "declared":
        row["expectations"] = declared
    return row


def drift(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (family, model, dtype, checkpoint) with two or more fingerprinted records: the
    baseline and a row per other record, saying whether it agrees with the baseline."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for record in filter(comparable, records):
        group = (record["family"], record["model_id"], _dtype(record), identity(record))
        groups.setdefault(group, []).append(record)
    report = []
    for (family, model_id, dtype, checkpoint), group in sorted(groups.items()):
        base = baseline(group)
        others = sorted((r for r in group if r is not base), key=_order)
        if others:
            report.append({"family": family, "model_id": model_id, "dtype": dtype,
                           "checkpoint": checkpoint, "baseline": _where(base),
                           "rows": [agreement(base, record) for record in others]})  # fmt: skip
    return report


def totals(groups: list[dict[str, Any]]) -> dict[str, int]:
    """How many compared records agree, differ as declared, or drift."""
    statuses = [row["status"] for group in groups for row in group["rows"]]
    return {status: statuses.count(status) for status in STATUSES}
