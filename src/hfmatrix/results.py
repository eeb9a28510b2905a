"""Result records: the schema, the environment they ran in, atomic writes."""

from __future__ import annotations

import functools
import hashlib
import json
import os
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
STACK_ENV = "HFMATRIX_STACK"  # the stack's name, set by its nox sessions
FALLBACK_DEFAULT_STACK = "latest"  # the default stack's name outside a project
LABEL_PACKAGES = ("transformers", "torch", "optimum-intel", "openvino")  # a stack in words
STACK_PACKAGES = (
    *LABEL_PACKAGES, "optimum", "tokenizers", "huggingface-hub", "safetensors", "numpy"
)  # fmt: skip


def column(hardware: str, dtype: str | None = None) -> str:
    """The matrix column of a run: the backend, plus the dtype when it is not fp32
    (``cuda``, ``cuda-float16``)."""
    return hardware if dtype in (None, REFERENCE_DTYPE) else f"{hardware}-{dtype}"


def session_name(
    family: str, hardware: str, dtype: str | None = None, stack: str | None = None
) -> str:
    """The raw/ directory of one (family, hardware) session: ``bert-cpu``, or with a stack
    other than the default, ``bert-tf4-cpu``."""
    return f"{family}-{stack + '-' if stack else ''}{column(hardware, dtype)}"


@functools.lru_cache(maxsize=8)
def _default_stack_in(directory: str) -> str:
    from hfmatrix.project import Project

    try:
        return Project.find(Path(directory)).default_stack().name
    except Exception:  # outside a project, or one without (valid) stack specs
        return FALLBACK_DEFAULT_STACK


def default_stack_name(start: Path | None = None) -> str:
    """The default stack's name: the project's (the spec in env_specs/stacks/ that says
    ``default = true``) around ``start`` (the current directory), else ``latest``."""
    return _default_stack_in(str((start or Path.cwd()).resolve()))


def stack_name(record: dict[str, Any]) -> str | None:
    """The record's stack, None for the default stack (and records that name none)."""
    stack = record.get("stack")
    name = stack.get("name") if isinstance(stack, dict) else None
    return name if isinstance(name, str) and name and name != default_stack_name() else None


def record_column(record: dict[str, Any]) -> str:
    """The matrix column of a record: its backend and dtype (see column), with ``@stack``
    for a stack other than the default (``cpu@tf4``)."""
    dtype = record.get("dtype")
    name = column(record["hardware"], dtype if isinstance(dtype, str) else None)
    stack = stack_name(record)
    return f"{name}@{stack}" if stack else name


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


def stack_label(record: dict[str, Any]) -> str:
    """The record's stack in words; for a record older than the stack key, the
    transformers and torch versions of its environment."""
    stack, environment = record.get("stack"), record.get("environment")
    label = stack.get("label") if isinstance(stack, dict) else None
    if isinstance(label, str) and label:
        return label
    environment = environment if isinstance(environment, dict) else {}
    found = [(name, environment.get(name)) for name in ("transformers", "torch")]
    return " · ".join(f"{name} {version}" for name, version in found if version)


def record_label(record: dict[str, Any]) -> str:
    """The record's column in words: ``cpu · transformers 4.57.6 · torch 2.15.0``."""
    dtype = record.get("dtype")
    hardware = column(record["hardware"], dtype if isinstance(dtype, str) else None)
    return " · ".join(part for part in (hardware, stack_label(record)) if part)


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


def packages_here() -> dict[str, str]:
    """{name: version} of the packages this process imports."""
    # a package's vendored copies (setuptools puts its _vendor dir on sys.path when torch's
    # extension tools import it) are not part of the environment
    return installed_packages(tuple(e for e in sys.path if "_vendor" not in Path(e).parts))


def stack(packages: dict[str, str] | None = None) -> dict[str, Any]:
    """This process's stack: its name ($HFMATRIX_STACK; None outside nox), its key
    packages in words (``transformers 5.24.0 · torch 2.15.0``) and their versions."""
    packages = packages_here() if packages is None else packages
    found = {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in packages.items()}
    versions = {name: found[name] for name in STACK_PACKAGES if name in found}
    label = " · ".join(f"{name} {versions[name]}" for name in LABEL_PACKAGES if name in versions)
    return {"name": os.environ.get(STACK_ENV) or None, "label": label, "versions": versions}


def environment(device: dict[str, Any] | None = None) -> dict[str, Any]:
    """The software stack of this process (python, torch, transformers, platform, packages,
    its fingerprint) and the host it runs on."""
    packages = packages_here()
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
    here = stack()
    return {
        "schema": SCHEMA,
        "session": session_name(family, hardware, dtype, stack_name({"stack": here})),
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
        "stack": here,
        "fingerprint": None,
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
