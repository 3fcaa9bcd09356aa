"""Batched elastic-net counterfactual search (Wachter et al. 2017; Chen et al. 2018, EAD).

For every image x0 with target t the search minimises, over counterfactuals x in
[clip_min, clip_max]:

    c * max(0, max_{j != t} z_j(x) - z_t(x) + kappa)        (targeted)
    c * max(0, z_o(x) - max_{j != o} z_j(x) + kappa)        (target -1, o = original prediction)
    + l2_weight * ||x - x0||_2^2 + l1_weight * ||x - x0||_1

where z are the model's logits. The smooth part takes FISTA gradient steps; the L1 part is
applied by its proximal operator (soft-thresholding towards x0, then projection into the pixel
range), so a pixel whose gradient is too weak to pay for its L1 cost is set back to *exactly*
its original value. The trade-off c is found per image by a binary search, and the answer is
the valid counterfactual with the smallest elastic-net distance
``l1_weight * L1 + L2^2`` among the points evaluated in any iteration of any round.

The whole batch is one optimisation: per-image constants, masks and best-so-far tensors, and
each round one compiled ``tf.while_loop`` (:mod:`pixelflip.counterfactuals.elastic_net_round`) whose
iteration costs one forward and one backward pass of the model.

Optimising every pixel on its own, the change to a photo is a haze of tiny salt-and-pepper
edits. Two options make it come as blobs (:mod:`pixelflip.counterfactuals.smooth_perturbation`):
``perturbation_resolution=r`` optimises the change on an r x r x C grid upsampled bilinearly,
``x = clip(x0 + upsample(delta))``, with the L1 step acting on the grid, and ``tv_weight``
adds ``tv_weight * TV(x - x0)``, the total variation, to the objective (by its proximal
operator, next to the L1 one). The answer is still the valid point with the smallest
pixel-space ``l1_weight * L1 + L2^2``. With neither option the search is the plain per-pixel
one, graph and results unchanged.
"""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from pixelflip.config.checks import check_integer, check_non_negative
from pixelflip.config.methods import ElasticNetSettings
from pixelflip.counterfactuals.elastic_net_round import SearchSettings, build_search_round
from pixelflip.counterfactuals.method import CounterfactualMethod
from pixelflip.counterfactuals.smooth_perturbation import SmoothSearchRound, needs_smooth_round

_SMALLEST_PROBABILITY = 1e-30
_DEFAULTS = ElasticNetSettings()


def logit_function(model):
    """Callable mapping images to pre-softmax scores (N, K).

    Uses the layer named ``"logits"`` when the model has one; otherwise log-probabilities, which
    differ from the logits only by a per-image constant and so give the same margins.
    """
    try:
        logits_layer = model.get_layer("logits")
    except ValueError:
        def log_probabilities(images):
            probabilities = model(images, training=False)
            return tf.math.log(tf.maximum(probabilities, _SMALLEST_PROBABILITY))

        return log_probabilities
    # A single input tensor rather than a one-element list, so that calling the sub-model with a
    # plain tensor matches its input structure.
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    logit_model = keras.Model(inputs, logits_layer.output)
    return lambda images: logit_model(images, training=False)


