"""Shared fixtures: the repository root, an isolated tiny-checkpoint cache and results dir."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """Tiny checkpoints, results and the HF cache under tmp_path; the Hub offline."""
    monkeypatch.setenv("HFMATRIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HFMATRIX_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.fixture
def bert_family():
    """The bert family module, imported as pytest imports it."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "families"))
    try:
        import test_hf_bert
    finally:
        sys.path.remove(str(ROOT / "families"))
    return test_hf_bert
