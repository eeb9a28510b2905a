"""The vit family: well-separated golden predictions, its image processor and labels, and its
class oracle (ImageNet-1k labels of real photographs). What every family checks:
test_families.py."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
from families_helpers import (
    edit_json,
    edit_weights,
    failed_checks,
    fails,
    imagenet_head,
    plant_hf_snapshot,
    renormalise,
    run,
    shuffle_weights,
    tiny_dir,
)

from hfmatrix import golden

FAMILY = "vit"
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("isolated")


def test_golden_predictions_are_well_separated(family):
    """Neighbouring top-k scores differ by far more than the tolerance, for every class's
    tiny checkpoint: no near-ties."""
    stored = golden.read(ROOT, "vit")
    assert set(stored) == set(family.TINY) == set(family.PROCESSOR_SETTINGS)
    for values in stored.values():
        scores = values["top_k_scores"]
        assert min(a - b for a, b in itertools.pairwise(scores)) > 50 * family.ATOL


def test_the_image_processor_is_recorded(family, tiny_record):
    assert tiny_record(family)["loaded"]["processor"].startswith("ViTImageProcessor")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("image_std", [0.5, 0.5, 0.5]),  # normalisation
        ("resample", 0),  # nearest instead of bilinear resizing
    ],
)
def test_changing_the_image_processor_fails(family, tiny_copy, key, value):
    edit_json(tiny_copy / "preprocessor_config.json", lambda data: data.update({key: value}))
    failed = fails(
        family,
        "from_pretrained.image_processor_settings",
        "from_pretrained.pixel_values_stats",
        "from_pretrained.logits_slice",
    )
    assert "from_pretrained.weights_sha256" not in failed


def test_renaming_a_label_fails(family, tiny_copy):
    def rename(config):
        config["id2label"]["5"] = "wolf"  # "dog", the second prediction
        config["label2id"] = {"wolf" if k == "dog" else k: v for k, v in config["label2id"].items()}

    edit_json(tiny_copy / "config.json", rename)
    assert fails(family) == {"pipeline.top_k_labels", "from_pretrained.predicted_labels"}


# --- the class oracle: ImageNet-1k labels of real photographs --------------------------


@pytest.fixture
def planted(family, isolated, monkeypatch):
    """(hub id, *edits) -> the record of a copy of the tiny checkpoint, changed by each edit
    (a function of its directory), served from the HF cache under that id."""
    from huggingface_hub import constants

    hub = isolated / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))

    def plant(model_id: str, *edits) -> dict:
        copy = isolated / "copies" / model_id.replace("/", "--")
        shutil.copytree(tiny_dir(family), copy)
        for edit in edits:
            edit(copy)
        plant_hf_snapshot(hub, model_id, copy)
        return run(family, model_id)

    return plant


def oracle(record: dict) -> dict[str, dict]:
    """The record's oracle checks by name."""
    return {check["name"]: check for check in record["tests"]["oracle"]["checks"]}


def test_imagenet_labels_are_at_their_imagenet_1k_indices(family):
    """The indices follow ImageNet-1k's standard order, as torchvision's weights name it."""
    models = pytest.importorskip("torchvision.models")
    categories = models.ViT_B_16_Weights.IMAGENET1K_V1.meta["categories"]
    assert len(categories) == family.IMAGENET_CLASSES == 1000
    for index, fragment in family.IMAGENET_LABELS.items():
        assert fragment.lower() in categories[index].lower(), (index, categories[index])
    for _shows, classes in family.EXPECTED_CLASSES.values():
        assert set(classes) <= set(family.IMAGENET_LABELS)
    assert set(family.EXPECTED_CLASSES) <= {"chelsea", "coffee"}  # inputs.PHOTOS


def test_imagenet_mismatch_names_what_the_labels_are(family):
    imagenet = {i: family.IMAGENET_LABELS.get(i, f"class {i}") for i in range(1000)}
    assert family.imagenet_mismatch(imagenet) is None
    assert family.imagenet_mismatch({i: label.upper() for i, label in imagenet.items()}) is None
    cifar = dict(enumerate(family.LABELS))
    assert family.imagenet_mismatch(cifar) == (
        "labels are not the ImageNet-1k set: 10 labels (airplane, automobile, bird, cat, deer, ...)"
    )
    generic = {i: f"LABEL_{i}" for i in range(1000)}
    assert family.imagenet_mismatch(generic) == (
        "labels are not the ImageNet-1k set: 1000 labels, but 281 is 'LABEL_281', not 'tabby'"
    )


def test_best_rank_counts_the_classes_ranked_above_the_best_named_one(family):
    import torch

    probabilities = torch.tensor([0.1, 0.4, 0.05, 0.3, 0.15])
    assert family.best_rank(probabilities, (3,)) == 2
    assert family.best_rank(probabilities, (0, 2)) == 4
    assert family.best_rank(probabilities, (2, 1)) == 1


def test_the_tiny_under_a_hub_id_is_not_applicable(family, hub_record):
    """Its ten CIFAR-10 labels are not ImageNet-1k's: the oracle says so, it does not pass."""
    checks = oracle(hub_record(family, "google/vit-base-patch16-224"))
    assert set(checks) == {"chelsea_in_top_5", "coffee_in_top_5"}
    for check in checks.values():
        assert check["not_applicable"].startswith("labels are not the ImageNet-1k set: 10 labels")
        assert "value" not in check


def with_head(directory, family) -> None:
    imagenet_head(directory, family.IMAGENET_LABELS)


@pytest.mark.parametrize(
    "edits",
    [(), (shuffle_weights,), (renormalise,)],
    ids=["untrained", "shuffled", "renormalised"],
)
def test_an_imagenet_head_on_untrained_weights_fails_the_oracle(family, planted, edits):
    """Given ImageNet-1k's labels, the tiny (random weights; shuffled; with the 0-255
    statistics on [0, 1] pixels) ranks no named class anywhere near the top 5."""
    record = planted("google/vit-base-patch16-224", lambda d: with_head(d, family), *edits)
    checks = oracle(record)
    assert set(checks) == {"chelsea_in_top_5", "coffee_in_top_5"}
    for name, check in checks.items():
        assert not check["passed"] and "not_applicable" not in check
        assert check["value"] >= 5 * check["bound"], name  # rank 30 or worse: a wide margin
        assert check["bound"] == family.RANK_BOUND.limit == 6 and check["below"] is True
        assert check["source"] == family.RANK_BOUND.source
        assert "top 5: class " in check["detail"]
    if not edits:  # the planted checkpoint works: only the oracle fails
        assert failed_checks(record) == {"oracle.chelsea_in_top_5", "oracle.coffee_in_top_5"}


def test_a_head_that_favours_the_named_classes_passes(family, planted):
    """The passing side: a classifier whose bias puts the Egyptian cat and espresso classes
    first names both photographs in its top 5, each within rank 2."""

    def favour(directory) -> None:
        def bias(tensors: dict) -> None:
            tensors["classifier.bias"][[285, 967]] += 50.0

        edit_weights(directory, bias)

    record = planted("someone/biased-vit", lambda d: with_head(d, family), favour)
    checks = oracle(record)
    assert record["tests"]["oracle"]["status"] == "passed"
    assert set(checks) == {"chelsea_in_top_5", "coffee_in_top_5"}
    assert all(check["passed"] and check["value"] <= 2 for check in checks.values())
    assert "Egyptian cat" in checks["chelsea_in_top_5"]["detail"]
