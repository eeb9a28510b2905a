"""The model database (models.json): per model id its class, family, task, tier, where the
entry came from and, where the Hub told us, its popularity and flags."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hfmatrix.files import Checker, atomic_write_text, read_json

SCHEMA = 2
READABLE_SCHEMAS = (1, 2)  # schema 1 is schema 2 without the Hub's fields
TIERS = ("tiny", "hub")
SOURCES = ("curated", "discovered")
REQUIRED = ("class", "family", "task", "tier")
# file key -> (ModelEntry field, allowed types); None is allowed for every optional field
OPTIONAL: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "model_type": ("model_type", str),
    "source": ("source", str),
    "downloads": ("downloads", int),
    "likes": ("likes", int),
    "last_modified": ("last_modified", str),
    "gated": ("gated", bool),
    "remote_code": ("remote_code", bool),
}
STATS = ("downloads", "likes", "last_modified", "gated", "remote_code")  # what the Hub refreshes


@dataclass(frozen=True)
class ModelEntry:
    """One model of the database. ``family`` is None for a discovered class no family tests."""

    model_id: str
    model_class: str
    family: str | None
    task: str | None
    tier: str
    source: str = "curated"
    model_type: str | None = None
    downloads: int | None = None  # the Hub's count (last 30 days)
    likes: int | None = None
    last_modified: str | None = None
    gated: bool | None = None
    remote_code: bool | None = None  # the config's auto_map / the Hub's custom_code tag

    def fields(self) -> dict[str, Any]:
        """The file form: required keys, then the optional ones that are known."""
        values = asdict(self)
        out: dict[str, Any] = {"class": self.model_class}
        out.update({key: values[key] for key in REQUIRED[1:]})
        out.update({key: values[name] for key, (name, _) in OPTIONAL.items()
                    if values[name] is not None})  # fmt: skip
        return out


def load_models(path: Path, families: dict[str, list[str]] | None = None) -> dict[str, ModelEntry]:
    """Read and validate models.json: {"schema": 2, "models": {model_id: {...}}}.

    With ``families`` (family -> the classes it tests), an entry naming another family,
    or a class its family does not test, is an error."""
    data, text = read_json(path)
    check = Checker(path, text)
    check.table(data, "models.json")
    check.keys(data, "models.json", {"schema", "models"}, {"schema", "models"})
    if type(data["schema"]) is not int or data["schema"] not in READABLE_SCHEMAS:
        raise check.fail(f"unsupported schema {data['schema']!r} (expected {SCHEMA})", "schema")
    return {
        model_id: _entry(model_id, entry, Checker(path, text).entry(model_id), families)
        for model_id, entry in check.table(data["models"], "models").items()
    }


def _entry(
    model_id: str, entry: Any, check: Checker, families: dict[str, list[str]] | None
) -> ModelEntry:
    where = f"models[{model_id!r}]"
    check.table(entry, model_id)
    check.keys(entry, where, set(REQUIRED), {*REQUIRED, *OPTIONAL})
    for key in ("class", "tier"):
        check.typed(entry, key, str, where)
    values = {
        name: None if entry.get(key) is None else check.typed(entry, key, kind, where)
        for key, (name, kind) in OPTIONAL.items()
    }
    source = values.pop("source") or "curated"
    if source not in SOURCES:
        raise check.fail(f"{where}.source must be one of {', '.join(SOURCES)}", "source")
    family, task = entry["family"], entry["task"]
    if family is None and source != "discovered":
        raise check.fail(f"{where}.family may be null only for a discovered model", "family")
    for key in ("family", "task"):
        if entry[key] is not None:
            check.typed(entry, key, str, where)
    if families is not None and family is not None and family not in families:
        known = ", ".join(sorted(families))
        raise check.fail(f"{where}.family {family!r} is unknown (known: {known})", "family")
    if families and family in families and entry["class"] not in families[family]:
        tested = ", ".join(families[family])
        raise check.fail(
            f"{where}.class {entry['class']!r} is not a class the {family} family "
            f"tests ({tested}: env_specs/{family}.toml architectures)",
            "class",
        )
    if family is not None and task is None:
        raise check.fail(f"{where}.task is needed: the pipeline task its family runs", "task")
    if entry["tier"] not in TIERS:
        raise check.fail(f"{where}.tier must be one of {', '.join(TIERS)}", "tier")
    if source == "discovered" and entry["tier"] != "hub":
        raise check.fail(f"{where}: a discovered model's tier is hub", "tier")
    if values["last_modified"] is not None and not _timestamp(values["last_modified"]):
        raise check.fail(f"{where}.last_modified must be an ISO 8601 time", "last_modified")
    for key in ("downloads", "likes"):
        if values[key] is not None and values[key] < 0:
            raise check.fail(f"{where}.{key} must not be negative", key)
    return ModelEntry(model_id, entry["class"], family, task, entry["tier"], source, **values)


def _timestamp(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def render_models(models: dict[str, ModelEntry]) -> str:
    """models.json text, one line per model (diffs read per model)."""
    rows = [f"    {json.dumps(model_id)}: {json.dumps(entry.fields(), ensure_ascii=False)}"
            for model_id, entry in models.items()]  # fmt: skip
    body = ",\n".join(rows)
    return f'{{\n  "schema": {SCHEMA},\n  "models": {{\n{body}\n  }}\n}}\n'


def write_models(path: Path, models: dict[str, ModelEntry]) -> None:
    atomic_write_text(path, render_models(models))


def family_models(models: dict[str, ModelEntry], family: str) -> list[ModelEntry]:
    """Every model of a family, tiny checkpoints first, then by id."""
    return query(models, family=family)


def query(
    models: dict[str, ModelEntry],
    family: str | None = None,
    model_class: str | None = None,
    task: str | None = None,
    tier: str | None = None,
) -> list[ModelEntry]:
    """The entries that match every given field, by family, tiny checkpoints first."""
    wanted = {"family": family, "model_class": model_class, "task": task, "tier": tier}
    chosen = [
        entry
        for entry in models.values()
        if all(value is None or getattr(entry, key) == value for key, value in wanted.items())
    ]
    return sorted(chosen, key=lambda e: (e.family or "~", TIERS.index(e.tier), e.model_id))


def popularity(entry: ModelEntry) -> tuple[int, str]:
    """A sort key: most downloaded first (unknown counts last), then by id."""
    return (-(entry.downloads if entry.downloads is not None else -1), entry.model_id)


def representative(models: dict[str, ModelEntry], family: str, count: int) -> list[ModelEntry]:
    """The family's tiny checkpoints, then its ``count`` most-downloaded hub models of each
    class (the routine run)."""
    entries = query(models, family=family)
    chosen = [entry for entry in entries if entry.tier == "tiny"]
    by_class: dict[str, list[ModelEntry]] = {}
    for entry in sorted(entries, key=popularity):
        if entry.tier == "hub":
            by_class.setdefault(entry.model_class, []).append(entry)
    for model_class in sorted(by_class):
        chosen += by_class[model_class][:count]
    return chosen


NO_REASON = (
    "no reason recorded: test it in a family (env_specs/<family>.toml architectures) or say "
    "why not in env_specs/classes/untested.toml"
)


def coverage(
    models: dict[str, ModelEntry],
    architectures: dict[str, list[str]],
    untested: dict[str, Any] | None = None,
) -> dict:
    """The registry against the families (family -> the classes it tests): each family's
    classes and model counts, the families with nothing beyond a tiny checkpoint, the
    classes in the registry that no family tests, most downloaded first, each with why
    (``untested``: class -> specs.Untested), and the share of the registry's downloads that
    the tested classes hold."""
    families = {
        family: {
            "classes": sorted(classes),
            "models": len(query(models, family=family)),
            "hub_models": len(query(models, family=family, tier="hub")),
        }
        for family, classes in sorted(architectures.items())
    }
    tested = {name for classes in architectures.values() for name in classes}
    reasons = untested or {}
    by_class: dict[str, list[ModelEntry]] = {}
    for entry in sorted(models.values(), key=popularity):
        if entry.model_class not in tested:
            by_class.setdefault(entry.model_class, []).append(entry)
    rows = [
        {
            "class": name,
            "model_type": entries[0].model_type,
            "task": entries[0].task,
            "models": len(entries),
            "downloads": sum(entry.downloads or 0 for entry in entries),
            "most_downloaded": entries[0].model_id,
            "why": reasons[name].why if name in reasons else None,
            "reason": reasons[name].reason if name in reasons else NO_REASON,
        }
        for name, entries in by_class.items()
    ]
    return {
        "families": families,
        "tiny_only": [family for family, row in families.items() if not row["hub_models"]],
        "untested_classes": sorted(rows, key=lambda row: (-row["downloads"], row["class"])),
        "downloads": download_share(models, tested),
    }


def download_share(models: dict[str, ModelEntry], tested: set[str]) -> dict[str, Any]:
    """The registry's Hub downloads (of the models discover counted) and the tested classes'
    part of them; share None where no model has a count."""
    counted = [entry for entry in models.values() if entry.downloads is not None]
    total = sum(entry.downloads or 0 for entry in counted)
    covered = sum(entry.downloads or 0 for entry in counted if entry.model_class in tested)
    return {
        "counted_models": len(counted),
        "total": total,
        "tested_classes": covered,
        "share": round(covered / total, 4) if total else None,
    }
