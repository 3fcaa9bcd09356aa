"""IM2 on real MNIST digits put into results by hand: a real 7 judged a 7 is reconstructed by the
7s' autoencoder much as by the all-class one (low IM2); a 1 judged a 7 is not."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from support.hand_made_results import fake_result

from pixelflip.evaluation.autoencoders import build_autoencoder, train_shared_autoencoder
from pixelflip.evaluation.im2 import im2_scores


@pytest.fixture(scope="module")
def shared_autoencoder(digits):
    keep = np.isin(digits.train_labels, [1, 7])
    return train_shared_autoencoder(digits.train_images[keep], digits.train_labels[keep],
                                    epochs=5, batch_size=16, max_images_per_class=300,
                                    random_state=0)


def test_im2_is_lower_for_real_images_of_the_class_reached(digits, ones_and_sevens_autoencoders,
                                                           shared_autoencoder):
    sevens, ones = digits.held(7, 16), digits.held(1, 16)
    real = im2_scores(fake_result(ones, sevens, 1, 7), ones_and_sevens_autoencoders,
                      shared_autoencoder)
    # A 1 left as it is but predicted a 7: the 7s' autoencoder turns it into a 7, the shared
    # one keeps it a 1.
    unchanged = im2_scores(fake_result(ones, ones, 1, 7), ones_and_sevens_autoencoders,
                           shared_autoencoder)
    assert real.shape == (16,) and np.all(real >= 0)
    assert np.median(real) < np.median(unchanged)
    assert np.mean(real < np.median(unchanged)) >= 0.75


def test_im2_is_nan_for_failures_and_checks_its_models(digits, ones_and_sevens_autoencoders,
                                                        shared_autoencoder):
    ones = digits.held(1, 3)
    failed = fake_result(ones, ones, 1, 7, success=np.zeros(3, dtype=bool))
    assert np.isnan(im2_scores(failed, ones_and_sevens_autoencoders, shared_autoencoder)).all()
    with pytest.raises(ValueError, match=r"no model for classes \[3\]"):
        im2_scores(fake_result(ones, ones, 1, 3), ones_and_sevens_autoencoders,
                   shared_autoencoder)
    with pytest.raises(ValueError, match="takes images of shape"):
        im2_scores(fake_result(ones, ones, 1, 7), ones_and_sevens_autoencoders,
                   build_autoencoder((14, 14, 1)))
