"""Which class each counterfactual should reach."""

from __future__ import annotations

import numbers

import numpy as np

from pixelflip.config.explanations import TARGETS

ANY_OTHER = -1
"""Target meaning "any class but the original prediction"."""


def resolve_targets(
    strategy: str,
    probabilities,
    *,
    labels=None,
    class_index: int | None = None,
) -> np.ndarray:
    """Turn a target strategy into one target class per image.

    Parameters
    ----------
    strategy : {"other", "runner_up", "class", "true_label"}
        ``"other"``: ``ANY_OTHER`` (-1) for every image, i.e. leave the predicted class.
        ``"runner_up"``: the second most probable class of each image.
        ``"class"``: ``class_index`` for every image.
        ``"true_label"``: ``labels``, so misclassified images are pushed to their true class.
        Images already predicted as their target (possible with "class" and "true_label") are
        kept: a method returns them unchanged, successful, with a zero perturbation.
    probabilities : array of shape (N, K)
        The model's softmax outputs on the original images.
    labels : int array of shape (N,), optional
        True labels in 0..K-1; required by ``"true_label"``.
    class_index : int, optional
        Target class in 0..K-1; required by ``"class"``.

    Returns
    -------
    int64 array of shape (N,) with values in 0..K-1 or -1.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(
            f"probabilities has shape {probabilities.shape}; expected (N, K) with K >= 2 classes."
        )
    count, num_classes = probabilities.shape
    if strategy == "other":
        return np.full(count, ANY_OTHER, dtype=np.int64)
    if strategy == "runner_up":
        # A stable sort on the negated scores breaks ties towards the lower class index.
        order = np.argsort(-probabilities, axis=1, kind="stable")
        return order[:, 1].astype(np.int64)
    if strategy == "class":
        if (
            class_index is None
            or isinstance(class_index, bool)
            or not isinstance(class_index, numbers.Integral)
            or not 0 <= int(class_index) < num_classes
        ):
            raise ValueError(
                f"class_index={class_index!r} is invalid for strategy 'class'; expected an integer "
                f"in 0..{num_classes - 1}."
            )
        return np.full(count, int(class_index), dtype=np.int64)
    if strategy == "true_label":
        if labels is None:
            raise ValueError("labels is None; strategy 'true_label' needs the (N,) true labels.")
        labels = np.asarray(labels)
        if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels has shape {labels.shape} and dtype {labels.dtype}; expected ({count},) "
                "integer class indices."
            )
        if count and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"labels contains values outside 0..{num_classes - 1}; expected class indices."
            )
        return labels.astype(np.int64)
    raise ValueError(
        f"strategy={strategy!r} is not a target strategy; expected one of {', '.join(TARGETS)}."
    )


def target_class_index(target_class: str | None, class_names: list[str]) -> int | None:
    """The index of class ``target_class`` in ``class_names`` (None for None).

    Raises ValueError naming the allowed classes when there is no such class.
    """
    if target_class is None:
        return None
    if target_class not in class_names:
        raise ValueError(f"counterfactuals.target_class '{target_class}' is not a class; "
                         f"allowed: {', '.join(class_names)}")
    return class_names.index(target_class)
