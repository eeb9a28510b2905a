"""The HTML dashboard: the page itself, then drawn by a real headless browser.

The browser tests run Debian's chromium (/usr/bin/chromium; `apt-get install chromium`;
conftest's chromium fixture) and are skipped without it. The screenshot test keeps its PNG
under pytest's tmp_path, prints its path, and also copies it (with the page) to the
directory named by HFMATRIX_TEST_ARTIFACTS when that variable is set.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from hfmatrix.dashboard import render_dashboard

INJECTED = "<img src=x onerror=alert(1)>"
CLOSING = "</script><script>alert(1)</script>"


def _timing(p50: float, throughput: float, unit: str) -> dict[str, Any]:
    return {"p50_s": p50, "p90_s": p50 * 1.3, "throughput": throughput,
            "throughput_unit": unit, "max_ram_mb": 900.0}  # fmt: skip


def _model(
    family: str,
    model_id: str,
    hardware: str,
    status: str,
    reason: str = "",
    performance: dict[str, Any] | None = None,
    model_class: str = "BertForMaskedLM",
) -> dict[str, Any]:
    return {
        "family": family, "model_class": model_class, "model_id": model_id,
        "tier": "tiny", "hardware": hardware, "status": status, "reason": reason,
        "tests": {"pipeline": status, "from_pretrained": status},
        "max_abs_diff": 7.6e-06, "atol": 1e-4, "environment": "e589571c3e1de31a",
        "host": "runner-1", "started_at": "2026-11-28T00:50:00+00:00", "duration_s": 12.3,
        "performance": performance,
    }  # fmt: skip


GPT2, OPT = "GPT2LMHeadModel", "OPTForCausalLM"
EXPORT = "could not export OPTForCausalLM: unsupported"
FORWARD = {"forward": _timing(0.012, 83.0, "samples/s")}
GENERATE = {"generate": _timing(0.9, 41.0, "tokens/s")}
MODELS = [
    _model("bert", "tiny-bert", "cpu", "passed", performance=FORWARD),
    _model("bert", "distilbert-base-uncased", "cpu", "passed", performance=FORWARD),
    _model("bert", "tiny-bert", "cuda", "skipped", "no CUDA device"),
    _model(
        "gpt", "tiny-gpt2", "cpu", "passed", performance={**FORWARD, **GENERATE}, model_class=GPT2
    ),
    _model("gpt", INJECTED, "cpu", "failed", f"logits differ {CLOSING}", model_class=OPT),
    _model("gpt", "gpt2", "cuda", "passed", performance=GENERATE, model_class=GPT2),
    _model("gpt", "gpt2", "cuda-float16", "timeout", "stopped after 600 s", model_class=GPT2),
    _model("gpt", "tiny-gpt2", "openvino", "passed", model_class=GPT2),
    _model("gpt", "tiny-opt", "openvino", "error", EXPORT, model_class=OPT),
]
FOUND = [  # summary.json's findings rows
    {"family": "gpt", "model_class": OPT, "model_id": INJECTED, "hardware": "cpu",
     "status": "failed", "finding": "new", "reason": f"logits differ {CLOSING}",
     "declared": None, "declared_in": None},
    {"family": "gpt", "model_class": OPT, "model_id": "tiny-opt", "hardware": "openvino",
     "status": "error", "finding": "declared", "reason": EXPORT,
     "declared": "no export yet", "declared_in": "env_specs/classes/findings.toml:8"},
]  # fmt: skip
GRID = {
    ("bert", "cpu"): "passed", ("bert", "cuda"): "skipped",
    ("bert", "cuda-float16"): "none", ("bert", "openvino"): "none",
    ("gpt", "cpu"): "failed", ("gpt", "cuda"): "passed",
    ("gpt", "cuda-float16"): "error", ("gpt", "openvino"): "declared",
}  # fmt: skip
SUMMARY: dict[str, Any] = {
    "schema": "hfmatrix.summary/6",
    "generated_at": "2026-11-28T01:00:00+00:00",
    "results_dir": "/srv/hfmatrix/test_results",
    "totals": {"passed": 5, "failed": 1, "error": 1, "skipped": 1, "timeout": 1, "total": 9},
    "matrix": {
        "bert": {
            "cpu": {
                "status": "passed",
                "counts": {"passed": 2},
                "max_abs_diff": 7.6e-06,
                "atol": 1e-4,
                "reference": "cpu-fp32",
            },
            "cuda": {"status": "skipped", "counts": {"skipped": 1}},
        },
        "gpt": {
            "cpu": {
                "status": "failed",
                "counts": {"passed": 1, "failed": 1},
                "max_abs_diff": 0.31,
                "atol": 1e-4,
                "reference": "cpu-fp32",
                "greedy_ids_match": False,
            },
            "cuda": {
                "status": "passed",
                "counts": {"passed": 1},
                "max_abs_diff": 2e-05,
                "atol": 1e-4,
                "reference": "cpu-fp32",
                "greedy_ids_match": True,
            },
            "cuda-float16": {"status": "error", "counts": {"timeout": 1}},
            "openvino": {"status": "declared", "counts": {"passed": 1, "error": 1}},
        },
    },
    "classes": {
        "bert": {
            "BertForMaskedLM": {
                "cpu": {"status": "passed", "counts": {"passed": 2}},
                "cuda": {"status": "skipped", "counts": {"skipped": 1}},
            }
        },
        "gpt": {
            GPT2: {
                "cpu": {"status": "passed", "counts": {"passed": 1}},
                "cuda": {"status": "passed", "counts": {"passed": 1}},
                "cuda-float16": {
                    "status": "error",
                    "counts": {"timeout": 1},
                    "findings": [
                        {
                            "model_id": "gpt2",
                            "status": "timeout",
                            "reason": "stopped after 600 s",
                            "declared": None,
                        }
                    ],
                },
                "openvino": {"status": "passed", "counts": {"passed": 1}},
            },
            OPT: {
                "cpu": {
                    "status": "failed",
                    "counts": {"failed": 1},
                    "findings": [
                        {
                            "model_id": INJECTED,
                            "status": "failed",
                            "reason": f"logits differ {CLOSING}",
                            "declared": None,
                        }
                    ],
                },
                "openvino": {
                    "status": "declared",
                    "counts": {"error": 1},
                    "findings": [
                        {
                            "model_id": "tiny-opt",
                            "status": "error",
                            "reason": EXPORT,
                            "declared": "no export yet",
                        }
                    ],
                },
            },
        },
    },
    "findings": FOUND,
    "columns": {
        column: {
            "hardware": column.split("-")[0],
            "dtype": "float16" if "-" in column else None,
            "stack": "latest",
            "label": f"{column} · transformers 5.24.0 · torch 2.15.0",
        }
        for column in ("cpu", "cuda", "cuda-float16", "openvino")
    },
    "models": MODELS,
    "drift": [
        {
            "family": "gpt",
            "model_id": "tiny-gpt2",
            "dtype": "float32",
            "checkpoint": "5f1d" * 16,
            "baseline": {
                "stack": "latest",
                "column": "cpu",
                "environment": "e589571c3e1de31a",
                "label": "cpu · transformers 5.24.0 · torch 2.15.0",
            },
            "rows": [
                {
                    "stack": "latest",
                    "column": "cuda",
                    "environment": "e589571c3e1de31a",
                    "label": "cuda · transformers 5.24.0 · torch 2.15.0",
                    "status": "agree",
                    "max_abs_diff": 2e-05,
                    "atol": 1e-4,
                    "greedy_ids_equal": True,
                    "pipeline_equal": True,
                    "where": None,
                },
                {
                    "stack": "tf4",
                    "column": "cpu@tf4",
                    "environment": "0a1b2c3d4e5f6a7b",
                    "label": "cpu · transformers 4.57.6 · torch 2.15.0",
                    "status": "drift",
                    "max_abs_diff": 0.01,
                    "atol": 1e-4,
                    "greedy_ids_equal": False,
                    "pipeline_equal": False,
                    "where": "outputs.greedy_ids[3]",
                },
                {
                    "stack": "tf4",
                    "column": "cuda@tf4",
                    "environment": "0a1b2c3d4e5f6a7c",
                    "label": "cuda · transformers 4.57.6 · torch 2.15.0",
                    "status": "declared",
                    "max_abs_diff": 0.01,
                    "atol": 1e-4,
                    "greedy_ids_equal": True,
                    "pipeline_equal": True,
                    "where": "outputs.logits.sample[5]",
                    "expectations": {"from_pretrained.logits_slice": "transformers<5: kernels"},
                },
            ],
        },
    ],
    "drift_totals": {"agree": 1, "declared": 1, "drift": 1},
    "coverage": {
        "families": {
            "bert": {
                "classes": ["BertForMaskedLM"],
                "models": 4,
                "hub_models": 3,
                "tested_models": 1,
                "passed_models": 1,
            },
            "gpt": {
                "classes": ["GPT2LMHeadModel"],
                "models": 3,
                "hub_models": 2,
                "tested_models": 2,
                "passed_models": 1,
            },
        },
        "tiny_only": ["sam"],
        "untested_classes": [
            {
                "class": "RobertaForMaskedLM",
                "model_type": "roberta",
                "task": "fill-mask",
                "models": 2,
                "downloads": 1234567,
                "most_downloaded": "FacebookAI/roberta-base",
            },
        ],
    },
    "environments": {
        "e589571c3e1de31a": {
            "python": "3.11.7",
            "torch": "2.15.0",
            "transformers": "5.24.0",
            "platform": "Linux-6.1-x86_64",
            "hosts": ["runner-1"],
            "records": 8,
        },
    },
    "unreadable": [{"path": "raw/bert-cpu/broken.json", "error": "invalid JSON (line 1)"}],
}


def _embedded(page: str) -> Any:
    """The summary the page embeds, read back as strict JSON (no NaN or Infinity)."""
    match = re.search(r'<script type="application/json" id="summary">(.*?)</script>', page, re.S)
    assert match, "no embedded summary"
    return json.loads(match.group(1), parse_constant=lambda name: pytest.fail(name))


# ---------------------------------------------------------------- the page itself


def test_page_needs_nothing_from_the_network() -> None:
    page = render_dashboard(SUMMARY)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    for fetch in ("<link", "@import", "url(", "<iframe", "fetch("):
        assert fetch not in page


def test_summary_is_embedded_and_round_trips() -> None:
    assert _embedded(render_dashboard(SUMMARY)) == SUMMARY


def test_a_closing_script_tag_in_a_reason_is_escaped() -> None:
    page = render_dashboard(SUMMARY)
    assert CLOSING not in page
    assert page.count("</script>") == 2  # the data's and the code's
    assert _embedded(page)["models"][4]["reason"] == f"logits differ {CLOSING}"


def test_nan_and_infinity_are_embedded_as_text() -> None:
    summary = copy.deepcopy(SUMMARY)
    summary["models"][4]["max_abs_diff"] = float("inf")
    summary["models"][6]["max_abs_diff"] = float("nan")
    models = _embedded(render_dashboard(summary))["models"]
    assert (models[4]["max_abs_diff"], models[6]["max_abs_diff"]) == ("inf", "nan")


# ---------------------------------------------------------------- in a browser


class Dom(HTMLParser):
    """The start tags of a page as (tag, attributes, attributes of the enclosing <svg>)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self._svg: dict[str, str] = {}
        self.page = page
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "svg":
            self._svg = values
        self.tags.append((tag, values, self._svg))

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = {}

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        """The attributes of each ``tag`` with these attributes (data_family: data-family)."""
        want = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [a for t, a, _ in self.tags if t == tag and want.items() <= a.items()]


