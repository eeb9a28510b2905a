"""The vit family: well-separated golden predictions, its image processor and labels. What
every family checks: test_families.py."""

from __future__ import annotations

import itertools

import pytest
from families_helpers import edit_json, fails

FAMILY = "vit"

pytestmark = pytest.mark.usefixtures("isolated")


def test_golden_predictions_are_well_separated(family):
    """Neighbouring top-k scores differ by far more than the tolerance: no near-ties."""
    scores = family.GOLDEN_TOP_SCORES
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
