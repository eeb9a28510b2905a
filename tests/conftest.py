"""Shared fixtures: an isolated results dir and HF cache, the family module under test, its
frozen tiny checkpoint (or a private copy to break), and records of runs that change nothing."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# huggingface_hub reads HF_HOME once, when first imported: import it now, under an HF cache
# of this test run's own, so that no test's temporary HF_HOME becomes the default cache of
# every later test in its process (tests that need a cache patch constants.HF_HUB_CACHE)
if "huggingface_hub.constants" not in sys.modules:
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="hfmatrix-tests-hf-")
import huggingface_hub.constants  # noqa: F401

pytest.register_assert_rewrite("families_helpers")

from families_helpers import import_family, plant_hf_snapshot, run, tiny_dir  # noqa: E402

from hfmatrix import checkpoints, sources  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def isolate(patch: pytest.MonkeyPatch, root: Path) -> None:
    """Results and the HF cache under ``root``; the Hub offline."""
    patch.setenv("HFMATRIX_RESULTS_DIR", str(root / "results"))
    patch.setenv("HF_HOME", str(root / "hf"))
    patch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """Results and the HF cache under tmp_path; the Hub offline."""
    isolate(monkeypatch, tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def session_env(tmp_path_factory) -> Callable[[], contextlib.AbstractContextManager[Path]]:
    """A context manager: `isolated`'s environment under one directory for the session."""
    root = tmp_path_factory.mktemp("session")

    @contextlib.contextmanager
    def environment() -> Iterator[Path]:
        with pytest.MonkeyPatch.context() as patch:
            isolate(patch, root)
            yield root

    return environment


@pytest.fixture(scope="session")
def once(tmp_path_factory) -> Callable[[str, Callable[[Path], Any]], Any]:
    """(name, compute) -> compute(its own directory), run once for the whole test run by
    whichever pytest-xdist worker asks first; the others wait for it and get its (pickled)
    result. For the end-to-end runs that several tests read."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base

    def get(name: str, compute: Callable[[Path], Any]) -> Any:
        saved = shared / f"{name}.pickle"
        with (shared / f"{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not saved.exists():
                directory = shared / name
                directory.mkdir(exist_ok=True)
                saved.write_bytes(pickle.dumps(compute(directory)))
            return pickle.loads(saved.read_bytes())

    return get


@pytest.fixture(scope="session")
def built_tiny(session_env) -> Callable[[ModuleType], Path]:
    """family module -> its frozen tiny checkpoint in the repository: never change it."""

    def build(family: ModuleType) -> Path:
        with session_env():
            return tiny_dir(family)

    return build


@pytest.fixture(scope="session")
def tiny_record(session_env) -> Callable[[ModuleType], dict]:
    """family module -> the record of its unchanged tiny checkpoint, run once for the session."""

    @functools.cache
    def record(family: ModuleType) -> dict:
        with session_env():
            return run(family)

    return record


@pytest.fixture(scope="session")
def hub_record(session_env) -> Callable[[ModuleType, str], dict]:
    """(family module, hub id) -> the record of that hub id served offline by a snapshot in
    the HF cache that holds the family's tiny files; run once for the session."""

    records: dict[tuple[str, str], dict] = {}

    def record(family: ModuleType, model_id: str) -> dict:
        # keyed by name: a family module imported again is another object, same snapshot
        key = (family.__name__, model_id)
        if key not in records:
            from huggingface_hub import constants

            with session_env() as root, pytest.MonkeyPatch.context() as patch:
                patch.setattr(constants, "HF_HUB_CACHE", str(root / "hf" / "hub"))
                plant_hf_snapshot(root / "hf" / "hub", model_id, tiny_dir(family))
                records[key] = run(family, model_id)
        return records[key]

    return record


@pytest.fixture
def family(request) -> ModuleType:
    """The family module under test: the test's parameter, else its test module's FAMILY."""
    return import_family(getattr(request, "param", None) or request.module.FAMILY)


@pytest.fixture
def tiny(family, built_tiny) -> Path:
    """The family's shared tiny checkpoint, to read only."""
    return built_tiny(family)


@pytest.fixture
def tiny_copy(family, built_tiny, isolated, monkeypatch) -> Path:
    """A private copy of the family's tiny checkpoint, free to edit: runs of "tiny" load it
    (the tiny/ directory is this test's for its duration)."""
    built = built_tiny(family)
    monkeypatch.setattr(checkpoints, "tiny_root", lambda _root: isolated / "tiny")
    return Path(shutil.copytree(built, isolated / "tiny" / built.name))


@pytest.fixture
def hub(isolated, monkeypatch) -> Iterator[Callable[[Callable], str]]:
    """Start a local Hub on 127.0.0.1 whose handler(request) answers (status, headers, body);
    $HF_ENDPOINT points at it and the Hub is not offline."""
    from huggingface_hub import constants

    servers = []

    def start(answer: Callable) -> str:
        class Handler(BaseHTTPRequestHandler):
            def reply(self) -> None:
                status, headers, body = answer(self)
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = reply

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        endpoint = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read when first imported
        return endpoint

    sources._probe.cache_clear()
    yield start
    sources._probe.cache_clear()
    for server in servers:
        server.shutdown()


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """Run headless chromium with some arguments; its stdout."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium to run the dashboard in a browser")
    profile = tmp_path_factory.mktemp("chromium-profile")

    def run(*args: str) -> str:
        command = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
        assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
        return done.stdout

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end modules first (each module's tests kept together), so that the
    longest tests start early and the workers finish together."""
    slow = {item.module for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: item.module not in slow)
