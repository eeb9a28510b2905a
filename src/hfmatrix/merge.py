"""Result trees merged into one: every record keyed by (family, model, column, environment),
the column naming its stack when that is not the default (``cpu@tf4``); the newest run of a
key is current (raw/), older runs are history (history/)."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfmatrix.errors import UserError
from hfmatrix.files import atomic_write_text
from hfmatrix.results import SCHEMA, STATUSES, record_column, record_path, slug

REQUIRED_KEYS = ("schema", "family", "model_id", "hardware", "status")
Key = tuple[str, str, str, str]


@dataclass
class Run:
    """One record file as read: the record and the tree it came from."""

    record: dict[str, Any]
    tree: Path

    @property
    def key(self) -> Key:
        return key(self.record)

    @property
    def identity(self) -> tuple[Key, str, str]:
        """The same run read from two trees has one identity: key, host and start time."""
        return self.key, host(self.record), str(self.record.get("started_at") or "")


@dataclass
class Merged:
    """Current runs (newest per key, sorted by key), older runs and unreadable files."""

    current: list[Run] = field(default_factory=list)
    history: list[Run] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [run.record for run in self.current]


def key(record: dict[str, Any]) -> Key:
    """(family, model, matrix column with its stack, environment fingerprint): records of
    two stacks never share a cell or a history chain."""
    return record["family"], record["model_id"], record_column(record), fingerprint(record)


def fingerprint(record: dict[str, Any]) -> str:
    environment = record.get("environment")
    value = environment.get("fingerprint") if isinstance(environment, dict) else None
    return value if isinstance(value, str) else ""


def host(record: dict[str, Any]) -> str:
    environment = record.get("environment")
    value = environment.get("host") if isinstance(environment, dict) else None
    return value if isinstance(value, str) else ""


def load(path: Path) -> dict[str, Any]:
    """One record file; a ValueError says why it cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} (line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"not a record: a JSON {type(data).__name__}, not an object")
    missing = [name for name in REQUIRED_KEYS if name not in data]
    if missing:
        raise ValueError(f"not a record: missing key(s) {', '.join(missing)}")
    for name in ("family", "model_id", "hardware"):
        if not isinstance(data[name], str) or not data[name]:
            raise ValueError(f"not a record: {name} must be a non-empty string")
    if data["schema"] != SCHEMA:
        raise ValueError(f"not a record: schema {data['schema']!r} (expected {SCHEMA!r})")
    if data["status"] not in STATUSES:
        raise ValueError(f"not a record: unknown status {data['status']!r}")
    return data


def record_files(tree: Path) -> list[Path]:
    """The record files of one result tree: raw/<session>/*.json and history/<session>/*.json
    (hidden files, such as unfinished atomic writes, left out)."""
    return sorted(
        path
        for part in ("raw", "history")
        for path in tree.glob(f"{part}/*/*.json")
        if not path.name.startswith(".") and not path.parent.name.startswith(".")
    )


def result_trees(path: Path) -> list[Path]:
    """``path`` if it is a result tree (has raw/ or history/), else the trees one level
    below it (a folder of downloaded artifacts); none is a UserError."""
    if not path.is_dir():
        raise UserError("no such result tree (not a directory)", path)
    if (path / "raw").is_dir() or (path / "history").is_dir():
        return [path]
    trees = sorted(p for p in path.iterdir() if (p / "raw").is_dir() or (p / "history").is_dir())
    if not trees:
        raise UserError("not a result tree: no raw/ in it or in its subdirectories", path)
    return trees


def merge(trees: list[Path]) -> Merged:
    """Read every tree; the newest run of each key is current, the others history. A file
    that is not a record is named on stderr and listed, and the rest still merge."""
    runs: dict[tuple[Key, str, str], Run] = {}
    merged = Merged()
    for tree in trees:
        for path in record_files(tree):
            try:
                run = Run(load(path), tree)
            except ValueError as exc:
                print(f"hfmatrix report: skipping {path}: {exc}", file=sys.stderr)
                merged.unreadable.append({"path": str(path), "error": str(exc)})
                continue
            runs.setdefault(run.identity, run)
    by_key: dict[Key, list[Run]] = {}
    for run in runs.values():
        by_key.setdefault(run.key, []).append(run)
    for found in sorted(by_key):
        newest_first = sorted(
            by_key[found], key=lambda r: (r.identity[2], r.identity[1]), reverse=True
        )
        merged.current.append(newest_first[0])
        merged.history.extend(newest_first[1:])
    return merged


def write_tree(results_dir: Path, merged: Merged) -> None:
    """Make ``results_dir`` hold the merged tree: current records (with their logs) in raw/,
    the others in history/. Its own record files that the merge rewrote elsewhere go;
    unreadable ones stay, listed."""
    keep = set()
    for run in merged.history:  # first: a current run may take over a history run's log name
        record = run.record
        stamp = "".join(c for c in str(record.get("started_at") or "") if c.isalnum())
        name = f"{record_path(results_dir, record).stem}~{slug(host(record) or 'host')}~{stamp}"
        path = results_dir / "history" / record["session"] / f"{name}.json"
        _copy(run, path, results_dir)
        keep.add(path)
    for run in merged.current:
        path = record_path(results_dir, run.record)
        _copy(run, path, results_dir)
        keep.add(path)
    unreadable = {Path(item["path"]) for item in merged.unreadable}
    for path in record_files(results_dir):
        if path not in keep and path not in unreadable:
            path.unlink()


def _copy(run: Run, path: Path, results_dir: Path) -> None:
    """Write a run's record at ``path`` (unless it is that file already), with its log
    copied beside the tree's other logs."""
    record = dict(run.record)
    log = _log(run)
    if log is not None:
        target = results_dir / "logs" / record["session"] / f"{path.stem}.log"
        if log.resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, target)
        record["log"] = str(target)
    if path.is_file() and _same(path, record):
        return
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")


def _log(run: Run) -> Path | None:
    """The run's log in the tree it was read from (where the record's own path pointed
    on the machine that wrote it)."""
    named = run.record.get("log")
    if not isinstance(named, str) or not named:
        return None
    candidate = run.tree / "logs" / str(run.record.get("session")) / Path(named).name
    for path in (candidate, Path(named)):
        if path.is_file():
            return path
    return None


def _same(path: Path, record: dict[str, Any]) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")) == json.loads(
            json.dumps(record, default=str)
        )
    except (OSError, ValueError):
        return False