def _write(directory: Path, summary: dict[str, Any], script: str = "") -> Path:
    """index.html for summary, with ``script`` run after the page's own."""
    page = render_dashboard(summary)
    if script:
        page = page.replace("</body>", f"<script>{script}</script></body>")
    path = directory / "index.html"
    path.write_text(page, "utf-8")
    return path


@pytest.fixture(scope="module")
def dom(chromium: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> Dom:
    """The page for SUMMARY as chromium drew it."""
    return Dom(chromium("--dump-dom", _write(tmp_path_factory.mktemp("page"), SUMMARY).as_uri()))


def test_grid_has_a_cell_per_family_and_column(dom: Dom) -> None:
    cells = [
        a for t, a, _ in dom.tags if t == "td" and "data-family" in a and "data-class" not in a
    ]
    assert {(c["data-family"], c["data-column"]): c["data-status"] for c in cells} == GRID
    assert len(cells) == len(GRID)
    (failed,) = family_cells(dom, "gpt", "cpu")
    assert failed["class"] == "s-failed"
    assert failed["title"] == f"{INJECTED} (failed): logits differ {CLOSING}"
    (timeout,) = family_cells(dom, "gpt", "cuda-float16")
    assert timeout["class"] == "s-error"
    assert "title" not in family_cells(dom, "bert", "cpu")[0]


def family_cells(dom: Dom, family: str, column: str) -> list[dict[str, str]]:
    found = dom.find("td", data_family=family, data_column=column)
    return [cell for cell in found if "data-class" not in cell]


def test_grid_groups_each_family_s_classes_under_it(dom: Dom) -> None:
    """A row per class below its family's row, a cell per column (the declared finding's in
    its own colour, naming the declaration); the family's toggle names its class count."""
    rows = [(a["data-family"], a.get("data-model-class")) for a in dom.find("tr")
            if a.get("class") in ("family", "model-class")]  # fmt: skip
    assert rows == [("bert", None), ("bert", "BertForMaskedLM"), ("gpt", None), ("gpt", GPT2),
                    ("gpt", OPT)]  # fmt: skip
    cells = [a for a in dom.find("td") if "data-class" in a]
    assert len(cells) == 3 * 4
    (declared,) = dom.find("td", data_class=OPT, data_column="openvino")
    assert declared["class"] == "s-declared" and declared["data-status"] == "declared"
    assert declared["title"] == f"tiny-opt (error, declared: no export yet): {EXPORT}"
    (missing,) = dom.find("td", data_class=OPT, data_column="cuda")
    assert missing["data-status"] == "none"
    toggles = dom.find("button", **{"class": "toggle"})
    assert [t["data-family"] for t in toggles] == ["bert", "gpt"]
    assert "▾ gpt (2)" in dom.page


def test_findings_table_names_declared_and_new_failures(dom: Dom) -> None:
    rows = [(a["data-model"], a["data-finding"]) for a in dom.find("tr") if "data-finding" in a]
    assert rows == [(INJECTED, "new"), ("tiny-opt", "declared")]
    assert [a["class"] for a in dom.find("td") if a.get("class", "").startswith("f-")] == [
        "f-new", "f-declared"]  # fmt: skip


def test_clicking_a_class_cell_shows_its_class_s_models_and_a_family_name_folds_it(
    chromium: Callable[..., str], tmp_path: Path
) -> None:
    script = (f'document.querySelector("#grid td[data-class={OPT}][data-column=cpu]").click();'
              'document.querySelector("#grid button[data-family=gpt]").click();')  # fmt: skip
    dom = Dom(chromium("--dump-dom", _write(tmp_path, SUMMARY, script).as_uri()))
    rows = [r for r in dom.find("tr") if "data-column" in r and "data-status" in r]
    shown = [(r["data-model-class"], r["data-column"]) for r in rows if "hidden" not in r]
    assert shown == [(OPT, "cpu")]
    folded = [a for a in dom.find("tr") if a.get("class") == "model-class"]
    assert [("hidden" in a, a["data-family"]) for a in folded] == [
        (False, "bert"), (True, "gpt"), (True, "gpt")]  # fmt: skip
    assert dom.find("button", data_family="gpt")[0]["aria-expanded"] == "false"


def test_models_table_lists_every_model_as_text(dom: Dom) -> None:
    rows = [r for r in dom.find("tr") if "data-column" in r]
    assert [(r["data-family"], r["data-column"]) for r in rows] == [
        (m["family"], m["hardware"]) for m in MODELS
    ]
    assert not [r for r in dom.find("tr") if "hidden" in r]
    assert not dom.find("img")  # the injected model id stayed text
    tables = ("grid", "findings", "models", "drift", "coverage", "untested", "environments",
              "unreadable")  # fmt: skip
    for table in tables:
        assert dom.find("table", id=table), table


def test_grid_headers_name_each_column_in_words(dom: Dom) -> None:
    heads = [a for t, a, _ in dom.tags if t == "th" and "data-column" in a]
    assert [h["data-column"] for h in heads] == ["cpu", "cuda", "cuda-float16", "openvino"]
    assert len(dom.find("span", **{"class": "label"})) == 4


def test_drift_table_has_a_row_per_compared_record(dom: Dom, chromium, tmp_path) -> None:
    rows = [a for t, a, _ in dom.tags if t == "tr" and "data-drift-status" in a]
    assert [(r["data-drift-column"], r["data-drift-status"]) for r in rows] == [
        ("cuda", "agree"), ("cpu@tf4", "drift"), ("cuda@tf4", "declared")
    ]  # fmt: skip
    assert [a["class"] for a in dom.find("td") if a.get("class", "").startswith("d-")] == [
        "d-agree", "d-drift", "d-declared"
    ]  # fmt: skip
    page = chromium("--dump-dom", _write(tmp_path, SUMMARY).as_uri())
    assert "Drift between stacks and hardware" in page and "outputs.greedy_ids[3]" in page
    assert "transformers&lt;5: kernels" in page or "transformers<5: kernels" in page
    assert "agree 1" in page and "declared 1" in page and "drift 1" in page


def test_no_drift_draws_no_drift_section(chromium: Callable[..., str], tmp_path: Path) -> None:
    summary = {**SUMMARY, "drift": [], "drift_totals": {}}
    page = chromium("--dump-dom", _write(tmp_path, summary).as_uri())
    assert not Dom(page).find("table", id="drift") and not Dom(page).find("p", id="drift-totals")


def test_charts_have_a_bar_per_family_and_column(dom: Dom) -> None:
    bars = [svg["data-metric"] for t, a, svg in dom.tags if t == "rect" and a["class"] == "bar"]
    assert bars.count("latency") == 3  # forward: bert·cpu, gpt·cpu; generate: gpt·cuda
    assert bars.count("throughput") == 3
    charts = [(a["class"], a["data-metric"]) for a in dom.find("svg")]
    assert charts == [("chart", "latency"), ("chart", "throughput")] * 2  # forward, generate


def test_no_performance_data_draws_no_chart(chromium: Callable[..., str], tmp_path: Path) -> None:
    summary = copy.deepcopy(SUMMARY)
    for model in summary["models"]:
        model["performance"] = None
    page = chromium("--dump-dom", _write(tmp_path, summary).as_uri())
    assert not Dom(page).find("svg")
    assert "No performance data in these results." in page


def test_clicking_a_cell_shows_only_its_models(
    chromium: Callable[..., str], tmp_path: Path
) -> None:
    click = (
        'document.querySelector("#grid tr.family td[data-family=gpt][data-column=cpu]").click();'
    )
    dom = Dom(chromium("--dump-dom", _write(tmp_path, SUMMARY, click).as_uri()))
    rows = [r for r in dom.find("tr") if "data-column" in r]
    shown = [(r["data-family"], r["data-column"]) for r in rows if "hidden" not in r]
    assert shown == [("gpt", "cpu"), ("gpt", "cpu")]
    assert "hidden" not in dom.find("button", id="show-all")[0]
    assert "selected" in family_cells(dom, "gpt", "cpu")[0]["class"]


def test_screenshot(chromium: Callable[..., str], tmp_path: Path) -> None:
    page = _write(tmp_path, SUMMARY)
    png = tmp_path / "dashboard.png"
    chromium(f"--screenshot={png}", "--window-size=1400,1000", "--hide-scrollbars", page.as_uri())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    if os.environ.get("HFMATRIX_TEST_ARTIFACTS"):
        artifacts = Path(os.environ["HFMATRIX_TEST_ARTIFACTS"])
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, artifacts / png.name)
        shutil.copy(page, artifacts / "dashboard.html")
        png = artifacts / png.name
    print(f"dashboard screenshot: {png}")


