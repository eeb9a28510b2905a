"""``hfmatrix discover``: ask the Hub for the most downloaded models of every class the
families test (and of every other class among the most downloaded transformers models),
and merge them into models.json. Curated entries stay; the discovered ones are replaced."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from hfmatrix.registry import ModelEntry, popularity
from hfmatrix.sources import endpoint, hub_unreachable, offline
from hfmatrix.specs import FamilySpec

# ModelInfo properties a listing asks for (huggingface_hub's `expand`)
EXPAND = ["config", "downloads", "likes", "lastModified", "gated", "pipeline_tag", "tags"]
LIBRARY = "transformers"
PROGRESS_EVERY = 100


class DiscoveryError(Exception):
    """The Hub could not answer; models.json stays as it was."""


@dataclass(frozen=True)
class Plan:
    """How much to ask: models kept per class, the download floor, models read per query."""

    per_class: int = 5
    min_downloads: int = 1000
    scan: int = 500


@dataclass
class Found:
    """A discovery's outcome: the models to write and what changed."""

    models: dict[str, ModelEntry]
    added: list[str]
    removed: list[str]


def discover(
    current: dict[str, ModelEntry],
    specs: dict[str, FamilySpec],
    plan: Plan,
    say: Callable[[str], None],
) -> Found:
    """Query the Hub ($HF_ENDPOINT, $HF_TOKEN) and merge its answer with ``current``."""
    if offline():
        raise DiscoveryError("HF_HUB_OFFLINE is set: discovery asks the Hub")
    problem = hub_unreachable()
    if problem is not None:
        raise DiscoveryError(f"the Hub is unreachable ({problem})")
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint())
    covers = {name: spec for spec in specs.values() for name in spec.architectures}
    seen: dict[str, ModelEntry] = {}
    model_types = sorted({t for spec in specs.values() for t in spec.architectures.values() if t})
    for model_type in [*model_types, None]:
        for entry in _listing(api, model_type, covers, plan, say):
            seen.setdefault(entry.model_id, entry)
    chosen = _most_downloaded(seen.values(), plan.per_class)
    curated = _refresh_curated(api, current, say)
    return _merge(current, curated, chosen)


def _listing(
    api: Any,
    model_type: str | None,
    covers: dict[str, FamilySpec],
    plan: Plan,
    say: Callable[[str], None],
) -> Iterator[ModelEntry]:
    """The transformers models tagged ``model_type`` (None: of any type), most downloaded
    first, down to the download floor or ``plan.scan`` models."""
    label = f"model_type {model_type!r}" if model_type else "every model_type"
    tags = [LIBRARY, model_type] if model_type else [LIBRARY]
    say(f"discover: {label}: the {plan.scan} most downloaded at most ...")
    read = kept = 0
    for info in _models(api, tags, plan.scan, label):
        if info.downloads is None:  # no count: cannot rank it
            continue
        if info.downloads < plan.min_downloads:
            break
        read += 1
        if read % PROGRESS_EVERY == 0:
            say(f"    {read} read ({info.downloads} downloads)")
        entry = hub_entry(info, covers)
        if entry is not None:
            kept += 1
            yield entry
    say(f"    {read} models read, {kept} with an architecture class")


def _models(api: Any, tags: list[str], scan: int, label: str) -> Iterator[Any]:
    """huggingface_hub's listing, most downloaded first; a failed request (after its
    retries) or an answer it cannot read is a DiscoveryError."""
    listing = iter(api.list_models(filter=tags, sort="downloads", limit=scan, expand=EXPAND))
    while True:
        try:
            info = next(listing)
        except StopIteration:
            return
        except Exception as exc:
            raise DiscoveryError(f"listing {label} failed: {_why(exc)}") from None
        yield info


def hub_entry(info: Any, covers: dict[str, FamilySpec]) -> ModelEntry | None:
    """A discovered entry for one listed model (None when its config names no class)."""
    config = info.config if isinstance(info.config, dict) else {}
    architectures = config.get("architectures")
    if not isinstance(architectures, list) or not architectures:
        return None
    if not isinstance(architectures[0], str) or not architectures[0].isidentifier():
        return None
    spec = covers.get(architectures[0])
    return ModelEntry(
        model_id=info.id,
        model_class=architectures[0],
        family=spec.family if spec else None,
        task=spec.task if spec else info.pipeline_tag,
        tier="hub",
        source="discovered",
        model_type=config.get("model_type") if isinstance(config.get("model_type"), str) else None,
        **stats(info),
    )


def stats(info: Any) -> dict[str, Any]:
    """The entry fields a Hub ModelInfo gives: popularity and flags."""
    config = info.config if isinstance(info.config, dict) else {}
    modified = info.last_modified
    return {
        "downloads": info.downloads,
        "likes": info.likes,
        "last_modified": modified.strftime("%Y-%m-%dT%H:%M:%SZ") if modified else None,
        "gated": None if info.gated is None else bool(info.gated),
        "remote_code": "custom_code" in (info.tags or []) or bool(config.get("auto_map")),
    }


def _most_downloaded(entries: Any, per_class: int) -> list[ModelEntry]:
    by_class: dict[str, list[ModelEntry]] = {}
    for entry in sorted(entries, key=popularity):
        by_class.setdefault(entry.model_class, []).append(entry)
    return [entry for group in by_class.values() for entry in group[:per_class]]


def _refresh_curated(
    api: Any, current: dict[str, ModelEntry], say: Callable[[str], None]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Curated hub model id -> (the id the Hub serves it under, its stats now). A model the
    Hub does not serve keeps its entry as it is."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    hub_ids = [e.model_id for e in current.values() if e.source == "curated" and e.tier == "hub"]
    say(f"discover: refreshing {len(hub_ids)} curated hub models ...")
    found = {}
    for model_id in hub_ids:
        try:
            info = api.model_info(model_id, expand=EXPAND)
        except (RepositoryNotFoundError, GatedRepoError) as exc:
            say(f"    {model_id}: kept as it is ({type(exc).__name__})")
            continue
        except Exception as exc:
            raise DiscoveryError(f"refreshing {model_id} failed: {_why(exc)}") from None
        found[model_id] = (info.id, stats(info))
    return found


def _merge(
    current: dict[str, ModelEntry],
    curated: dict[str, tuple[str, dict[str, Any]]],
    chosen: list[ModelEntry],
) -> Found:
    """Curated entries (in file order, with fresh stats), then the chosen discovered ones by
    family, class and downloads; a discovered id that is a curated model is not repeated."""
    models = {}
    aliases = {}
    for model_id, entry in current.items():
        if entry.source == "curated":
            hub_id, fresh = curated.get(model_id, (model_id, {}))
            models[model_id] = replace(entry, **fresh)
            aliases[hub_id] = aliases[model_id] = model_id
    new = [entry for entry in chosen if entry.model_id not in aliases]
    for entry in sorted(new, key=lambda e: (e.family is None, e.family or "", e.model_class,
                                            popularity(e))):  # fmt: skip
        models[entry.model_id] = entry
    before = {m for m, e in current.items() if e.source == "discovered"}
    after = {entry.model_id for entry in new}
    return Found(models, sorted(after - before), sorted(before - after))


def _why(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
