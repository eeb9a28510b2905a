"""Result records: the schema, the environment they ran in, atomic writes."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import re
import socket
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from hfmatrix.errors import UserError
from hfmatrix.files import atomic_write_text

SCHEMA = "hfmatrix.record/1"
STATUSES = ("passed", "failed", "error", "skipped", "timeout")


REFERENCE_DTYPE = "float32"


def column(hardware: str, dtype: str | None = None) -> str:
    """The matrix column of a run: the backend, plus the dtype when it is not fp32
    (``cuda``, ``cuda-float16``)."""
    return hardware if dtype in (None, REFERENCE_DTYPE) else f"{hardware}-{dtype}"


def session_name(family: str, hardware: str, dtype: str | None = None) -> str:
    """The raw/ directory of one (family, hardware) session, e.g. ``bert-cpu``."""
    return f"{family}-{column(hardware, dtype)}"


PLAIN_ID = re.compile(r"(?:\w[\w.-]*/)?\w[\w.-]*")


def slug(model_id: str) -> str:
    """A file-name-safe form of a model id or path. A Hub id keeps its name ("/" becomes
    "--"); anything else (a path, odd characters, a very long id) also gets a short hash
    of itself, so two models never share a name."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "--", model_id).strip(".-")[:80].strip(".-")
    if PLAIN_ID.fullmatch(model_id) and "--" not in model_id and len(model_id) <= 80:
        return readable
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:8]
    return f"{readable or 'model'}-{digest}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@functools.cache
def installed_packages(path: tuple[str, ...]) -> dict[str, str]:
    """{name: version} of the distributions on ``path`` (sys.path), as imported: the first
    copy of a name wins."""
    packages: dict[str, str] = {}
    for dist in metadata.distributions(path=list(path)):
        name = dist.metadata["Name"]
        if name and name.lower() not in packages:
            packages[name.lower()] = dist.version
    return dict(sorted(packages.items()))


def code_sha256(family_module: Path) -> str:
    """A hash of the code that decides a verdict: the family module and hfmatrix itself."""
    digest = hashlib.sha256()
    for path in (family_module, *sorted(Path(__file__).parent.glob("*.py"))):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def environment(device: dict[str, Any] | None = None) -> dict[str, Any]:
    """The software stack of this process (python, torch, transformers, platform, packages,
    its fingerprint) and the host it runs on."""
    # a package's vendored copies (setuptools puts its _vendor dir on sys.path when torch's
    # extension tools import it) are not part of the environment
    path = tuple(entry for entry in sys.path if "_vendor" not in Path(entry).parts)
    packages = installed_packages(path)
    stack = {
        "python": platform.python_version(),
        "torch": packages.get("torch"),
        "transformers": packages.get("transformers"),
        "platform": platform.platform(),
        "host": socket.gethostname(),  # which machine: not part of the fingerprint
        "device": device or {},
        "packages": dict(packages),
    }
    fingerprint = json.dumps([stack["python"], stack["platform"], packages], sort_keys=True)
    stack["fingerprint"] = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    return stack


def new_record(
    family: str, model_class: str, model_id: str, tier: str, hardware: str, dtype: str = "float32"
) -> dict:
    """A record with every schema key present; the runner fills in the outcome."""
    return {
        "schema": SCHEMA,
        "session": session_name(family, hardware, dtype),
        "family": family,
        "model_class": model_class,
        "model_id": model_id,
        "tier": tier,
        "hardware": hardware,
        "dtype": dtype,
        "status": "error",
        "reason": "",
        "task": None,
        "request": {},
        "revision": None,
        "tests": {},
        "numerics": {},
        "checkpoint": None,
        "environment": {},
        "started_at": now(),
        "duration_s": 0.0,
    }


def outcome_record(
    family: str,
    model_class: str,
    model_id: str,
    tier: str,
    hardware: str,
    reason: str,
    status: str = "skipped",
    dtype: str = REFERENCE_DTYPE,
) -> dict:
    """A record for a model whose tests did not run (skipped, or an error before them)."""
    record = new_record(family, model_class, model_id, tier, hardware, dtype)
    record.update(status=status, reason=reason, environment=environment())
    return record


def checked_results_dir(path: Path) -> Path:
    """``path`` if records can be written there; else a UserError."""
    if path.exists() and not path.is_dir():
        raise UserError("the results directory is not a directory", path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UserError(f"cannot write the results directory: {exc.strerror}", path) from None
    return path


def record_path(results_dir: Path, record: dict) -> Path:
    """raw/<session>/<model>@<environment fingerprint>.json: one file per (family,
    hardware, model, environment), so runs from different environments never share one."""
    fingerprint = (record.get("environment") or {}).get("fingerprint")
    name = slug(record["model_id"]) + (f"@{fingerprint}" if fingerprint else "")
    return results_dir / "raw" / record["session"] / f"{name}.json"


def write_record(results_dir: Path, record: dict, path: Path | None = None) -> Path:
    """Write a record atomically (temp file in the same directory, then rename) to
    ``path``, by default its record_path."""
    if record["status"] not in STATUSES:
        raise ValueError(f"bad status {record['status']!r}")
    path = path or record_path(results_dir, record)
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
    return path
