"""A model's process forked from the session's, which imported torch and transformers once,
where that is safe; a fresh interpreter where it is not. Either way the model runs in its
own process and process group, watched by ``hfmatrix.isolation``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

FORK = "fork"
FRESH = "fresh interpreter"
WAIT_POLL_S = 0.02
CHILD_NAME = "hfmatrix-child"  # what ps and top show for a forked child
# devices whose runtime the parent may have touched (a device count initialises the CUDA
# driver), and that a forked child cannot initialise again
OWN_RUNTIME = {"cuda": "CUDA", "mps": "Metal"}


@dataclass(frozen=True)
class Start:
    """How a model's process starts, and why: it goes into the record's environment."""

    method: str  # FORK or FRESH
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def start_for(hardware: str) -> Start:
    """Fork where this process can pass its imports on safely, else a fresh interpreter."""
    if not hasattr(os, "fork") or sys.platform != "linux":
        return Start(FRESH, f"{sys.platform}: forking a process that imported torch is unsafe")
    if hardware in OWN_RUNTIME:
        return Start(FRESH, f"{hardware}: each model's process initialises {OWN_RUNTIME[hardware]}")
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
        return Start(FRESH, "CUDA is initialised in this process; a forked child cannot use it")
    if pools := native_threads() - _baseline:  # a child's first parallel op would wait forever
        return Start(
            FRESH,
            f"{len(pools)} thread(s) that Python did not start were started in this process "
            "after its imports (a thread pool such as OpenMP's, after a parallel torch op); "
            "a forked child could hang in it",
        )
    return Start(FORK, "forked from the session's process: torch and transformers imported once")


_baseline: set[int] = set()
_noted: list[bool] = []  # whether the baseline was taken (an empty one included)


def note_imports_done() -> None:
    """Called once a family module has imported its stack, before any model runs: the native
    threads alive now (OpenBLAS's, which shuts them down around a fork) are not pools that
    later torch ops started. Only the first call counts: a family module imported later
    (another family, or one file loaded again) comes after models may have run."""
    if not _noted:
        _noted.append(True)
        _baseline.update(native_threads())


def native_threads() -> set[int]:
    """Threads of this process that Python did not start (OpenMP's, OpenBLAS's, tokenizers'
    pools): a fork copies only the forking thread, though the pools' state says they exist.
    Python's own threads it handles, resetting their locks in the child."""
    import threading

    try:
        tasks = {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:
        return set()
    return tasks - {thread.native_id for thread in threading.enumerate()}


class ForkedChild:
    """A forked child, with the part of ``subprocess.Popen`` the watcher uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"forked child {self.pid}", timeout)
            time.sleep(WAIT_POLL_S)
        return code

    def send_signal(self, number: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, number)


def fork(run: Callable[[], None], output_fd: int) -> ForkedChild:
    """Fork a child that leads its own process group, writes its output to ``output_fd``
    and runs ``run``; it never returns into the caller's code."""
    pid = os.fork()
    if pid:
        return ForkedChild(pid)
    try:  # the child
        os.setsid()  # its own process group: a kill takes all of it
        name_process(CHILD_NAME)
        redirect_output(output_fd)
        run()
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)  # run() exits 0 itself once its record is saved
    raise AssertionError("unreachable")


def name_process(name: str) -> None:
    """Set this process's name as ps shows it (its command line stays the parent's)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(name[:15], encoding="ascii")


def redirect_output(output_fd: int) -> None:
    """stdin from /dev/null; stdout, stderr and the logging handlers that wrote to the
    parent's streams (a test runner may have captured them) into ``output_fd``."""
    import faulthandler
    import logging

    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, errors="replace", closefd=False)  # noqa: SIM115
    if faulthandler.is_enabled():  # it wrote to the parent's stderr (a copy of its fd)
        faulthandler.enable(file=sys.stderr)
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler:  # transformers' own, for one
                with handler.lock or contextlib.nullcontext():  # not setStream: it flushes
                    handler.stream = sys.stderr  # the old stream, which may be closed
