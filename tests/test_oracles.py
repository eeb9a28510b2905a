"""Every family's class oracle discriminates: the untrained tiny checkpoint, a copy with its
weights shuffled, and a copy with its vocabulary permuted (its image normalisation broken,
for the pure vision classes) each land on the failing side of every applicable bound, run as
a hub model served from the HF cache (the same path as a real checkpoint)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from families_helpers import (
    FAMILIES,
    ROOT,
    permute_vocabulary,
    plant_hf_snapshot,
    renormalise,
    run,
    shuffle_weights,
    tiny_dir,
)

from hfmatrix.project import Project

BROKEN_INPUT = {"vit": renormalise, "sam": renormalise}  # else permute_vocabulary
# overrides.json marks Llama-2-7b as needing remote code: its run is skipped without it
HUB_ID = {"llama": "meta-llama/Llama-2-13b-hf"}
VARIANTS = {"tiny": None, "shuffled weights": shuffle_weights, "broken input": "input"}


def planted(family, variant: str, root: Path, monkeypatch) -> str:
    """Plant a variant of the family's tiny files as its default hub model; the model id."""
    from huggingface_hub import constants

    name = family.__name__.removeprefix("test_hf_")
    files = Path(shutil.copytree(tiny_dir(family), root / "files"))
    if name == "vit":  # the oracle applies to ImageNet-1k labels only
        from families_helpers import imagenet_head

        imagenet_head(files, family.IMAGENET_LABELS)
    change = VARIANTS[variant]
    if change == "input":
        change = BROKEN_INPUT.get(name, permute_vocabulary)
    if change is not None:
        change(files)
    model_id = HUB_ID.get(name) or Project(ROOT).family_spec(name).default_model
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root / "hf" / "hub"))
    plant_hf_snapshot(root / "hf" / "hub", model_id, files)
    return model_id


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("family", FAMILIES, indirect=True)
def test_an_untrained_copy_fails_every_applicable_bound(family, variant, isolated, monkeypatch):
    record = run(family, planted(family, variant, isolated, monkeypatch))
    assert record["tier"] == "hub" and record["source"]["origin"] == "HF cache"
    oracle = record["tests"]["oracle"]
    assert oracle["status"] == "failed", oracle
    bounded = [c for c in oracle["checks"] if "bound" in c and not c.get("not_applicable")]
    assert bounded, "the oracle records at least one value against its bound"
    for check in bounded:
        assert not check["passed"], check
        assert check["value"] is not None and check["source"], check
        assert f"oracle.{check['name']}" in record["reason"]
    assert record["status"] == "failed"
