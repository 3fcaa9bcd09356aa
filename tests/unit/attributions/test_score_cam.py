"""Score-CAM: independent of how many images share a forward pass, its settings checks."""

from __future__ import annotations

import numpy as np
import pytest

from pixelflip.attributions import make_attribution


def test_maps_do_not_depend_on_the_batch(squares_model, positives, results):
    # Score-CAM's layer has 8 channels, so batch_size 8 means one image per call.
    small_batches = make_attribution("score_cam", batch_size=8).explain(
        squares_model, positives, np.ones(len(positives), dtype=np.int64)
    )
    np.testing.assert_allclose(small_batches.maps, results["score_cam"].maps, atol=1e-5)


def test_bad_settings_raise_value_error():
    with pytest.raises(ValueError, match="random_state"):
        make_attribution("score_cam", random_state=-1)
