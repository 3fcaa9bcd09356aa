"""Loading a classifier the pipeline saved, custom layers included."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras


def load_classifier(path) -> keras.Model:
    """Load a ``.keras`` classifier saved by the pipeline, attention layers included.

    The attention layers are registered when their module is imported; a stage that only loads
    models would otherwise fail with "Could not locate class 'SqueezeExcitation'".
    """
    from pixelflip.models import attention  # noqa: F401

    return keras.saving.load_model(path, safe_mode=True)
