"""The training-history figure: loss and accuracy per epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from pixelflip.plots.common import _new_figure


def plot_training_history(history: Mapping[str, Sequence[float]]) -> Figure:
    """Loss and accuracy per epoch, training against validation, in two panels.

    ``history`` maps metric names to per-epoch values, as ``keras.callbacks.History.history``
    does: ``loss`` is required; ``val_loss``, an accuracy key (``accuracy`` or any name ending
    in ``accuracy``) and its ``val_`` twin are drawn when present.
    """
    history = getattr(history, "history", history)
    if not isinstance(history, Mapping) or "loss" not in history:
        raise ValueError(
            "history has no 'loss' entry; expected a dict of per-epoch lists such as "
            "keras History.history."
        )
    accuracy_keys = [
        key for key in history if key.endswith("accuracy") and not key.startswith("val_")
    ]
    figure = _new_figure(figsize=(10.0, 3.8))
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    panels = ((loss_axis, "loss", "loss"),)
    if accuracy_keys:
        panels += ((accuracy_axis, accuracy_keys[0], "accuracy"),)
    else:
        accuracy_axis.text(0.5, 0.5, "no accuracy recorded", ha="center", va="center")
        accuracy_axis.set_axis_off()
    for axis, key, label in panels:
        for name, style in ((key, "-o"), (f"val_{key}", "--s")):
            if name in history:
                values = np.asarray(history[name], dtype=np.float64)
                epochs = np.arange(1, len(values) + 1)
                kind = "validation" if name.startswith("val_") else "training"
                axis.plot(epochs, values, style, markersize=3, label=kind)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.set_title(label)
        axis.grid(alpha=0.3)
        axis.legend()
    return figure
