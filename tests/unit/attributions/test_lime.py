"""LIME: its seed drives the perturbations, RGB images, its settings checks."""

from __future__ import annotations

import numpy as np
import pytest
from support.left_half_squares import fast_options

from pixelflip.attributions import make_attribution


def test_rgb_images(rgb_model):
    images = np.random.default_rng(0).random((2, 12, 12, 3), dtype=np.float32)
    result = make_attribution("lime", **fast_options("lime")).explain(rgb_model, images, [0, 2])
    assert result.maps.shape == (2, 12, 12)
    assert result.maps.max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"num_samples": 1}, "num_samples"),
        ({"hide_color": 2.0}, "hide_color"),
        ({"compactness": float("nan")}, "compactness"),
    ],
)
def test_bad_settings_raise_value_error(options, match):
    with pytest.raises(ValueError, match=match):
        make_attribution("lime", **options)
