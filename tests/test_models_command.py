"""`hfmatrix models`: the registry queried by family, class, task and tier, with whether
each model can run here (tiny, HF cache, Hub) or why not."""

from __future__ import annotations

import json

import pytest
from families_helpers import REVISION, ROOT, plant_hf_snapshot

from hfmatrix.commands import main
from hfmatrix.project import Project


def listing(capsys, *args: str) -> list[dict]:
    assert main(["models", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_family_lists_its_models_tiny_first(isolated, capsys):
    rows = listing(capsys, "--family", "t5")
    assert [row["model_id"] for row in rows] == [
        "tiny-bart", "tiny-mt5", "tiny-pegasus", "tiny-t5", "t5-base", "t5-large", "t5-small",
    ]  # fmt: skip
    assert {row["class"] for row in rows} == {
        "T5ForConditionalGeneration", "MT5ForConditionalGeneration", "BartForConditionalGeneration",
        "PegasusForConditionalGeneration",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--class", "SamModel"), {"tiny-sam", "facebook/sam-vit-base", "facebook/sam-vit-large"}),
        (("--task", "image-text-to-text"), {"tiny-llava", "llava-hf/llava-1.5-7b-hf"}),
        (
            ("--tier", "tiny", "--family", "vit"),
            {
                "tiny-vit",
                "tiny-deit",
                "tiny-beit",
                "tiny-convnext",
                "tiny-convnextv2",
                "tiny-swin",
                "tiny-dinov2",
            },
        ),
        (("--class", "NoSuchClass"), set()),
    ],
)
def test_filters_combine(isolated, capsys, args, expected):
    assert {row["model_id"] for row in listing(capsys, *args)} == expected


def test_availability_says_where_from_or_why_not(isolated, capsys, monkeypatch):
    from huggingface_hub import constants

    hub_cache = isolated / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    files = isolated / "files"
    files.mkdir()
    (files / "model.safetensors").write_bytes(b"weights")
    plant_hf_snapshot(hub_cache, "t5-small", files)
    rows = {row["model_id"]: row for row in listing(capsys, "--family", "t5")}
    assert rows["tiny-t5"]["available"] is True
    assert rows["tiny-t5"]["where"] == "frozen files (tiny/)"
    assert rows["t5-small"]["available"] is True
    assert rows["t5-small"]["where"] == f"HF cache ({REVISION[:12]})"
    assert rows["t5-base"]["available"] is False
    assert "HF_HUB_OFFLINE is set" in rows["t5-base"]["where"]


def test_table_output(isolated, capsys):
    assert main(["models", "--family", "bert", "--tier", "tiny"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["model", "family", "class", "task", "tier", "downloads", "runs",
                              "here", "from", "/", "why", "not"]  # fmt: skip
    [row] = [line for line in out[2:] if line.startswith("tiny-bert ")]
    assert len(out) == 2 + len(Project(ROOT).tiny_models("bert"))  # one per class
    assert row.split()[:7] == [
        "tiny-bert",
        "bert",
        "BertForMaskedLM",
        "fill-mask",
        "tiny",
        "-",
        "yes",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--family", "nope"], "error: unknown family 'nope' (known: bert, gpt, llama, llava, sam"),
        (["--tier", "huge"], "argument --tier: invalid choice: 'huge'"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(isolated, capsys, args, message):
    try:
        code = main(["models", *args])
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