def test_a_report_draws_its_records_performance(
    chromium: Callable[..., str], tmp_path: Path
) -> None:
    """write_report's index.html, from records whose performance blocks name their targets
    as optimum-benchmark does: the grid and one latency and one throughput bar."""
    from hfmatrix.report import write_report
    from hfmatrix.results import new_record, write_record

    record = new_record("bert", "BertForMaskedLM", "tiny-bert", "tiny", "cpu")
    forward = {"latency": {"unit": "s", "p50": 0.004, "p90": 0.005},
               "throughput": {"unit": "samples/s", "value": 250.0, "volume": 1},
               "memory": {"unit": "MB", "max_ram": 812.0}}  # fmt: skip
    record.update(status="passed", performance={"targets": {"forward": forward}})
    write_record(tmp_path, record)
    summary = write_report(tmp_path)
    assert summary["models"][0]["performance"] == {"forward": {
        "p50_s": 0.004, "p90_s": 0.005, "throughput": 250.0, "throughput_unit": "samples/s",
        "max_ram_mb": 812.0}}  # fmt: skip
    dom = Dom(chromium("--dump-dom", (tmp_path / "index.html").as_uri()))
    cells = [(c.get("data-class"), c["data-status"]) for c in dom.find("td") if "data-family" in c]
    assert cells == [(None, "passed"), ("BertForMaskedLM", "passed")]
    bars = [svg["data-metric"] for t, a, svg in dom.tags if t == "rect" and a["class"] == "bar"]
    assert sorted(bars) == ["latency", "throughput"]


