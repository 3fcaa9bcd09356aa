"""SmoothGrad: its seed drives the noise, NumPy's global generator is left as it was, its
settings checks."""

from __future__ import annotations

import numpy as np
import pytest

from pixelflip.attributions import make_attribution
from pixelflip.attributions.smoothgrad import SmoothGrad


def test_smoothgrad_restores_the_global_numpy_random_state(squares_model, positives):
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    SmoothGrad(num_samples=2).explain(squares_model, positives[:2], [1, 1])
    np.testing.assert_array_equal(np.random.random(3), expected)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"num_samples": 0}, "num_samples"),
        ({"noise_level": 0.0}, "noise_level"),
    ],
)
def test_bad_settings_raise_value_error(options, match):
    with pytest.raises(ValueError, match=match):
        make_attribution("smoothgrad", **options)
