"""The sam family: its image processor, and its class oracle (a point prompt on a real
photograph). What every family checks: test_families.py."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
from families_helpers import (
    edit_json,
    fails,
    plant_hf_snapshot,
    renormalise,
    run,
    shuffle_weights,
    tiny_dir,
)

FAMILY = "sam"

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.mark.parametrize(
    ("key", "value", "expected_failure"),
    [
        ("image_mean", [0.5, 0.5, 0.5], "from_pretrained.pixel_values_stats"),
        ("image_std", [0.5, 0.5, 0.5], "from_pretrained.pixel_values_stats"),
        ("resample", 3, "from_pretrained.pixel_values_slice"),  # bicubic for bilinear
    ],
)
def test_changing_the_image_processor_fails(family, tiny_copy, key, value, expected_failure):
    edit_json(tiny_copy / "preprocessor_config.json", lambda data: data.update({key: value}))
    fails(family, expected_failure, "from_pretrained.image_processor_settings")


# --- the class oracle: a point prompt on the espresso of a real photograph --------------


@pytest.fixture
def objects(family) -> dict:
    """The oracle's objects as masks of the photograph."""
    from hfmatrix.inputs import photo

    return family.object_masks(photo(family.ORACLE_PHOTO).size)


def test_the_point_lies_on_each_object_and_they_nest(family, objects):
    import numpy as np

    x, y = family.ORACLE_POINT
    ys, xs = np.ogrid[:400, :600]
    near = (xs - x) ** 2 + (ys - y) ** 2 <= 15**2
    assert list(objects) == ["the crema", "the espresso", "the inside of the cup", "the cup"]
    for mask in objects.values():
        assert mask.shape == (400, 600) and mask[y, x]
        assert mask[near].all()  # well inside, 15 px from any edge
    for inner, outer in itertools.pairwise(objects.values()):
        assert (inner & ~outer).sum() <= 0.01 * inner.sum()  # within it, to the tracing
        assert family.iou(inner, outer) < 0.7  # different answers, not one answer twice


def test_masks_unrelated_to_the_photo_miss_the_bound(family, objects):
    """A mask of everything, or any blob centred on the point (an ellipse of any size,
    here on a 10 px grid), stays below the bound: the point is off every object's centre."""
    import numpy as np

    limit = family.MASK_IOU.limit
    everything = np.ones((400, 600), dtype=bool)
    assert max(family.iou(everything, mask) for mask in objects.values()) < 0.23
    ys, xs = np.ogrid[:400, :600]
    x, y = family.ORACLE_POINT
    best = 0.0
    for rx, ry in itertools.product(range(10, 400, 10), range(10, 300, 10)):
        blob = ((xs - x) / rx) ** 2 + ((ys - y) / ry) ** 2 < 1
        best = max(best, *(family.iou(blob, mask) for mask in objects.values()))
    assert 0.5 < best < 0.59 < limit


def test_best_match_names_the_object_a_mask_covers(family, objects):
    for name, mask in objects.items():
        assert family.best_match(mask, (600, 400)) == (name, 1.0)
    cup_without_handle = objects["the cup"].copy()
    cup_without_handle[228:, :262] = False
    name, overlap = family.best_match(cup_without_handle, (600, 400))
    assert name == "the cup" and 0.9 < overlap < 1


def test_iou(family):
    import numpy as np

    a = np.array([[1, 1, 0, 0]], dtype=bool)
    b = np.array([[0, 1, 1, 0]], dtype=bool)
    assert family.iou(a, b) == pytest.approx(1 / 3)
    assert family.iou(a, a) == 1.0
    assert family.iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 0.0


def test_the_tiny_under_a_hub_id_fails_the_oracle_with_its_margin(family, hub_record):
    record = hub_record(family, "facebook/sam-vit-base")
    [check] = record["tests"]["oracle"]["checks"]
    assert check["name"] == "point_mask_covers_object" and not check["passed"]
    assert check["value"] < check["bound"] - 0.3  # a wide margin
    assert check["bound"] == family.MASK_IOU.limit == 0.6 and check["below"] is False
    assert check["source"] == family.MASK_IOU.source
    assert check["detail"].startswith("IoU of the best mask (score ")


@pytest.mark.parametrize("edit", [shuffle_weights, renormalise], ids=["shuffled", "renormalised"])
def test_shuffled_or_renormalised_copies_fail_the_oracle(family, isolated, monkeypatch, edit):
    from huggingface_hub import constants

    hub = isolated / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    copy = Path(shutil.copytree(tiny_dir(family), isolated / "copy"))
    edit(copy)
    plant_hf_snapshot(hub, "someone/sam", copy)
    [check] = run(family, "someone/sam")["tests"]["oracle"]["checks"]
    assert check["name"] == "point_mask_covers_object" and not check["passed"]
    assert check["value"] < check["bound"] - 0.3
