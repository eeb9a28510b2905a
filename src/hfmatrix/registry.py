"""The model database (models.json): model id -> class, family, task, tier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hfmatrix.files import Checker, read_json

SCHEMA = 1
TIERS = ("tiny", "hub")
ENTRY_KEYS = {"class", "family", "task", "tier", "source"}
SOURCES = ("curated",)


@dataclass(frozen=True)
class ModelEntry:
    """One model of the database."""

    model_id: str
    model_class: str
    family: str
    task: str
    tier: str
    source: str = "curated"


def load_models(path: Path, families: set[str] | None = None) -> dict[str, ModelEntry]:
    """Read and validate models.json: {"schema": 1, "models": {model_id: {...}}}.

    With ``families``, an entry naming any other family is an error."""
    data, text = read_json(path)
    check = Checker(path, text)
    check.table(data, "models.json")
    check.keys(data, "models.json", {"schema", "models"}, {"schema", "models"})
    if type(data["schema"]) is not int or data["schema"] != SCHEMA:
        raise check.fail(f"unsupported schema {data['schema']!r} (expected {SCHEMA})", "schema")
    entries = {}
    for model_id, entry in check.table(data["models"], "models").items():
        where = f"models[{model_id!r}]"
        check = Checker(path, text).entry(model_id)
        check.table(entry, model_id)
        check.keys(entry, where, ENTRY_KEYS - {"source"}, ENTRY_KEYS)
        for key in ENTRY_KEYS & entry.keys():
            check.typed(entry, key, str, where)
        if families is not None and entry["family"] not in families:
            known = ", ".join(sorted(families))
            raise check.fail(f"{where}.family {entry['family']!r} is unknown (known: {known})",
                             "family")  # fmt: skip
        if entry["tier"] not in TIERS:
            raise check.fail(f"{where}.tier must be one of {', '.join(TIERS)}", "tier")
        if entry.get("source", "curated") not in SOURCES:
            raise check.fail(f"{where}.source must be one of {', '.join(SOURCES)}", "source")
        entries[model_id] = ModelEntry(
            model_id=model_id,
            model_class=entry["class"],
            family=entry["family"],
            task=entry["task"],
            tier=entry["tier"],
            source=entry.get("source", "curated"),
        )
    return entries


def family_models(models: dict[str, ModelEntry], family: str) -> list[ModelEntry]:
    """Every model of a family, tiny checkpoints first, then by id."""
    chosen = [entry for entry in models.values() if entry.family == family]
    return sorted(chosen, key=lambda entry: (TIERS.index(entry.tier), entry.model_id))


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
    return sorted(chosen, key=lambda e: (e.family, TIERS.index(e.tier), e.model_id))
