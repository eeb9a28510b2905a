"""Reading the project's JSON and TOML files with errors that name the file and line."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from hfmatrix.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``path`` atomically: a temp file in the same directory, fsync, then rename.

    Readers see the old file or the new one, never a part; a killed writer leaves at most a
    hidden ``.name.*.tmp`` file, which readers ignore.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path: Path) -> tuple[Any, str]:
    """Parse a JSON file; return (data, text). A missing or malformed file is a UserError."""
    text = _read_text(path)
    try:
        return json.loads(text), text
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON: {exc.msg} (column {exc.colno})", path, exc.lineno) from None


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """Parse a TOML file; return (data, text). A missing or malformed file is a UserError."""
    text = _read_text(path)
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise UserError(
            f"invalid TOML: {message}", path, int(match.group(1)) if match else None
        ) from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("file not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read: {exc}", path) from None


def line_of_key(text: str, key: str, start: int = 0) -> int | None:
    """The line of ``key`` as a JSON key (``"key":``), TOML key (``key =``) or part of a TOML
    table header (``[classes.key]``), from ``start``."""
    escaped = re.escape(key)
    header = rf'^[ \t]*\[\[?(?:[^\]\n]*\.)?"?{escaped}"?(?:\.[^\]\n]*)?\]'
    pattern = re.compile(rf'(?m)"{escaped}"\s*:|^[ \t]*"?{escaped}"?[ \t]*=|{header}')
    match = pattern.search(text, start)
    return None if match is None else text.count("\n", 0, match.start()) + 1


class Checker:
    """Validates values read from one file; every complaint names the file and the key's line.

    ``entry`` narrows the search for keys to the text after that entry's own key, so an
    error in a later entry names its line, not the first entry with the same key.
    """

    def __init__(self, path: Path, text: str, start: int = 0):
        self.path = path
        self.text = text
        self.start = start

    def entry(self, key: str) -> Checker:
        return self.at_line(line_of_key(self.text, key, self.start))

    def at_line(self, line: int | None) -> Checker:
        """A Checker whose keys are searched from ``line`` (None: this one)."""
        if line is None:
            return self
        offset = sum(len(row) + 1 for row in self.text.split("\n")[: line - 1])
        return Checker(self.path, self.text, offset)

    def fail(self, message: str, key: str | None = None) -> UserError:
        line = line_of_key(self.text, key, self.start) if key is not None else None
        return UserError(message, self.path, line or self.line())

    def line(self) -> int | None:
        return self.text.count("\n", 0, self.start) + 1 if self.start else None

    def requirement_line(self, value: str) -> int | None:
        """The line where a requirement string sits (quoted, after this entry's start)."""
        for needle in (f'"{value}"', f"'{value}'"):
            index = self.text.find(needle, self.start)
            if index >= 0:
                return self.text.count("\n", 0, index) + 1
        return self.line()

    def table(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be a table/object, not {type(value).__name__}", where)
        return value

    def keys(
        self, table: dict[str, Any], where: str, required: set[str], allowed: set[str]
    ) -> None:
        for key in table:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.fail(f"unknown key {key!r} in {where} (known: {known})", key)
        for key in sorted(required - table.keys()):
            raise self.fail(f"missing key {key!r} in {where}", where)

    def typed(
        self, table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str
    ) -> Any:
        value = table[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(f"{where}.{key} must be {names}, not {type(value).__name__}", key)
        return value

    def optional(
        self, table: dict[str, Any], key: str, kind: type, where: str, default: Any
    ) -> Any:
        return self.typed(table, key, kind, where) if key in table else default

    def string_list(
        self, table: dict[str, Any], key: str, where: str, default: list[str] | None = None
    ) -> list[str]:
        if default is not None and key not in table:
            return default
        values = self.typed(table, key, list, where)
        for value in values:
            if not isinstance(value, str):
                raise self.fail(f"{where}.{key} must hold strings, not {value!r}", key)
        return values
