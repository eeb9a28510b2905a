"""One model's tests in a child process, watched: a hang, a crash or a runaway allocation
costs that model its record (``timeout`` or ``error``, with the child's last output), never
the run and never another model's result."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hfmatrix import forking, results

POLL_S = 0.2
HEARTBEAT_S = 60.0
STACK_DUMP_WAIT_S = 1.0  # between asking for the stacks and the kill
TAIL_LINES = 60
FATAL = "Fatal Python error: "  # faulthandler's first line on a crash
GIB = 1024**3


@dataclass(frozen=True)
class Limits:
    """What one model's child process may take."""

    timeout_s: float
    max_memory: int | None  # bytes of resident memory, the child and its children together


def default_max_memory() -> int:
    """90% of this machine's memory: a runaway model is stopped before the kernel's
    out-of-memory killer picks a process (possibly not the model's)."""
    import psutil

    return int(psutil.virtual_memory().total * 0.9)


def run_in_child(
    job: dict[str, Any],
    test_class: type,
    limits: Limits,
    blank: dict[str, Any],
    log_path: Path,
    notify: Callable[[str], None],
) -> dict[str, Any]:
    """Run ``job``'s tests in a child process (forked from this one where that is safe, else
    ``python -m hfmatrix.child``) and return the record it wrote, or ``blank`` completed
    with why it has none. The child's output is kept in ``log_path``."""
    start = time.perf_counter()
    how = forking.start_for(job["hardware"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    output = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed into place below
        dir=log_path.parent, prefix=f".{log_path.name}.", suffix=".tmp", delete=False
    )
    with tempfile.TemporaryDirectory(prefix="hfmatrix-child-") as tmp, output:
        saved_file = Path(tmp) / "record.json"
        child = start_child(how, job, test_class, saved_file, output)
        try:
            stopped = watch(child, limits, notify)
        finally:
            kill_group(child)
        saved = read_saved(saved_file)
    os.replace(output.name, log_path)
    if saved is not None and saved["final"]:
        record = saved["record"]  # finished: what happened after that does not change it
    else:
        record = saved["record"] if saved else blank  # the tests that finished are kept
        last_output = tail(log_path)
        status, reason = stopped or ("error", exit_reason(child.returncode, last_output))
        performance = record.get("performance")
        if isinstance(performance, dict) and performance.pop("pending", False):
            performance["error"] = f"{status}: {reason}"  # the tests' verdict stands
        else:
            record.update(status=status, reason=reason)
        record["crash"] = {
            "returncode": child.returncode,
            "signal": signal_name(child.returncode),
            "output_tail": output_tail(log_path, last_output),
        }
        record["environment"] = record.get("environment") or results.environment()
        record["duration_s"] = round(time.perf_counter() - start, 3)
    record["environment"]["process"] = how.as_dict()
    record["log"] = str(log_path)
    return record


def start_child(
    how: forking.Start, job: dict[str, Any], test_class: type, saved_file: Path, output: IO
) -> subprocess.Popen | forking.ForkedChild:
    """The child process for ``job``, in its own process group, writing to ``output``."""
    if how.method == forking.FORK:
        from hfmatrix.child import run_forked

        output.flush()
        return forking.fork(lambda: run_forked(job, saved_file, test_class), output.fileno())
    command = [sys.executable, "-m", "hfmatrix.child", json.dumps(job), str(saved_file)]
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: a kill takes all of it
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONSAFEPATH": "1"},
    )


def output_tail(log_path: Path, last_output: str) -> list[str]:
    """The output's last lines, after the line that names a fatal error (a segfault's) where
    the stacks that follow it pushed that line out of them (a forked child's stacks hold its
    session's frames too)."""
    lines = last_output.splitlines()[-TAIL_LINES:]
    with log_path.open(encoding="utf-8", errors="replace") as log:
        fatal = [line.rstrip("\n") for line in log if line.startswith(FATAL)]
    return fatal[-1:] + lines if fatal and fatal[-1] not in lines else lines


def tail(path: Path, size: int = 16384) -> str:
    """The last ``size`` bytes of a file, as text."""
    with path.open("rb") as handle:
        handle.seek(max(0, handle.seek(0, os.SEEK_END) - size))
        return handle.read().decode("utf-8", errors="replace")


def watch(
    child: subprocess.Popen | forking.ForkedChild, limits: Limits, notify: Callable[[str], None]
) -> tuple[str, str] | None:
    """Wait for ``child``; stop it at the time or memory limit and return (status, reason)."""
    start = time.monotonic()
    next_beat = start + HEARTBEAT_S
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=POLL_S)
            return None
        elapsed, rss = time.monotonic() - start, tree_rss(child.pid)
        if limits.max_memory and rss > limits.max_memory:
            kill_group(child)
            return "error", (
                f"killed at {rss / GIB:.2f} GiB of memory, over the --max-memory limit of "
                f"{limits.max_memory / GIB:.2f} GiB"
            )
        if elapsed > limits.timeout_s:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGUSR1)  # the child prints its stacks (faulthandler)
            time.sleep(STACK_DUMP_WAIT_S)
            kill_group(child)
            return "timeout", (
                f"no result within {limits.timeout_s:g} s (--timeout); killed, its stacks at "
                "that moment are in crash.output_tail"
            )
        if time.monotonic() >= next_beat:
            notify(f"    still running after {elapsed:.0f} s ({rss / GIB:.2f} GiB of memory)")
            next_beat += HEARTBEAT_S


def tree_rss(pid: int) -> int:
    """Resident memory of process ``pid`` and its descendants, in bytes."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def kill_group(child: subprocess.Popen | forking.ForkedChild) -> None:
    """SIGKILL the child's whole process group (its helpers too) and reap the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    if child.returncode is None:  # not reaped, so the pid is still the child's
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child.pid, signal.SIGKILL)  # a forked child before it led its group
    child.wait()


def read_saved(path: Path) -> dict[str, Any] | None:
    """What the child saved: {"final": bool, "record": {...}}, or None."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) and isinstance(saved.get("record"), dict) else None


def signal_name(returncode: int | None) -> str | None:
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def exit_reason(returncode: int | None, output: str = "") -> str:
    """Why a child that ended by itself left no finished record."""
    name = signal_name(returncode)
    if name == "SIGKILL":
        return "the test process was killed by SIGKILL (as the out-of-memory killer does)"
    if name:
        return f"the test process died of {name} (signal {-returncode})"
    if returncode:
        reason = f"the test process exited with status {returncode} before finishing"
        if "Traceback (most recent call last):" in output:  # an uncaught exception: name it
            reason += ": " + output.strip().splitlines()[-1][:300]
        return reason
    return "the test process exited without writing its record"
