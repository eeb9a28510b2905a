"""Where a model's files come from: the tiny cache, a local directory, the HF cache or the Hub."""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 5.0


@dataclass
class Source:
    """What to pass to ``from_pretrained``/``pipeline`` for one model, and how it was found."""

    model_id: str
    tier: str
    location: str
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    origin: str = ""


class Unavailable(Exception):
    """The model cannot be loaded here (offline, not cached); its record is ``skipped``."""


def resolve_hub(model_id: str) -> Source:
    """A Hub model id: from the HF cache or the Hub, or Unavailable with the reason."""
    local = Path(model_id).expanduser()
    if local.is_dir():
        return Source(model_id, "local", str(local.resolve()), origin="local directory")
    cached = _in_hf_cache(model_id)
    if _offline():
        if cached:
            return Source(model_id, "hub", model_id, {"local_files_only": True}, "HF cache")
        raise Unavailable("HF_HUB_OFFLINE is set and the model is not in the HF cache")
    problem = hub_unreachable()
    if problem is None:
        return Source(model_id, "hub", model_id, origin="Hub" if not cached else "HF cache/Hub")
    if cached:
        return Source(model_id, "hub", model_id, {"local_files_only": True}, "HF cache")
    raise Unavailable(f"not in the HF cache and the Hub is unreachable ({problem})")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _in_hf_cache(model_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:  # an id that is not a valid repo id cannot be cached
        return False


@functools.cache
def hub_unreachable() -> str | None:
    """Why the Hub endpoint cannot be reached (one quick TCP connect), or None."""
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{url.hostname}:{port}: {exc}"
