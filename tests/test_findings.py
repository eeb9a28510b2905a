"""Declared findings (env_specs/classes/findings.toml): a tested class's known failure on a
backend keeps its record's status and reason, is marked as declared and does not fail its
session; a failure with another reason does; a declaration that did not occur is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from families_helpers import ROOT, edit_weights, records_by_model
from faults import project_copy

from hfmatrix import findings
from hfmatrix.errors import UserError
from hfmatrix.project import FINDINGS_FILE, Project
from hfmatrix.specs import Finding

DECLARED = Finding("BertForMaskedLM", "cpu", "torch>=1", "weights_sha256", "a test's finding", 3)
BROKEN = {"model_class": "BertForMaskedLM", "hardware": "cpu", "status": "failed",
          "reason": "from_pretrained.weights_sha256: 'ab' != 'cd'"}  # fmt: skip


def test_the_project_s_findings_name_tested_classes_and_their_lines():
    project = Project(ROOT)
    declared = project.findings
    assert declared, "the openvino findings of the vit, llama and t5 families are declared"
    lines = (ROOT / FINDINGS_FILE).read_text().splitlines()
    for finding in declared:
        header = f"[findings.{finding.model_class}.{finding.hardware}]"
        assert lines[finding.line - 1] == header
        assert finding.hardware in project.hardware_names()
        assert finding.reason and finding.match


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[findings.BertForMaskedLM.cpu]\nstack = "torch>=1"\nmatch = "x"\nreason = "y"\n'
         'why = "z"\n', ":5: unknown key 'why' in findings.BertForMaskedLM.cpu"),
        ('[findings.BertForMaskedLM.cpu]\nstack = "torch>=1"\nmatch = "x"\n',
         ":1: missing key 'reason' in findings.BertForMaskedLM.cpu"),
        ('[findings.BertModel.cpu]\nstack = "torch>=1"\nmatch = "x"\nreason = "y"\n',
         ":1: findings.BertModel.cpu: no family tests BertModel"),
        ('\n[findings.BertForMaskedLM.tpu]\nstack = "torch>=1"\nmatch = "x"\nreason = "y"\n',
         ":2: findings.BertForMaskedLM.tpu: unknown hardware 'tpu'"),
        ('[findings.BertForMaskedLM.cpu]\nstack = "torch>"\nmatch = "x"\nreason = "y"\n',
         ":2: invalid requirement 'torch>' in findings.BertForMaskedLM.cpu.stack"),
        ('[findings.BertForMaskedLM.cpu]\nstack = "torch>=1"\nmatch = " "\nreason = "y"\n',
         ":3: findings.BertForMaskedLM.cpu: match and reason must not be blank"),
        ('[findings.BertForMaskedLM.cpu]\nstack = "torch>=1; python_version<\'3\'"\nmatch = "x"\n'
         'reason = "y"\n', ":2: findings.BertForMaskedLM.cpu.stack must be a package name and "
         "versions"),
    ],
)  # fmt: skip
def test_a_mistake_in_the_findings_file_names_its_line(tmp_path, body, message):
    copy = project_copy(tmp_path / "project")
    (copy / FINDINGS_FILE).write_text(body)
    with pytest.raises(UserError) as error:
        Project(copy).findings  # noqa: B018
    assert f"{copy / FINDINGS_FILE}{message}" in str(error.value)
    assert error.value.exit_code == 2


def test_a_findings_file_with_no_declarations_declares_none(tmp_path):
    """Its comments left after the last declaration went: no finding, no error."""
    copy = project_copy(tmp_path / "project")
    comments = (ROOT / FINDINGS_FILE).read_text().split("\n[")[0]
    (copy / FINDINGS_FILE).write_text(comments)
    assert Project(copy).findings == []


def test_a_declaration_s_line_is_its_own_table_s_header(tmp_path):
    """One class's tables may be apart: each declaration names its own header's line."""
    copy = project_copy(tmp_path / "project")
    entry = '[findings.{}.{}]\nstack = "torch>=1"\nmatch = "x"\nreason = "y"\n\n'
    (copy / FINDINGS_FILE).write_text(entry.format("BertForMaskedLM", "cpu")
                                      + entry.format("GPT2LMHeadModel", "openvino")
                                      + entry.format("BertForMaskedLM", "openvino"))  # fmt: skip
    lines = {(f.model_class, f.hardware): f.line for f in Project(copy).findings}
    assert lines == {("BertForMaskedLM", "cpu"): 1, ("GPT2LMHeadModel", "openvino"): 6,
                     ("BertForMaskedLM", "openvino"): 11}  # fmt: skip
    text = (copy / FINDINGS_FILE).read_text()
    (copy / FINDINGS_FILE).write_text(text[: text.rindex('reason = "y"')] + 'why = "y"\n')
    with pytest.raises(UserError, match=r"findings.toml:14: unknown key 'why'"):
        Project(copy).findings  # noqa: B018 -- the third table's own key, not the first's


def marked(record: dict, *declared: Finding) -> dict:
    record = dict(record)
    findings.mark(record, list(declared), FINDINGS_FILE)
    return record


def test_a_failure_with_the_declared_text_is_the_finding():
    record = marked(BROKEN, DECLARED)
    assert record["status"] == "failed" and record["reason"] == BROKEN["reason"]
    declared_in = f"{FINDINGS_FILE}:3"
    assert record["finding"] == {"observed": True, "reason": "a test's finding",
                                 "stack": "torch>=1", "declared_in": declared_in}  # fmt: skip
    assert findings.observed(record) and not findings.failing(record)
    assert findings.words(record) == f"declared finding ({FINDINGS_FILE}:3): a test's finding"


@pytest.mark.parametrize(
    "change",
    [
        {"reason": "from_pretrained.logits_slice: max |diff| 0.5 > atol"},  # another failure
        {"hardware": "openvino"},  # another backend
        {"model_class": "RobertaForMaskedLM"},  # another class
    ],
)
def test_a_failure_the_declaration_does_not_describe_still_fails(change):
    record = marked({**BROKEN, **change}, DECLARED)
    assert "finding" not in record and findings.failing(record)


def test_a_declaration_for_another_stack_does_not_apply():
    record = marked(BROKEN, Finding(**{**vars(DECLARED), "stack": "torch<1"}))
    assert "finding" not in record and findings.failing(record)


def test_a_declared_finding_that_did_not_occur_is_named():
    record = marked({**BROKEN, "status": "passed", "reason": ""}, DECLARED)
    assert record["finding"]["observed"] is False and not findings.failing(record)
    assert "finding" not in marked(record)  # its declaration gone: a resumed record says so
    assert "did not occur" in findings.words(record) and f"{FINDINGS_FILE}:3" in findings.words(
        record
    )
    assert "finding" not in marked({**BROKEN, "status": "skipped"}, DECLARED)


def test_a_session_with_only_declared_findings_succeeds(isolated):
    """tiny-bert with a changed weight fails weights_sha256: declared, pytest reports it
    xfailed and exits 0, the record keeps its status; declared for other text, the script
    run fails (exit 1)."""
    pytest.importorskip("torch")
    project = project_copy(isolated / "project")

    def bump(tensors: dict) -> None:
        tensors[sorted(tensors)[0]].view(-1)[0] += 1.0

    edit_weights(project / "tiny" / "bert", bump)
    declared = project / FINDINGS_FILE
    entry = '[findings.BertForMaskedLM.cpu]\nstack = "torch>=1"\nmatch = "{}"\nreason = "r"\n'
    declared.write_text(entry.format("from_pretrained.weights_sha256"))
    module = project / "families" / "test_hf_bert.py"
    command = [sys.executable, "-m", "pytest", str(module), "-p", "no:cacheprovider", "-rx",
               "--model", "tiny-bert"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 xfailed" in done.stdout and f"declared finding ({FINDINGS_FILE}:1): r" in done.stdout
    record = records_by_model(isolated / "results")["tiny-bert"]
    assert record["status"] == "failed" and "weights_sha256" in record["reason"]
    assert record["finding"]["observed"] is True

    declared.write_text(entry.format("a failure that did not happen"))
    command = [sys.executable, str(module), "--model", "tiny-bert", "--results-dir",
               str(Path(isolated / "second"))]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=project)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "declared finding" not in done.stdout
    assert "finding" not in records_by_model(isolated / "second")["tiny-bert"]


def test_a_session_names_a_declared_finding_that_did_not_occur(isolated):
    """tiny-bert passes on cpu where a finding is declared for it: the session passes and
    says the declaration can go; the record says it was not observed."""
    pytest.importorskip("torch")
    project = project_copy(isolated / "project")
    entry = '[findings.BertForMaskedLM.cpu]\nstack = "torch>=1"\nmatch = "x"\nreason = "r"\n'
    (project / FINDINGS_FILE).write_text(entry)
    module = project / "families" / "test_hf_bert.py"
    command = [sys.executable, "-m", "pytest", str(module), "-p", "no:cacheprovider",
               "--model", "tiny-bert"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert (f"StaleFinding: tiny-bert on cpu: a finding is declared in {FINDINGS_FILE}:1 "
            "but did not occur for this model" in done.stdout)  # fmt: skip
    record = records_by_model(isolated / "results")["tiny-bert"]
    assert record["status"] == "passed" and record["finding"]["observed"] is False
