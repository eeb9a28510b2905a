"""The user-facing error: one line, exit status 2."""

from __future__ import annotations

from pathlib import Path

SETUP = 'python3 -m pip install "nox[uv]"'  # the README's set-up step, for what a Python lacks


class UserError(Exception):
    """A mistake in the user's input (a file, a flag, a name): reported in one line, exit 2."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        where = ""
        if self.path:
            where = f"{self.path}:{line}: " if line else f"{self.path}: "
        super().__init__(f"{where}{message}")
