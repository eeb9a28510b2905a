"""Network faults: a Hub that is down, slow or refuses a model costs seconds per run, and
each hub model gets a skipped (or error) record with the reason."""

from __future__ import annotations

import json
import time

import pytest
from families_helpers import REVISION, plant_hf_snapshot

from hfmatrix import sources
from hfmatrix.project import Project
from hfmatrix.runner import RunSettings, run_model

FAMILY = "bert"
HUB_MODELS = ("bert-base-uncased", "bert-large-uncased", "distilbert-base-uncased")
SHA = "c" * 40


def run_all(family, isolated) -> list[dict]:
    settings = RunSettings(results_dir=isolated / "results")
    project = Project.find()
    return [
        run_model(family.TestBertModels, project, model, "cpu", settings).record
        for model in HUB_MODELS
    ]


def test_a_hub_that_never_answers_costs_one_probe_per_run(family, isolated, hub):
    endpoint = hub(lambda request: time.sleep(60))
    start = time.monotonic()
    records = run_all(family, isolated)
    assert time.monotonic() - start < sources.PROBE_TIMEOUT_S + 5
    for record in records:
        assert record["status"] == "skipped"
        assert "not in the HF cache and the Hub is unreachable" in record["reason"]
        assert endpoint in record["reason"] and "Timeout" in record["reason"]


def test_a_cached_model_loads_from_the_cache_when_the_hub_fails_it(
    tiny, isolated, hub, monkeypatch
):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(isolated / "hf" / "hub"))
    plant_hf_snapshot(isolated / "hf" / "hub", "bert-base-uncased", tiny)
    hub(lambda request: (200, {}, b"hub") if request.path == "/" else (500, {}, b"down"))
    source = sources.resolve_hub("bert-base-uncased")
    assert (source.origin, source.revision) == ("HF cache", REVISION)
    with pytest.raises(sources.Unavailable, match="the Hub did not serve its info"):
        sources.resolve_hub("bert-large-uncased")  # not cached


def test_a_revision_the_hub_does_not_have_is_an_error(isolated, hub):
    hub(
        lambda request: (
            (200, {}, b"hub")
            if request.path == "/"
            else (404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "no"}, b"{}")
        )
    )
    with pytest.raises(LookupError, match="the Hub has no revision 'v9' of it"):
        sources.resolve_hub("bert-base-uncased", "v9")


def model_info(request) -> tuple[int, dict, bytes]:
    """The Hub's answers: /api/models/<id>/revision/<rev> for three kinds of repository."""
    if request.path == "/":
        return 200, {}, b"hub"
    if "bert-large" in request.path:
        return 401, {"X-Error-Code": "GatedRepo", "X-Error-Message": "gated"}, b"{}"
    if "distilbert" in request.path:
        return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "nope"}, b"{}"
    body = json.dumps({"id": "bert-base-uncased", "sha": SHA, "siblings": []}).encode()
    return 200, {"Content-Type": "application/json"}, body


def test_gated_and_missing_repositories_are_told_apart(isolated, hub):
    hub(model_info)
    assert sources.resolve_hub("bert-base-uncased").revision == SHA
    with pytest.raises(sources.Unavailable, match="gated on the Hub: needs HF_TOKEN"):
        sources.resolve_hub("bert-large-uncased")
    with pytest.raises(LookupError, match=r"not found on the Hub \(or private: set HF_TOKEN\)"):
        sources.resolve_hub("distilbert-base-uncased")


def test_gated_model_is_skipped_and_missing_one_is_an_error(family, isolated, hub):
    hub(model_info)
    settings = RunSettings(results_dir=isolated / "results")
    project = Project.find()
    gated, missing = (
        run_model(family.TestBertModels, project, model, "cpu", settings).record
        for model in HUB_MODELS[1:]
    )
    assert gated["status"] == "skipped" and gated["reason"].startswith("gated on the Hub")
    assert missing["status"] == "error"
    assert missing["reason"] == "LookupError: not found on the Hub (or private: set HF_TOKEN)"
