"""Where a model's files come from: the tiny cache, a local directory, the HF cache or the Hub."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT_S = 5.0
HUB = "https://huggingface.co"
GATED = "gated on the Hub: needs HF_TOKEN with access to it"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")  # torch.load (unpickling) reads them


@dataclass
class Source:
    """What to pass to ``from_pretrained``/``pipeline`` for one model, and how it was found."""

    model_id: str
    tier: str
    location: str
    origin: str = ""
    revision: str | None = None
    files: tuple[str, ...] | None = None  # a Hub-served repo's file names (from its info)

    def file_names(self) -> list[str]:
        """The checkpoint's file names (relative), from its directory or its Hub info."""
        if self.files is not None:
            return list(self.files)
        root = Path(self.location)
        return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]


class Unavailable(Exception):
    """The model cannot be loaded here (offline, not cached); its record is ``skipped``."""


def resolve_hub(model_id: str, revision: str | None = None) -> Source:
    """A local directory, or a Hub id (at ``revision``, default main) served by the Hub or
    the HF cache; else Unavailable. A Hub-served source names the commit it resolved to."""
    local = Path(model_id).expanduser()
    if local.is_dir():
        return Source(model_id, "local", str(local.resolve()), "local directory")
    snapshot = cached_snapshot(model_id, revision)
    at = f" at revision {revision!r}" if revision else ""
    if offline():
        if snapshot is None:
            raise Unavailable(f"HF_HUB_OFFLINE is set and the model{at} is not in the HF cache")
    else:
        problem = hub_unreachable()
        if problem is None:
            try:
                commit, files = hub_commit(model_id, revision)
                return Source(model_id, "hub", model_id, "Hub", commit, files)
            except Unavailable:  # the Hub would not serve it: the HF cache still can
                if snapshot is None:
                    raise
        elif snapshot is None:
            raise Unavailable(f"not in the HF cache{at} and the Hub is unreachable ({problem})")
    return Source(model_id, "hub", str(snapshot), "HF cache", revision=snapshot.name)


def hub_commit(model_id: str, revision: str | None) -> tuple[str | None, tuple[str, ...] | None]:
    """The commit the Hub serves for ``revision`` and the repo's file names; Unavailable for
    a gated or unreachable repo. A missing repo or revision raises (the model's record is an
    error)."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        api = HfApi(endpoint=endpoint())
        info = api.model_info(model_id, revision=revision, timeout=PROBE_TIMEOUT_S)
    except GatedRepoError:
        raise Unavailable(GATED) from None
    except RepositoryNotFoundError:
        raise LookupError("not found on the Hub (or private: set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise LookupError(f"the Hub has no revision {revision!r} of it") from None
    except Exception as exc:  # timeouts, connection errors, server errors
        why = f"the Hub did not serve its info ({type(exc).__name__}: {exc})"
        raise Unavailable(why[:300]) from None
    if info.gated and not get_token():  # the Hub shows a gated repo's info, not its files
        raise Unavailable(GATED)
    files = tuple(sibling.rfilename for sibling in info.siblings) if info.siblings else None
    return info.sha, files


def cached_snapshot(model_id: str, revision: str | None = None) -> Path | None:
    """The HF cache's snapshot directory of ``model_id`` (at ``revision``) if it holds
    weights, else None."""
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(model_id, revision=revision, local_files_only=True))
    except Exception:  # not cached, or not a valid repo id
        return None
    weights = [*path.glob("*.safetensors"), *path.glob("pytorch_model*.bin")]
    return path if weights else None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def hub_unreachable() -> str | None:
    """Why the Hub endpoint ($HF_ENDPOINT) does not answer one quick request, or None;
    asked once per endpoint and process, so a dead or slow Hub costs seconds per run."""
    return _probe(endpoint())


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or HUB


@functools.cache
def _probe(endpoint: str) -> str | None:
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # any answer at all means reachable; no answer is the reason
        return f"{endpoint}: {type(exc).__name__}: {exc}"[:300]
    return None


def pickle_weights(files: list[str]) -> list[str]:
    """The pickle weight files of a checkpoint that has no safetensors weights (loading it
    would unpickle them), else []."""
    if any(name.endswith(".safetensors") for name in files):
        return []
    return sorted(name for name in files if name.endswith(PICKLE_SUFFIXES))


def availability(model_id: str, tier: str) -> tuple[bool, str]:
    """Whether a model can run here, and from where (or why not): what a run would find."""
    if tier == "tiny":
        return True, "frozen files (tiny/)"
    try:
        source = resolve_hub(model_id)
    except (Unavailable, LookupError) as exc:
        return False, str(exc)
    return True, source.origin + (f" ({source.revision[:12]})" if source.revision else "")
