"""Bad input: a broken checkpoint is that model's error or failed record with a one-line
reason; a mistake in the command line or the project's files is one line and exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from families_helpers import import_family
from faults import project_copy, truncated_checkpoint

from hfmatrix.cli import family_main

FAMILY = "bert"


def run_dir(family, directory: Path) -> dict:
    return family.TestBertModels(str(directory)).run_tests("cpu")


def copy_of(tiny: Path, dest: Path) -> Path:
    return Path(shutil.copytree(tiny, dest, ignore=shutil.ignore_patterns(".complete")))


def test_truncated_safetensors_is_an_error_record(family, tiny, isolated):
    record = run_dir(family, truncated_checkpoint(tiny, isolated / "truncated"))
    assert record["status"] == "error"
    for test in ("pipeline", "from_pretrained"):
        assert record["tests"][test]["error"].startswith("SafetensorError: ")
    assert "\n" not in record["reason"]


def test_corrupt_safetensors_header_is_an_error_record(family, tiny, isolated):
    checkpoint = copy_of(tiny, isolated / "corrupt")
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(b"\xff" * 64 + weights.read_bytes()[64:])
    record = run_dir(family, checkpoint)
    assert record["status"] == "error"
    assert "SafetensorError" in record["reason"]


def test_missing_tokenizer_files_fail_the_tokenizer_check(family, tiny, isolated):
    """transformers builds a 5-token tokenizer from nothing, without an error: the
    tokenizer_complete check catches it."""
    checkpoint = copy_of(tiny, isolated / "no-tokenizer")
    for path in checkpoint.iterdir():
        if "vocab" in path.name or "tokenizer" in path.name or "special" in path.name:
            path.unlink()
    record = run_dir(family, checkpoint)
    assert record["status"] == "failed"
    assert "from_pretrained.tokenizer_complete: 5 tokens for 146 embeddings" in record["reason"]


def test_missing_config_is_an_error_record(family, tiny, isolated):
    checkpoint = copy_of(tiny, isolated / "no-config")
    (checkpoint / "config.json").unlink()
    record = run_dir(family, checkpoint)
    assert (record["status"], record["reason"]) == ("error", f"no config.json in {checkpoint}")


def test_unknown_model_type_is_an_error_record(family, tiny, isolated):
    checkpoint = copy_of(tiny, isolated / "unknown")
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps(dict(config, model_type="no-such-type")))
    record = run_dir(family, checkpoint)
    assert record["status"] == "error"
    assert record["reason"] == "config.json: model_type 'no-such-type' is unknown to transformers"


def test_a_checkpoint_of_another_class_is_an_error_record(family, built_tiny, isolated):
    gpt_checkpoint = built_tiny(import_family("gpt"))
    record = run_dir(family, gpt_checkpoint)
    assert record["status"] == "error"
    assert record["reason"] == (
        "not a bert-family model: config.json is model_type 'gpt2' (GPT2LMHeadModel), which "
        "AutoModelForMaskedLM does not load; the family tests BertForMaskedLM"
    )
    assert record["tests"] == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--timeout", "-1"], "argument --timeout: '-1' must be a positive number"),
        (["--timeout", "soon"], "argument --timeout: 'soon' is not a number"),
        (["--max-memory", "0"], "argument --max-memory: '0' must be a positive number"),
        (["--revision", "a b"], "argument --revision: 'a b' is not a branch, tag or commit"),
        (["--hardware", "tpu"], "unknown hardware 'tpu' (known: cpu, cuda, mps, openvino)"),
        (["--model", "gpt2"], "gpt2 is a gpt-family model (GPT2LMHeadModel), not bert"),
        (["--model", "a//b"], "--model 'a//b': neither a directory nor a valid Hub model id"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_command_line_mistakes_are_one_line_and_exit_2(family, isolated, capsys, argv, message):
    try:
        code = family_main(family.TestBertModels, argv)
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize("runner", ["script", "pytest"])
def test_malformed_overrides_stop_a_run_in_one_line(isolated, runner):
    project = project_copy(isolated / "project")
    (project / "overrides.json").write_text('{\n  "gpt2": {\n    "notes": 1\n  }\n}\n')
    family_module = project / "families" / "test_hf_bert.py"
    command = [sys.executable, str(family_module)]
    if runner == "pytest":
        command = [sys.executable, "-m", "pytest", str(family_module), "-p", "no:cacheprovider"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=project)
    assert done.returncode == 2
    lines = (done.stderr + done.stdout).strip().splitlines()
    assert len(lines) == 1
    assert f"{project / 'overrides.json'}:3: overrides['gpt2'].notes must be str" in lines[0]
    assert not (isolated / "results").exists()
