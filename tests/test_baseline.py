"""hfmatrix report --baseline: a run compared with earlier ones. Real runs of the bert family's
tiny checkpoint (a weight changed in a copy of its files, an op shifted, a forward slowed)
make the runs compared; `hfmatrix report` compares them as the report session does."""

from __future__ import annotations

import copy
import itertools
import json
import re
import shutil
import time
from pathlib import Path

import pytest
from families_helpers import FIRST, perturb_weight, run
from test_dashboard import Dom

from hfmatrix import baseline, results
from hfmatrix.commands import main
from hfmatrix.perf import PerfSettings

FAMILY = "bert"
MODEL = "tiny-bert"
PERF = PerfSettings(warmup=3, iterations=40, duration_s=0.2)  # ~1 ms calls: 0.2 s of them


def tree(root: Path, *records: dict) -> Path:
    """A result tree holding ``records``."""
    for record in records:
        results.write_record(root, record)
    return root


def report(current: Path, *baselines: Path, fail_on: str = "", ratio: str = "") -> tuple[int, dict]:
    """`hfmatrix report` of ``current`` compared with ``baselines``: exit status, summary."""
    args = ["report", "--results-dir", str(current)]
    args += [f"--baseline={path}" for path in baselines]
    args += [f"--fail-on={fail_on}"] if fail_on else []
    args += [f"--slower-ratio={ratio}"] if ratio else []
    status = main(args)
    return status, json.loads((current / "summary.json").read_text())


def row(summary: dict, model_id: str = MODEL, column: str = "cpu") -> dict:
    [found] = [r for r in summary["comparison"]["rows"]
               if (r["model_id"], r["column"]) == (model_id, column)]  # fmt: skip
    return found


def later(record: dict, seconds: int = 60) -> dict:
    """A copy of ``record`` as if it had run ``seconds`` later."""
    other = copy.deepcopy(record)
    other["started_at"] = time.strftime(
        "%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + seconds)
    )
    return other


# ---------------------------------------------------------------- transitions


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("passed", "failed", "new failure"), ("passed", "error", "new failure"),
        ("skipped", "timeout", "new failure"), ("error", "passed", "fixed"),
        ("failed", "error", "still failing"), ("passed", "skipped", "newly skipped"),
        ("skipped", "skipped", "still skipped"), ("passed", "passed", "passing"),
        ("skipped", "passed", "passing"), (None, "passed", "new model"), ("passed", None, "gone"),
        (None, "skipped", "new model"), (None, "error", "new failure"),
    ],
)  # fmt: skip
def test_each_pair_of_statuses_is_one_transition(before, after, expected):
    entry = {None: None} | {s: {"status": s} for s in results.STATUSES}
    assert baseline.transition(entry[before], entry[after]) == expected


def test_a_changed_weight_is_a_new_failure_that_fails_on_request_and_passing_again_is_fixed(
    family, tiny_copy, isolated, capsys
):
    weights = tiny_copy / "model.safetensors"
    kept = weights.read_bytes()
    first = tree(isolated / "first", run(family, MODEL))
    perturb_weight(tiny_copy, "bert.embeddings.word_embeddings.weight", FIRST, delta=1.0)
    second = tree(isolated / "second", run(family, MODEL))
    status, summary = report(second, first, fail_on="new-failures")
    found = row(summary)
    assert (status, found["transition"], found["checkpoint_changed"]) == (
        1, "new failure", True)  # fmt: skip
    assert found["drift"] == {"status": "not compared", "why": "the checkpoint changed"}
    assert "--fail-on new-failures: 1 (bert/tiny-bert on cpu)" in capsys.readouterr().err
    cell = summary["classes"]["bert"]["BertForMaskedLM"]["cpu"]
    assert cell["since"] == {"new failure": 1}
    markdown = (second / "summary.md").read_text()
    assert markdown.index("## Since the baseline") < markdown.index("**Totals:**")
    cells = r"\| new failure +\| bert +\| BertForMaskedLM +\| tiny-bert +\| cpu +\| passed +"
    cells += r"\| failed +\| yes +\| not compared \(the checkpoint changed\)"
    assert re.search(cells, markdown)

    weights.write_bytes(kept)
    third = tree(isolated / "third", run(family, MODEL))
    status, summary = report(third, second, fail_on="new-failures")
    assert (status, row(summary)["transition"], row(summary)["checkpoint_changed"]) == (
        0, "fixed", True)  # fmt: skip
    status, summary = report(third, first, fail_on="new-failures,drift")
    assert (status, row(summary)["transition"], row(summary)["drift"]["status"]) == (
        0, "passing", "agree")  # fmt: skip


