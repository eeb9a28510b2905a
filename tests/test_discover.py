"""`hfmatrix discover` end to end against a local Hub (tests/fake_hub.py) that answers
huggingface_hub's real /api/models requests with paging; then `models` and `coverage` on
the registry it wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fake_hub import RENAMED, SERVED, FakeHub, hub_model
from faults import project_copy

from hfmatrix import sources
from hfmatrix.commands import main
from hfmatrix.project import Project
from hfmatrix.registry import load_models

DISCOVERED = {  # the default plan: 5 per class, at least 1000 downloads
    "acme/bert-mlm-1", "acme/bert-mlm-2", "acme/bert-mlm-3", "acme/own-llama",
    "acme/t5-summaries", "acme/bert-sentiment", "acme/distil-sst2", "Qwen/Qwen2.5-0.5B",
}  # fmt: skip


@pytest.fixture
def project(isolated, tmp_path, monkeypatch) -> Path:
    """A copy of the project, the current directory."""
    root = project_copy(tmp_path / "project")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def served(hub, monkeypatch) -> FakeHub:
    fake = FakeHub([dict(model) for model in SERVED], dict(RENAMED))
    hub(fake)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    return fake


def discovered(root: Path) -> dict:
    models = load_models(root / "models.json")
    return {m: e for m, e in models.items() if e.source == "discovered"}


def test_discover_fills_the_registry_with_the_served_models_per_class(project, served, capsys):
    before = load_models(project / "models.json")
    assert main(["discover"]) == 0
    out = capsys.readouterr().out
    models = load_models(project / "models.json")
    assert set(discovered(project)) == DISCOVERED
    mlm = models["acme/bert-mlm-1"]
    assert (mlm.model_class, mlm.family, mlm.task, mlm.tier, mlm.model_type) == (
        "BertForMaskedLM", "bert", "fill-mask", "hub", "bert"
    )  # fmt: skip
    assert (mlm.downloads, mlm.likes, mlm.last_modified) == (900_000, 900, "2024-03-01T12:00:00Z")
    assert (mlm.gated, mlm.remote_code) == (False, False)
    qwen = models["Qwen/Qwen2.5-0.5B"]  # a class the llama family tests
    assert (qwen.family, qwen.task, qwen.model_type) == ("llama", "text-generation", "qwen2")
    sentiment = models["acme/bert-sentiment"]  # only the every-model_type listing finds it
    assert (sentiment.family, sentiment.model_class) == (None, "BertForSequenceClassification")
    assert models["acme/t5-summaries"].task == "text-generation"  # what the t5 family runs
    assert models["acme/own-llama"].remote_code is True
    assert models["acme/bert-mlm-2"].gated is True  # "auto": gated, access granted on request
    # curated entries stay, with the stats of the repo the Hub serves them under
    assert {m for m, e in models.items() if e.source == "curated"} == set(before)
    for model_id, entry in before.items():
        fresh = models[model_id]
        assert (fresh.model_class, fresh.family, fresh.task, fresh.tier) == (
            entry.model_class, entry.family, entry.task, entry.tier
        )  # fmt: skip
    assert models["bert-base-uncased"].downloads == 50_000_000
    assert models["meta-llama/Llama-2-7b-hf"].gated is True
    assert models["gpt2"].downloads is None  # not served: kept as it was
    assert "google-bert/bert-base-uncased" not in models  # a curated model, not repeated
    assert "gpt2: kept as it is (RepositoryNotFoundError)" in out
    assert "8 discovered models of 6 classes (8 new, 0 gone)" in out


def test_discover_asks_as_huggingface_hub_does_and_pages(project, served):
    assert main(["discover", "--scan", "50"]) == 0
    listings = served.listings()
    first = {tuple(q["filter"]) for q in listings if "cursor" not in q}
    tested = {t for spec in Project(project).family_specs().values()
              for t in spec.architectures.values()}  # fmt: skip
    assert {"bert", "roberta", "gpt2", "llama", "whisper"} <= tested
    assert first == {("transformers", t) for t in tested} | {("transformers",)}
    assert {q["sort"][0] for q in listings} == {"downloads"}
    assert {q["limit"][0] for q in listings} == {"50"}
    assert {"config", "downloads", "gated", "lastModified"} <= set(listings[0]["expand"])
    pages = [q["cursor"][0] for q in listings if q["filter"] == ["transformers", "bert"][:2]
             and "cursor" in q]  # fmt: skip
    assert pages == ["3", "6", "9"]  # 11 bert models, 3 a page; the floor stops on the 4th
    tokens = {headers.get("authorization") for _, _, headers in served.requests[1:]}
    assert tokens == {"Bearer hf_test_token"}


def test_a_second_discovery_changes_nothing(project, served, capsys):
    assert main(["discover"]) == 0
    first = (project / "models.json").read_bytes()
    assert main(["discover"]) == 0
    assert (project / "models.json").read_bytes() == first
    assert "(0 new, 0 gone)" in capsys.readouterr().out


def test_a_refresh_replaces_discovered_models_and_keeps_curated_ones(project, served, capsys):
    assert main(["discover"]) == 0
    served.models = [m for m in served.models if m["id"] != "acme/bert-mlm-3"]
    served.models.append(hub_model("acme/bert-mlm-4", "BertForMaskedLM", "bert", 800_000))
    assert main(["discover", "--per-class", "4"]) == 0
    bert = {m for m, e in discovered(project).items() if e.model_class == "BertForMaskedLM"}
    assert bert == {"acme/bert-mlm-1", "acme/bert-mlm-4"}  # with the two curated ones: 4
    assert "(1 new, 2 gone)" in capsys.readouterr().out


def test_discover_limits_and_floor(project, served):
    assert main(["discover", "--per-class", "1", "--min-downloads", "6000000"]) == 0
    assert set(discovered(project)) == {"acme/distil-sst2", "Qwen/Qwen2.5-0.5B"}


def test_an_unreachable_hub_leaves_models_json_untouched(project, isolated, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    before = (project / "models.json").read_bytes()
    assert main(["discover"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: hfmatrix discover: the Hub is unreachable (http://127.0.0.1:9")
    assert err.endswith(f"{project / 'models.json'} is unchanged")
    assert (project / "models.json").read_bytes() == before


def test_offline_mode_is_told_and_nothing_written(project, capsys):
    before = (project / "models.json").read_bytes()
    assert main(["discover"]) == 1
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err
    assert (project / "models.json").read_bytes() == before


def test_a_refused_listing_leaves_models_json_untouched(project, served, capsys):
    served.status["/api/models"] = 401
    before = (project / "models.json").read_bytes()
    assert main(["discover"]) == 1
    err = capsys.readouterr().err
    assert "listing model_type 'albert' failed" in err and "401" in err  # the first, sorted
    assert (project / "models.json").read_bytes() == before


@pytest.mark.parametrize("args", [["--per-class", "0"], ["--scan", "x"], ["--min-downloads", "-1"]])
def test_bad_numbers_exit_2(project, args, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["discover", *args])
    assert exit.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_models_and_coverage_read_the_discovered_registry(project, served, capsys):
    assert main(["discover"]) == 0
    capsys.readouterr()
    assert main(["models", "--family", "t5", "--json"]) == 0
    rows = {row["model_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {
        "tiny-t5", "tiny-mt5", "tiny-bart", "tiny-pegasus", "t5-small", "t5-base", "t5-large",
        "acme/t5-summaries",
    }  # fmt: skip
    assert rows["acme/t5-summaries"]["source"] == "discovered"
    assert rows["acme/t5-summaries"]["available"] is True  # the local Hub serves its info
    assert main(["coverage", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    untested = {row["class"]: row for row in report["untested_classes"]}
    assert list(untested) == [
        "DistilBertForSequenceClassification",
        "BertForSequenceClassification",
    ]
    why = Project(project).untested["BertForSequenceClassification"]
    assert untested["BertForSequenceClassification"] == {
        "class": "BertForSequenceClassification", "model_type": "bert",
        "task": "text-classification", "models": 1, "downloads": 5_000_000,
        "most_downloaded": "acme/bert-sentiment", "why": "new-family", "reason": why.reason,
    }  # fmt: skip
    counted = [e for e in load_models(project / "models.json").values() if e.downloads]
    total = sum(e.downloads for e in counted)
    untested_downloads = sum(row["downloads"] for row in untested.values())
    assert report["downloads"] == {
        "counted_models": len(counted), "total": total,
        "tested_classes": total - untested_downloads,
        "share": round((total - untested_downloads) / total, 4),
    }  # fmt: skip
    assert report["families"]["t5"] == {
        "classes": [
            "BartForConditionalGeneration", "MT5ForConditionalGeneration",
            "PegasusForConditionalGeneration", "T5ForConditionalGeneration",
        ],
        "models": 8, "hub_models": 4,
    }  # fmt: skip
    assert report["tiny_only"] == []
    assert main(["coverage"]) == 0
    table = capsys.readouterr().out
    assert "classes in models.json that no family tests: 2" in table
    assert "acme/bert-sentiment" in table and "new-family" in table
    assert (
        f"the tested classes' share of models.json's downloads: {report['downloads']['share']:.1%}"
        in table
    )


def test_a_model_of_an_untested_class_is_not_run_by_a_family(project, served):
    from hfmatrix.errors import UserError
    from hfmatrix.project import Project

    assert main(["discover"]) == 0
    with pytest.raises(UserError, match="a class no family tests"):
        Project(project).model_entry("bert", "acme/bert-sentiment")


def test_coverage_names_families_with_only_their_tiny_checkpoint(project, capsys):
    data = json.loads((project / "models.json").read_text())
    data["models"] = {m: e for m, e in data["models"].items() if e["family"] != "llava" or
                      e["tier"] == "tiny"}  # fmt: skip
    (project / "models.json").write_text(json.dumps(data))
    assert main(["coverage", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tiny_only"] == ["llava"]
    assert main(["coverage"]) == 0
    assert "families with only their tiny checkpoint: llava" in capsys.readouterr().out


def test_discover_uses_the_projects_models_json_from_a_subdirectory(project, served):
    os.chdir(project / "families")
    assert main(["discover"]) == 0
    assert set(discovered(project)) == DISCOVERED


def test_a_gated_model_runs_here_only_with_a_token(project, served, monkeypatch, capsys):
    capsys.readouterr()
    assert main(["models", "--class", "LlamaForCausalLM", "--json"]) == 0
    rows = {row["model_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["meta-llama/Llama-2-7b-hf"]["available"] is True  # HF_TOKEN is set
    monkeypatch.delenv("HF_TOKEN")
    assert main(["models", "--class", "LlamaForCausalLM", "--json"]) == 0
    rows = {row["model_id"]: row for row in json.loads(capsys.readouterr().out)}
    gated = rows["meta-llama/Llama-2-7b-hf"]
    assert (gated["available"], gated["where"]) == (False, sources.GATED)
    assert rows["meta-llama/Llama-2-13b-hf"]["available"] is False  # not served at all
