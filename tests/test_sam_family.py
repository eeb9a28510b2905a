"""The sam family: its image processor. What every family checks: test_families.py."""

from __future__ import annotations

import pytest
from families_helpers import edit_json, fails

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
