"""The batched greedy search behind :mod:`pixelflip.counterfactuals.regions`.

:class:`RegionSearch` holds, for N images, their superpixels (N, H, W), the replacement of every
pixel (N, H, W, C) and what the model must say; a choice of regions is an (N, R) boolean array,
R the most regions any image has. :meth:`RegionSearch.grow` adds one region per image and step,
:meth:`RegionSearch.prune` drops the ones not needed. Every step of either scores all candidates
of all images still searching in batched predictions, so the model sees a few large batches, not
one image at a time.

The score is a margin in log-probability: for a target t, ``log p_t - max_{j != t} log p_j``; for
"any other class" (-1), ``max_{j != o} log p_j - log p_o`` with o the original prediction. A
choice is valid when its margin exceeds ``confidence``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pixelflip.explanation.inputs import predict_probabilities
from pixelflip.explanation.targets import ANY_OTHER

_SMALLEST_PROBABILITY = 1e-30
# Candidate images built and predicted at once. Scoring is inference only, so these batches can
# be far larger than the method's batch_size (which bounds the gradient passes); on CPU a large
# batch predicts several times faster per image than batches of 16.
PREDICTION_BATCH = 256


def feature_function(model):
    """Callable ``(images, batch_size) -> (N, D)`` float32 features, where distractors are
    compared: the input of the layer named ``"logits"`` (the penultimate features) of a Keras
    model that has one, else the model's log-probabilities (all a predict-only model shows)."""
    if isinstance(model, keras.Model):
        try:
            logits_layer = model.get_layer("logits")
        except ValueError:
            logits_layer = None
        if logits_layer is not None:
            inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
            features = keras.Model(inputs, logits_layer.input)
            return lambda images, batch_size: np.asarray(
                features.predict(images, batch_size=batch_size, verbose=0), dtype=np.float32)
    return lambda images, batch_size: np.log(np.maximum(
        predict_probabilities(model, images, batch_size=batch_size), _SMALLEST_PROBABILITY))