def test_oracle_table_has_a_row_per_check_with_its_margin(chromium, tmp_path) -> None:
    """A hub model's oracle checks: value, bound, margin and verdict per row; n/a shows why."""
    oracle = [
        {"check": "oracle.nll_per_token", "verdict": "near bound", "value": 6.0, "bound": 6.5,
         "below": True, "margin": 0.0769, "source": "0.6 x ln V", "detail": ""},
        {"check": "oracle.names_paris", "verdict": "n/a", "value": None, "bound": None,
         "below": None, "margin": None, "source": None, "detail": "124M parameters: too small"},
    ]  # fmt: skip
    models = [{**MODELS[0], "model_id": "gpt2", "oracle": oracle}, *MODELS[1:]]
    summary = {**SUMMARY, "models": models, "oracle_totals": {"near bound": 1, "n/a": 1}}
    page = chromium("--dump-dom", _write(tmp_path, summary).as_uri())
    rows = [a for t, a, _ in Dom(page).tags if t == "tr" and "data-oracle-verdict" in a]
    assert [(r["data-oracle-model"], r["data-oracle-verdict"]) for r in rows] == [
        ("gpt2", "near bound"), ("gpt2", "n/a")
    ]  # fmt: skip
    assert "&lt; 6.5" in page and "8%" in page and "124M parameters: too small" in page
    assert "near bound 1" in page and "n/a 1" in page


def test_no_oracle_checks_draw_no_oracle_section(dom: Dom) -> None:
    assert not dom.find("table", id="oracle") and not dom.find("p", id="oracle-totals")