def test_outputs_that_pass_their_golden_values_but_moved_past_the_class_atol_are_drift(
    family, isolated, monkeypatch, capsys
):
    """One vocabulary entry's logit shifted by 5e-4 at every position: the golden values (a
    logits slice of other entries, per-position statistics, the fill-mask scores) still hold
    at their tolerance, 1e-4; the fingerprint's sample of that entry moved 5x the class atol."""
    import torch
    import transformers

    record = run(family, MODEL)
    logits = record["fingerprint"]["outputs"]["logits"]
    vocabulary = logits["shape"][-1]
    size = vocabulary * logits["shape"][0] * logits["shape"][1]
    spaced = [round(i * (size - 1) / (len(logits["sample"]) - 1))
              for i in range(len(logits["sample"]))]  # fmt: skip
    top = {item["token"] for item in record["fingerprint"]["pipeline"]}
    column = next(i % vocabulary for i in spaced if i % vocabulary >= 5 and i % vocabulary
                  not in top)  # fmt: skip
    forward = transformers.BertForMaskedLM.forward

    def shifted(self, *args, **kwargs):
        output = forward(self, *args, **kwargs)
        output["logits"] = output.logits + 5e-4 * (torch.arange(vocabulary) == column)
        return output

    monkeypatch.setattr(transformers.BertForMaskedLM, "forward", shifted)
    moved = run(family, MODEL)
    assert moved["status"] == "passed", moved["reason"]  # every golden value holds
    first, second = tree(isolated / "first", record), tree(isolated / "second", moved)
    status, summary = report(second, first, fail_on="drift")
    found = row(summary)
    assert (status, found["transition"], found["checkpoint_changed"]) == (1, "passing", False)
    assert found["drift"]["status"] == "drift"
    assert found["drift"]["max_abs_diff"] == pytest.approx(5e-4, rel=0.05)
    assert found["drift"]["atol"] == 1e-4
    assert found["drift"]["where"].startswith("outputs.logits.sample[")
    assert "--fail-on drift: 1" in capsys.readouterr().err
    assert "drift" in summary["classes"]["bert"]["BertForMaskedLM"]["cpu"]["since"]


def test_the_dashboard_marks_each_cell_s_events_and_lists_them_first(
    family, tiny_record, isolated, chromium
):
    """A record that passed, then failed with other weights: the row at the top, the family
    and class cells marked."""
    record = tiny_record(family)
    broken = later(record)
    broken.update(status="failed", reason="from_pretrained.weights_sha256: got another hash",
                  checkpoint={**record["checkpoint"], "sha256": "0" * 64})  # fmt: skip
    first, second = tree(isolated / "first", record), tree(isolated / "second", broken)
    assert report(second, first)[0] == 0
    dom = Dom(chromium("--dump-dom", (second / "index.html").as_uri()))
    [since] = dom.find("tr", data_model=MODEL, data_column="cpu")
    assert since["data-events"] == "new failure"
    assert dom.page.index('id="since"') < dom.page.index('id="grid"')
    marked = [td for td in dom.find("td", data_column="cpu") if "data-since" in td]
    assert [td["data-since"] for td in marked] == ["new failure", "new failure"]  # family, class
    assert "since baseline: new failure 1" in dom.page


# ---------------------------------------------------------------- performance


def measured(family, isolated: Path, name: str, slow_s: float = 0.0, monkeypatch=None) -> Path:
    """A tree with one --performance run of the tiny checkpoint (each forward ``slow_s``
    longer: a busy loop, as a slower op would be, injected into BertForMaskedLM.forward)."""
    from families_helpers import family_test

    if slow_s:
        import transformers

        forward = transformers.BertForMaskedLM.forward

        def slowed(self, *args, **kwargs):
            end = time.perf_counter() + slow_s
            while time.perf_counter() < end:
                pass
            return forward(self, *args, **kwargs)

        monkeypatch.setattr(transformers.BertForMaskedLM, "forward", slowed)
    test = family_test(family, MODEL)
    test.performance = PERF
    record = test.run_tests("cpu")
    if slow_s:
        monkeypatch.undo()
    assert record["status"] == "passed", record["reason"]
    return tree(isolated / name, record)


def verdicts(summary: dict) -> dict[str, str]:
    return {name: t["status"] for name, t in (row(summary)["performance"] or {}).items()}