class RegionSearch:
    """The state of one region search over N images.

    Parameters
    ----------
    model : keras.Model or PredictionModel
        Gradients rank candidate regions only for a Keras model.
    images, fills : float32 arrays of shape (N, H, W, C)
        The originals and what each of their pixels becomes when its region is replaced.
    segments : int array of shape (N, H, W)
        Superpixel label of every pixel, from 0.
    targets, original_predictions : int64 arrays of shape (N,)
    confidence : float >= 0
    batch_size : int
        Images per gradient call (predictions go in batches of ``PREDICTION_BATCH``).
    forward : callable, optional
        ``images -> probabilities``, the model's compiled inference pass
        (:func:`compiled_forward`, built when not given).

    ``rounds`` (N,) int64 counts the scoring rounds each image took part in.
    """

    def __init__(self, model, images, segments, fills, targets, original_predictions, *,
                 confidence: float, batch_size: int, forward=None) -> None:
        self.model = model
        self._forward = forward or compiled_forward(model)
        self.images = images
        self.fills = fills
        self.targets = targets
        self.original_predictions = original_predictions
        self.confidence = float(confidence)
        self.batch_size = int(batch_size)
        count = len(images)
        self.segments = segments.reshape(count, -1).astype(np.int64)
        num_regions = int(self.segments.max()) + 1
        self.present = np.zeros((count, num_regions), dtype=bool)
        np.put_along_axis(self.present, self.segments, True, axis=1)
        self.rounds = np.zeros(count, dtype=np.int64)

    def masks(self, selected: np.ndarray) -> np.ndarray:
        """(N, H, W) bool: the pixels of each image's selected regions."""
        return self._pixel_masks(np.arange(len(self.images)), selected)

    def is_valid(self, images: np.ndarray) -> np.ndarray:
        """(N,) bool: the model's margin on each of the N ``images`` exceeds ``confidence``."""
        return self._margins(images, np.arange(len(images))) > self.confidence

    def grow(self, max_regions: int, *, candidates: int | None,
             owners: np.ndarray | None = None) -> np.ndarray:
        """Add the best region per image and step until valid, out of regions or at
        ``max_regions``; returns the (N, R) selection (a failed image's is not valid).

        ``owners`` (N,) groups rows that are alternatives for one image (one per distractor):
        once one row of a group is valid, the others stop, since they could only end with more
        regions before pruning.
        """
        count = len(self.images)
        selected = np.zeros_like(self.present)
        searching = self._margins(self.images, np.arange(count)) <= self.confidence
        ranked = candidates is not None and isinstance(self.model, keras.Model)
        for _ in range(max_regions):
            searching &= (self.present & ~selected).any(axis=1)
            rows = np.flatnonzero(searching)
            if not rows.size:
                break
            available = self.present[rows] & ~selected[rows]
            if ranked:
                gains = np.where(available, self._estimated_gains(rows, selected), -np.inf)
                keep = np.argsort(-gains, axis=1)[:, :candidates]
                shortlist = np.zeros_like(available)
                np.put_along_axis(shortlist, keep, True, axis=1)
                available &= shortlist
            pair_rows, pair_regions = np.nonzero(available)
            trial = selected[rows[pair_rows]].copy()
            trial[np.arange(len(pair_rows)), pair_regions] = True
            margins = self._choice_margins(rows[pair_rows], trial)
            best = _best_per_group(pair_rows, margins, len(rows))
            selected[rows, pair_regions[best]] = True
            self.rounds[rows] += 1
            done = rows[margins[best] > self.confidence]
            searching[done] = False
            if owners is not None:
                searching &= ~np.isin(owners, owners[done])
        return selected

    def prune(self, selected: np.ndarray) -> np.ndarray:
        """Drop regions one at a time, each time the one whose removal keeps the largest valid
        margin, until removing any kept region would undo the flip; returns the new selection."""
        selected = selected.copy()
        rows = np.arange(len(self.images))
        pruning = self._choice_margins(rows, selected) > self.confidence
        while True:
            pruning &= selected.sum(axis=1) >= 2
            rows = np.flatnonzero(pruning)
            if not rows.size:
                return selected
            pair_rows, pair_regions = np.nonzero(selected[rows])
            trial = selected[rows[pair_rows]].copy()
            trial[np.arange(len(pair_rows)), pair_regions] = False
            margins = self._choice_margins(rows[pair_rows], trial)
            self.rounds[rows] += 1
            best = _best_per_group(pair_rows, margins, len(rows))
            droppable = margins[best] > self.confidence
            selected[rows[droppable], pair_regions[best[droppable]]] = False
            pruning[rows[~droppable]] = False

    def _pixel_masks(self, rows: np.ndarray, choices: np.ndarray) -> np.ndarray:
        masks = np.take_along_axis(choices, self.segments[rows], axis=1)
        return masks.reshape((len(rows), *self.images.shape[1:3]))

    def _composites(self, rows: np.ndarray, choices: np.ndarray) -> np.ndarray:
        masks = self._pixel_masks(rows, choices)[..., np.newaxis]
        return np.where(masks, self.fills[rows], self.images[rows])

    def _choice_margins(self, rows: np.ndarray, choices: np.ndarray) -> np.ndarray:
        """Margins of the images ``rows`` with the regions ``choices`` (n, R) replaced."""
        margins = np.empty(len(rows), dtype=np.float64)
        for start in range(0, len(rows), PREDICTION_BATCH):
            part = slice(start, start + PREDICTION_BATCH)
            margins[part] = self._margins(self._composites(rows[part], choices[part]), rows[part])
        return margins

    def _margins(self, images: np.ndarray, rows: np.ndarray) -> np.ndarray:
        probabilities = predict_probabilities(self._forward, images, batch_size=PREDICTION_BATCH)
        log_probabilities = np.log(np.maximum(probabilities, _SMALLEST_PROBABILITY))
        return _margin(log_probabilities, self.targets[rows], self.original_predictions[rows])

    def _estimated_gains(self, rows: np.ndarray, selected: np.ndarray) -> np.ndarray:
        """(n, R) first-order estimate of each region's margin gain: the margin's gradient at
        the current image times the change replacing the region makes, summed over its pixels."""
        gains = np.zeros((len(rows), self.present.shape[1]))
        for start in range(0, len(rows), self.batch_size):
            part = rows[start:start + self.batch_size]
            current = self._composites(part, selected[part])
            gradients = self._margin_gradients(current, part)
            change = ((self.fills[part] - current) * gradients).sum(axis=-1).reshape(len(part), -1)
            for offset, row in enumerate(part):
                gains[start + offset] = np.bincount(self.segments[row], weights=change[offset],
                                                    minlength=gains.shape[1])
        return gains

    def _margin_gradients(self, images: np.ndarray, rows: np.ndarray) -> np.ndarray:
        images = tf.constant(images, dtype=tf.float32)
        targets = tf.constant(self.targets[rows])
        originals = tf.constant(self.original_predictions[rows])
        with tf.GradientTape() as tape:
            tape.watch(images)
            probabilities = self.model(images, training=False)
            log_probabilities = tf.math.log(tf.maximum(probabilities, _SMALLEST_PROBABILITY))
            total = tf.reduce_sum(_margin(log_probabilities, targets, originals, ops=tf))
        return tape.gradient(total, images).numpy()


def compiled_forward(model):
    """The model's inference pass as one compiled graph for a Keras model (candidate scoring
    runs it dozens of times; eager calls pay Python per layer), the model itself otherwise."""
    if not isinstance(model, keras.Model):
        return model
    forward = tf.function(lambda images, training=False: model(images, training=False),
                          reduce_retracing=True)
    return forward


def _margin(log_probabilities, targets, original_predictions, ops=np):
    """Per-image margin (see the module docstring), in NumPy or (``ops=tf``) TensorFlow."""
    num_classes = log_probabilities.shape[1]
    untargeted = targets == ANY_OTHER
    key = ops.where(untargeted, original_predictions, targets)
    if ops is tf:
        key_mask = tf.one_hot(key, num_classes) > 0
        key_score = tf.reduce_sum(tf.where(key_mask, log_probabilities, 0.0), axis=1)
        best_other = tf.reduce_max(tf.where(key_mask, -np.inf, log_probabilities), axis=1)
    else:
        key_mask = np.eye(num_classes, dtype=bool)[key]
        key_score = log_probabilities[np.arange(len(key)), key]
        best_other = np.where(key_mask, -np.inf, log_probabilities).max(axis=1)
    return ops.where(untargeted, best_other - key_score, key_score - best_other)


def _best_per_group(groups: np.ndarray, values: np.ndarray, num_groups: int) -> np.ndarray:
    """Index into ``values`` of the largest value of each group 0 .. num_groups-1 (every group
    present); ties go to the first."""
    order = np.lexsort((-values, groups))
    first = np.searchsorted(groups[order], np.arange(num_groups))
    return order[first]
