"""AttributionResult: the checks of its maps and per-image arrays."""

from __future__ import annotations

import numpy as np
import pytest

from pixelflip.attributions.result import AttributionResult


def test_maps_outside_the_unit_range_and_mismatched_targets_raise_value_error():
    with pytest.raises(ValueError, match="outside"):
        AttributionResult("grad_cam", np.full((1, 2, 2), 2.0), [0], [0.1])
    with pytest.raises(ValueError, match="targets"):
        AttributionResult("grad_cam", np.zeros((2, 2, 2)), [0], [0.1, 0.1])