def test_an_injected_slowdown_is_slower_and_fails_on_request(family, isolated, monkeypatch, capsys):
    quick = measured(family, isolated, "quick")
    slow = measured(family, isolated, "slow", 0.005, monkeypatch)
    status, summary = report(slow, quick, fail_on="slower")
    found = row(summary)["performance"]["forward"]
    assert (status, found["status"], found["rule"]) == (1, "slower", "one run")
    assert found["ratio"] >= 2 and found["p_slower"] < 1e-6, found
    assert "--fail-on slower: 1 (bert/tiny-bert on cpu)" in capsys.readouterr().err
    assert "forward slower x" in (slow / "summary.md").read_text()
    status, summary = report(slow, quick, fail_on="slower", ratio="1000")  # past its ratio
    rule = summary["comparison"]["rule"]
    assert (status, verdicts(summary)["forward"], rule["slower_ratio"]) == (0, "unchanged", 1000)
    # the other way round, the quick run is faster, which gates nothing
    status, summary = report(quick, slow, fail_on="slower")
    assert (status, verdicts(summary)["forward"]) == (0, "faster")

    # a history: the run before must have been slower too (two consecutive runs)
    again = measured(family, isolated, "again")
    status, summary = report(slow, quick, again, fail_on="slower")
    assert (status, verdicts(summary)["forward"]) == (0, "slower once")
    assert row(summary)["performance"]["forward"]["rule"] == "two consecutive runs"
    still = measured(family, isolated, "still", 0.005, monkeypatch)
    status, summary = report(still, quick, slow, fail_on="slower")
    assert (status, verdicts(summary)["forward"]) == (1, "slower")
    assert set(verdicts(summary)) == {"forward"}  # load_model, first_forward: one sample each
    # a history whose older run has no samples: one slower run is not enough
    lone = isolated / "lone" / "summary.json"
    lone.parent.mkdir()
    shutil.copy(quick / "summary.json", lone)
    status, summary = report(slow, lone, again, fail_on="slower")
    assert (status, verdicts(summary)["forward"]) == (0, "slower once")
    # the last baseline a summary.json alone: nothing to compare the samples with
    status, summary = report(slow, quick, lone, fail_on="slower")
    assert (status, row(summary)["performance"]) == (0, None)


def test_two_runs_of_unchanged_code_compared_ten_times_are_never_slower(family, isolated):
    runs = [measured(family, isolated, f"run-{i}") for i in range(11)]
    seen = []
    for before, after in itertools.pairwise(runs):
        status, summary = report(after, before, fail_on="slower")
        assert status == 0
        seen.append(verdicts(summary))
        assert summary["comparison"]["totals"]["slower"] == 0
    forward = [v["forward"] for v in seen]
    assert "slower" not in forward and len(forward) == 10, seen


# ---------------------------------------------------------------- what a baseline can be


def test_a_baseline_is_a_tree_its_summary_a_lone_summary_or_a_folder_of_artifacts(
    family, tiny_record, isolated, capsys
):
    record = tiny_record(family)
    skipped = results.outcome_record(FAMILY, "BertForMaskedLM", "bert-base-uncased", "hub",
                                     "cpu", "offline", "skipped", "float32")  # fmt: skip
    old = tree(isolated / "artifacts" / "results-bert-cpu", record, skipped)
    assert report(old)[0] == 0
    moved = later(record)
    now = tree(isolated / "now", moved)
    for path in (old, old / "summary.json", isolated / "artifacts"):
        status, summary = report(now, path)
        assert status == 0
        assert (row(summary)["transition"], row(summary)["drift"]["status"]) == ("passing", "agree")
        assert row(summary, "bert-base-uncased")["transition"] == "gone"
        assert summary["comparison"]["baselines"][0]["source"] == "records"
    lone = isolated / "lone" / "summary.json"
    lone.parent.mkdir()
    shutil.copy(old / "summary.json", lone)
    status, summary = report(now, lone)
    assert summary["comparison"]["baselines"][0]["source"] == "summary.json"
    assert (row(summary)["transition"], row(summary)["checkpoint_changed"]) == ("passing", False)
    assert row(summary)["drift"]["status"] == "not compared"


def test_mistakes_in_the_comparison_s_arguments_exit_2_in_one_line(isolated, capsys):
    empty = isolated / "empty"
    empty.mkdir()
    cases = [
        (["--baseline", str(isolated / "missing")], "no such file or directory"),
        (["--baseline", str(empty)], "not a result tree"),
        (["--baseline", str(empty), "--fail-on", "slow"], "--fail-on 'slow': choose from"),
        (["--fail-on", "drift"], "--fail-on needs --baseline PATH"),
        (["--fail-on", ""], "--fail-on '': choose from"),
        (["--slower-ratio", "1.5"], "--slower-ratio needs --baseline PATH"),
        (["--baseline", str(empty), "--slower-ratio", "0.9"], "'0.9' is not a ratio above 1"),
    ]
    (isolated / "bogus.json").write_text("[]")
    cases.append((["--baseline", str(isolated / "bogus.json")], "not an hfmatrix summary.json"))
    for args, message in cases:
        capsys.readouterr()
        try:
            status = main(["report", "--results-dir", str(isolated / "out"), *args])
        except SystemExit as exc:  # argparse's own mistakes
            status = exc.code
        assert status == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
