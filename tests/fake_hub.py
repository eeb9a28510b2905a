"""A Hub API for the `hub` fixture: /api/models (a listing filtered by tags, sorted by
downloads, paged through Link headers with a cursor) and /api/models/<id> (one model's
info; a renamed model redirects), answered as huggingface.co does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

PAGE = 3  # models per page at most: every listing of more pages through Link headers


def hub_model(
    model_id: str,
    architecture: str | None,
    model_type: str,
    downloads: int,
    pipeline_tag: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A model as the Hub's API describes it (the properties `expand` can ask for)."""
    config = {"model_type": model_type, **extra.pop("config", {})}
    if architecture:
        config["architectures"] = [architecture]
    tags = ["transformers", "safetensors", model_type, *extra.pop("tags", [])]
    return {
        "_id": model_id.encode().hex()[:24],
        "id": model_id,
        "downloads": downloads,
        "likes": downloads // 1000,
        "lastModified": "2024-03-01T12:00:00.000Z",
        "gated": False,
        "pipeline_tag": pipeline_tag,
        "library_name": "transformers",
        "tags": tags + ([pipeline_tag] if pipeline_tag else []),
        "config": config,
        **extra,
    }


def without_config(model: dict[str, Any]) -> dict[str, Any]:
    """A model whose listing has no config at all."""
    return {key: value for key, value in model.items() if key != "config"}


# What tests/test_discover.py serves: models of tested and untested classes, under and over
# the download floor, with odd or no configs, gated, with their own code; curated ids
# renamed.
SERVED = [
    hub_model("google-bert/bert-base-uncased", "BertForMaskedLM", "bert", 50_000_000, "fill-mask"),
    hub_model("google-bert/bert-large-uncased", "BertForMaskedLM", "bert", 2_000_000, "fill-mask"),
    hub_model("acme/bert-sentiment", "BertForSequenceClassification", "bert", 5_000_000,
              "text-classification"),
    hub_model("acme/bert-mlm-1", "BertForMaskedLM", "bert", 900_000, "fill-mask"),
    hub_model("acme/bert-mlm-2", "BertForMaskedLM", "bert", 500_000, "fill-mask", gated="auto"),
    hub_model("acme/bert-odd", None, "bert", 450_000, config={"architectures": "BertForMaskedLM"}),
    hub_model("acme/bert-no-architectures", None, "bert", 400_000),
    without_config(hub_model("acme/bert-no-config", None, "bert", 350_000)),
    hub_model("acme/bert-mlm-3", "BertForMaskedLM", "bert", 300_000, "fill-mask"),
    hub_model("acme/bert-rare", "BertForMaskedLM", "bert", 999, "fill-mask"),  # under the floor
    hub_model("distilbert/distilbert-base-uncased", "DistilBertForMaskedLM", "distilbert",
              10_000_000, "fill-mask"),
    hub_model("acme/distil-sst2", "DistilBertForSequenceClassification", "distilbert",
              7_000_000, "text-classification"),
    hub_model("google-t5/t5-small", "T5ForConditionalGeneration", "t5", 3_000_000,
              "translation"),
    hub_model("acme/t5-summaries", "T5ForConditionalGeneration", "t5", 40_000,
              "summarization"),
    hub_model("Qwen/Qwen2.5-0.5B", "Qwen2ForCausalLM", "qwen2", 20_000_000, "text-generation"),
    hub_model("acme/own-llama", "LlamaForCausalLM", "llama", 60_000, "text-generation",
              tags=["custom_code"], config={"auto_map": {"AutoModelForCausalLM": "m.Own"}}),
    hub_model("meta-llama/Llama-2-7b-hf", "LlamaForCausalLM", "llama", 1_500_000,
              "text-generation", gated="manual"),
]  # fmt: skip
RENAMED = {
    "bert-base-uncased": "google-bert/bert-base-uncased",
    "bert-large-uncased": "google-bert/bert-large-uncased",
    "distilbert-base-uncased": "distilbert/distilbert-base-uncased",
    "t5-small": "google-t5/t5-small",
}


@dataclass
class FakeHub:
    """Answers the `hub` fixture's requests from ``models``; ``renamed`` maps an old id to
    the one the Hub serves it under; ``status`` makes a path prefix answer that status."""

    models: list[dict[str, Any]]
    renamed: dict[str, str] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)

    def __call__(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        self.requests.append((url.path, query, {k.lower(): v for k, v in request.headers.items()}))
        for prefix, status in self.status.items():
            if url.path.startswith(prefix):
                return _json(status, {"error": f"status {status}"})
        if request.command == "HEAD" or url.path == "/":
            return 200, {}, b""
        if url.path == "/api/models":
            return self.listing(request, query)
        if url.path.startswith("/api/models/"):
            return self.info(url.path.removeprefix("/api/models/"), query)
        return _json(404, {"error": "Not Found"})

    def listing(self, request: Any, query: dict[str, list[str]]) -> tuple[int, dict, bytes]:
        tags = query.get("filter", [])
        chosen = [m for m in self.models if all(tag in m["tags"] for tag in tags)]
        if query.get("sort") == ["downloads"]:
            chosen.sort(key=lambda m: -m["downloads"])
        size = min(int(query.get("limit", [PAGE])[0]), PAGE)
        start = int(query.get("cursor", ["0"])[0])
        page = [_expanded(m, query.get("expand")) for m in chosen[start : start + size]]
        headers = {}
        if start + size < len(chosen):
            rest = urlencode({**query, "cursor": [str(start + size)]}, doseq=True)
            headers["Link"] = f'<http://{request.headers["Host"]}/api/models?{rest}>; rel="next"'
        return _json(200, page, headers)

    def info(self, model_id: str, query: dict[str, list[str]]) -> tuple[int, dict, bytes]:
        if model_id in self.renamed:
            where = f"/api/models/{self.renamed[model_id]}?{urlencode(query, doseq=True)}"
            return 307, {"Location": where}, b""
        for model in self.models:
            if model["id"] == model_id:
                return _json(200, _expanded(model, query.get("expand")))
        return _json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})

    def listings(self) -> list[dict[str, list[str]]]:
        """The query of every /api/models request so far."""
        return [query for path, query, _ in self.requests if path == "/api/models"]


def _expanded(model: dict[str, Any], expand: list[str] | None) -> dict[str, Any]:
    if not expand:
        return model
    return {key: value for key, value in model.items() if key in {"_id", "id", *expand}}


def _json(status: int, data: Any, headers: dict | None = None) -> tuple[int, dict, bytes]:
    body = json.dumps(data).encode()
    return status, {"Content-Type": "application/json", **(headers or {})}, body
