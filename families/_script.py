"""The script form of a family module (``python families/test_hf_<family>.py ...``) from any
Python: where the family's packages are missing, the same arguments run in its environment.
Imports nothing beyond the standard library and the torch-free part of hfmatrix (src/)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def run_in_family_environment(script: str) -> None:
    """Return where this Python can run ``script`` in place; else it becomes the family's
    nox session (or exits 2 saying what is missing)."""
    if importlib.util.find_spec("hfmatrix") is None:  # a fresh clone: the harness from src/
        sys.path.insert(0, str(SRC))
    from hfmatrix.errors import SETUP  # the standard library only

    try:
        from hfmatrix.script import run_where_installed
    except ModuleNotFoundError as exc:  # not even nox's dependencies: a bare Python
        print(f"error: this Python lacks {exc.name}, which the harness needs to read the "
              f"project: run the README's set-up step ({SETUP})", file=sys.stderr)  # fmt: skip
        raise SystemExit(2) from None
    run_where_installed(Path(script).resolve(), sys.argv[1:])