class ElasticNetCounterfactual(CounterfactualMethod):
    """Elastic-net (EAD-style) counterfactual search over whole batches of images.

    Parameters
    ----------
    The defaults of the options params.yaml sets are those of
    :class:`~pixelflip.config.methods.ElasticNetSettings` (section ``counterfactuals.elastic_net``).

    max_iterations : int
        FISTA iterations per binary-search round (an image may stop earlier, see
        ``early_stopping_patience``).
    learning_rate : float
        Initial step size; it decays as ``learning_rate * sqrt(1 - k / max_iterations)``.
    l1_weight : float
        beta, the weight of ``||x - x0||_1``; larger values change fewer pixels.
    l2_weight : float
        Weight of ``||x - x0||_2^2`` in the objective.
    initial_prediction_weight : float
        Starting value of c, the weight of the classification hinge loss.
    binary_search_steps : int
        Rounds of the per-image search for c: c shrinks (bisection) after a round that found a
        valid counterfactual and grows (bisection, or x10 while no upper bound is known) after
        one that did not.
    confidence : float
        kappa, the logit margin by which the target must win (or the original prediction lose).
    clip_min, clip_max : float, default 0.0 and 1.0
        Pixel range of images and counterfactuals.
    batch_size : int, default 128
        Images optimised together; larger batches are faster per image but use more memory.
    early_stopping_patience : int or None
        Iterations without relative improvement of an image's objective after which that image
        stops for the current round. None runs every round for ``max_iterations``.
    perturbation_resolution : int >= 1 or None, default None
        Side r of the coarse (r, r, C) grid the change is optimised on, upsampled bilinearly to
        the image: changes come as smooth blobs of about (H / r) x (W / r) pixels, and pixels
        whose grid cells all stay 0 stay exactly unchanged. A side at least the image's is
        every pixel along it (r >= H and W is the plain search). None: every pixel.
    tv_weight : float >= 0, default 0.0
        Weight of the anisotropic total variation of ``x - x0`` (sum of absolute neighbour
        differences) in the objective, so neighbouring pixels change together, in flat patches.
        It does not enter the distance by which counterfactuals are compared. Its proximal step
        costs a few dozen elementwise passes over the batch per iteration: little next to a
        photo CNN's forward+backward pass, about as much as a tiny digit model's.
    random_state : int or None, default 0
        Accepted for the interface shared by all methods. This search starts from the original
        images and makes no random choices, so its output depends only on its inputs.
    proposal_check_interval : int or None, default None
        Keyword-only. Each iteration books the point whose gradient it computes (the FISTA
        extrapolation point) and each image's last proposal of a round; an int k also checks
        the proposals of every k-th iteration, which can find slightly sparser counterfactuals
        (about 4 % smaller median L1 with k=1 on MNIST) for one more forward pass of the batch
        every k iterations (+15 to 30 % per iteration with k=1).

    ``explain`` (see :meth:`CounterfactualMethod.explain`) takes a ``keras.Model``; the
    ``iterations`` of its result count the FISTA steps spent on each image.
    """

    def __init__(
        self,
        *,
        max_iterations: int = _DEFAULTS.max_iterations,
        learning_rate: float = _DEFAULTS.learning_rate,
        l1_weight: float = _DEFAULTS.l1_weight,
        l2_weight: float = _DEFAULTS.l2_weight,
        initial_prediction_weight: float = _DEFAULTS.initial_prediction_weight,
        binary_search_steps: int = _DEFAULTS.binary_search_steps,
        confidence: float = _DEFAULTS.confidence,
        clip_min: float = 0.0,
        clip_max: float = 1.0,
        batch_size: int = 128,
        early_stopping_patience: int | None = _DEFAULTS.early_stopping_patience,
        perturbation_resolution: int | None = _DEFAULTS.perturbation_resolution,
        tv_weight: float = _DEFAULTS.tv_weight,
        random_state: int | None = 0,
        proposal_check_interval: int | None = None,
    ) -> None:
        super().__init__(
            confidence=confidence, clip_min=clip_min, clip_max=clip_max, batch_size=batch_size,
            random_state=random_state,
        )
        check_integer("max_iterations", max_iterations, minimum=1)
        check_integer("binary_search_steps", binary_search_steps, minimum=1)
        for key, value in (
            ("early_stopping_patience", early_stopping_patience),
            ("proposal_check_interval", proposal_check_interval),
            ("perturbation_resolution", perturbation_resolution),
        ):
            if value is not None:
                check_integer(key, value, minimum=1)
        for key, value, allow_zero in (
            ("learning_rate", learning_rate, False),
            ("initial_prediction_weight", initial_prediction_weight, False),
            ("l1_weight", l1_weight, True),
            ("l2_weight", l2_weight, True),
            ("tv_weight", tv_weight, True),
        ):
            check_non_negative(key, value, allow_zero=allow_zero)
        self.max_iterations = int(max_iterations)
        self.learning_rate = float(learning_rate)
        self.l1_weight = float(l1_weight)
        self.l2_weight = float(l2_weight)
        self.initial_prediction_weight = float(initial_prediction_weight)
        self.binary_search_steps = int(binary_search_steps)
        self.early_stopping_patience = early_stopping_patience
        self.proposal_check_interval = proposal_check_interval
        self.perturbation_resolution = (
            None if perturbation_resolution is None else int(perturbation_resolution)
        )
        self.tv_weight = float(tv_weight)
        # The compiled search round of the last model and image shape, so that calling explain
        # again (once per stage batch) does not retrace. Only one is kept: the compiled function
        # holds its model, and a stage explaining several models should not keep them all alive.
        self._compiled: tuple | None = None

    def _search(self, model, images, targets, original_probabilities, original_predictions):
        search_round = self._search_round(model, images.shape[1:], original_probabilities.shape[1])
        counterfactuals = images.copy()
        iterations = np.zeros(len(images), dtype=np.int64)
        for start in range(0, len(images), self.batch_size):
            batch = slice(start, start + self.batch_size)
            counterfactuals[batch], iterations[batch] = self._search_batch(
                search_round, images[batch], targets[batch], original_predictions[batch]
            )
        return counterfactuals, iterations

    def _search_batch(self, search_round, originals, targets, original_predictions):
        """Binary search over c for one batch; returns counterfactuals and iterations used."""
        count = len(originals)
        # Images already predicted as their target need no search: they are their own answer.
        active = (targets < 0) | (targets != original_predictions)
        constants = np.full(count, self.initial_prediction_weight, dtype=np.float32)
        lower = np.zeros(count, dtype=np.float32)
        upper = np.full(count, np.inf, dtype=np.float32)
        originals_tensor = tf.constant(originals)
        targets_tensor = tf.constant(targets, dtype=tf.int32)
        predictions_tensor = tf.constant(original_predictions, dtype=tf.int32)
        best_distances = tf.fill([count], np.float32(np.inf))
        best_counterfactuals = originals_tensor
        iterations = np.zeros(count, dtype=np.int64)
        for _ in range(self.binary_search_steps):
            if not active.any():
                break
            best_distances, best_counterfactuals, found, used = search_round(
                originals_tensor,
                targets_tensor,
                predictions_tensor,
                tf.constant(constants),
                best_distances,
                best_counterfactuals,
                tf.constant(active),
            )
            found = found.numpy()
            iterations += used.numpy()
            searched = active & ~found
            upper = np.where(active & found, np.minimum(upper, constants), upper)
            lower = np.where(searched, np.maximum(lower, constants), lower)
            constants = np.where(
                np.isfinite(upper), (lower + upper) / 2, constants * 10
            ).astype(np.float32)
        valid = np.isfinite(best_distances.numpy())
        counterfactuals = np.where(
            valid[:, None, None, None], best_counterfactuals.numpy(), originals
        )
        return counterfactuals, iterations

    def _search_round(self, model, image_shape, num_classes):
        key = (tuple(image_shape), int(num_classes))
        if self._compiled is None or self._compiled[0] is not model or self._compiled[1] != key:
            self._compiled = (model, key, self._compile_search_round(model, *key))
        return self._compiled[2]

    def _compile_search_round(self, model, image_shape, num_classes):
        """Build the ``tf.function`` that runs one binary-search round over a batch."""
        settings = SearchSettings(
            max_iterations=self.max_iterations,
            learning_rate=self.learning_rate,
            l1_weight=self.l1_weight,
            l2_weight=self.l2_weight,
            confidence=self.confidence,
            clip_min=self.clip_min,
            clip_max=self.clip_max,
            # No patience: a count no image reaches within a round.
            patience=self.early_stopping_patience or self.max_iterations + 1,
            proposal_check_interval=self.proposal_check_interval,
            perturbation_resolution=self.perturbation_resolution,
            tv_weight=self.tv_weight,
        )
        round_class = SmoothSearchRound if needs_smooth_round(settings, image_shape) else None
        return build_search_round(
            logit_function(model), image_shape=image_shape, num_classes=num_classes,
            settings=settings, round_class=round_class,
        )
