"""One import per session: each model's process is forked from the session's, which imported
torch and transformers once, where that is safe; a fresh interpreter where it is not (a
device runtime, thread pools started after the imports), said in the record's environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from families_helpers import ROOT

from hfmatrix import forking

SESSION = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    sys.path.insert(0, {families!r})
    import torch
    import test_hf_bert as bert
    from hfmatrix.project import Project
    from hfmatrix.runner import RunSettings, run_model

    def run(name):
        settings = RunSettings(results_dir=Path({out!r}) / name, timeout_s=300)
        record = run_model(bert.TestBertModels, Project(Path({root!r})), "tiny", "cpu", settings)
        return record.record

    quiet = run("quiet")
    torch.set_num_threads(2)  # a parallel op: OpenMP's pool starts in this process
    x = torch.randn(600, 600)
    (x @ x).sum() + (torch.randn(1_000_000) * 2).sum()
    busy = run("busy")
    print(json.dumps([quiet, busy]))
    """
)


def test_a_model_is_forked_unless_a_thread_pool_was_started_after_the_imports(tmp_path):
    """The session's first model is forked; after a parallel torch op (whose OpenMP pool a
    forked child would wait on forever) the next starts a fresh interpreter, and passes."""
    code = SESSION.format(families=str(ROOT / "families"), out=str(tmp_path), root=str(ROOT))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    quiet, busy = json.loads(done.stdout.strip().splitlines()[-1])
    assert quiet["status"] == busy["status"] == "passed"
    assert quiet["environment"]["process"]["method"] == forking.FORK
    assert busy["environment"]["process"]["method"] == forking.FRESH
    assert "thread(s) that Python did not start" in busy["environment"]["process"]["reason"]


@pytest.mark.parametrize("hardware", ["cuda", "mps"])
def test_a_device_runtime_gets_a_fresh_interpreter(hardware):
    start = forking.start_for(hardware)
    assert start.method == forking.FRESH and start.reason.startswith(f"{hardware}: ")


def forked(tmp_path: Path, run) -> forking.ForkedChild:
    with (tmp_path / "child.log").open("w") as log:
        return forking.fork(run, log.fileno())


def test_a_forked_child_leads_its_group_and_reports_its_end(tmp_path):
    def child() -> None:
        print(f"group {os.getpgrp()} pid {os.getpid()}")
        sys.stdout.flush()
        os._exit(3)

    process = forked(tmp_path, child)
    assert process.wait(timeout=60) == 3
    assert (tmp_path / "child.log").read_text() == f"group {process.pid} pid {process.pid}\n"

    process = forked(tmp_path, lambda: os.kill(os.getpid(), signal.SIGSEGV))
    assert process.wait(timeout=60) == -signal.SIGSEGV

    process = forked(tmp_path, lambda: signal.pause())
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.2)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL


def test_an_exception_in_a_forked_child_ends_it_with_its_traceback(tmp_path):
    def child() -> None:
        raise RuntimeError("the child's own failure")

    process = forked(tmp_path, child)
    assert process.wait(timeout=60) == 1  # it never returned into this test
    assert "RuntimeError: the child's own failure" in (tmp_path / "child.log").read_text()


def test_a_forked_child_opens_its_own_hub_connection(tmp_path):
    """huggingface_hub's HTTP client is not carried across the fork."""
    from huggingface_hub.utils import get_session

    parents = get_session()
    answer = tmp_path / "answer"

    def child() -> None:
        answer.write_text(str(get_session() is not parents))
        os._exit(0)

    assert forked(tmp_path, child).wait(timeout=60) == 0
    assert answer.read_text() == "True"


LATER_IMPORT = textwrap.dedent(
    """
    from hfmatrix import forking
    forking.note_imports_done()  # the first family module: no native thread yet
    import torch
    torch.set_num_threads(2)
    x = torch.randn(600, 600)
    (x @ x).sum()  # OpenMP's pool starts
    forking.note_imports_done()  # another family module imported after that
    print(forking.start_for("cpu").method)
    """
)


def test_a_family_module_imported_after_a_parallel_op_does_not_hide_its_pool():
    """Only the first family module's imports set what counts as started before any model
    ran, even when no native thread was alive then."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", LATER_IMPORT], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == forking.FRESH


def test_a_logging_handler_on_a_closed_stream_does_not_break_a_forked_child(tmp_path):
    """A handler left on a stream a test runner captured and closed is re-pointed, not
    flushed, in the child."""
    import logging

    closed = (tmp_path / "captured").open("w")
    handler = logging.StreamHandler(closed)
    closed.close()
    logger = logging.getLogger("hfmatrix-test-closed-stream")
    logger.addHandler(handler)

    def child() -> None:
        logger.warning("the child logs")
        print("the child ran")
        sys.stdout.flush()
        os._exit(0)

    try:
        assert forked(tmp_path, child).wait(timeout=60) == 0
    finally:
        logger.removeHandler(handler)
    assert (tmp_path / "child.log").read_text() == "the child logs\nthe child ran\n"
