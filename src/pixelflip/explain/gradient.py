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
``l1_weight * L1 + L2^2`` seen in any iteration of any round.

The whole batch is one optimisation: per-image constants, masks and best-so-far tensors, and an
inner loop compiled with ``tf.function``.
"""

from __future__ import annotations

import functools
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from pixelflip.explain.checks import check_integer, check_non_negative
from pixelflip.explain.method import CounterfactualMethod

_SMALLEST_PROBABILITY = 1e-30
# An image stops its round early when its objective has not improved by this relative amount
# for ``early_stopping_patience`` consecutive iterations.
_RELATIVE_IMPROVEMENT = 1e-4


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
    max_iterations : int, default 100
        FISTA iterations per binary-search round (an image may stop earlier, see
        ``early_stopping_patience``).
    learning_rate : float, default 0.1
        Initial step size; it decays as ``learning_rate * sqrt(1 - k / max_iterations)``.
    l1_weight : float, default 0.5
        beta, the weight of ``||x - x0||_1``; larger values change fewer pixels.
    l2_weight : float, default 1.0
        Weight of ``||x - x0||_2^2`` in the objective.
    initial_prediction_weight : float, default 1.0
        Starting value of c, the weight of the classification hinge loss.
    binary_search_steps : int, default 4
        Rounds of the per-image search for c: c shrinks (bisection) after a round that found a
        valid counterfactual and grows (bisection, or x10 while no upper bound is known) after
        one that did not.
    confidence : float, default 0.2
        kappa, the logit margin by which the target must win (or the original prediction lose).
    clip_min, clip_max : float, default 0.0 and 1.0
        Pixel range of images and counterfactuals.
    batch_size : int, default 128
        Images optimised together; larger batches are faster per image but use more memory.
    early_stopping_patience : int or None, default 20
        Iterations without relative improvement of an image's objective after which that image
        stops for the current round. None runs every round for ``max_iterations``.
    random_state : int or None, default 0
        Accepted for the interface shared by all methods. This search starts from the original
        images and makes no random choices, so its output depends only on its inputs.

    ``explain`` (see :meth:`CounterfactualMethod.explain`) takes a ``keras.Model``; the
    ``iterations`` of its result count the FISTA steps spent on each image.
    """

    name = "elastic_net"
    repr_settings = (
        "max_iterations", "learning_rate", "l1_weight", "l2_weight", "initial_prediction_weight",
        "binary_search_steps", "confidence", "batch_size",
    )

    def __init__(
        self,
        *,
        max_iterations: int = 100,
        learning_rate: float = 0.1,
        l1_weight: float = 0.5,
        l2_weight: float = 1.0,
        initial_prediction_weight: float = 1.0,
        binary_search_steps: int = 4,
        confidence: float = 0.2,
        clip_min: float = 0.0,
        clip_max: float = 1.0,
        batch_size: int = 128,
        early_stopping_patience: int | None = 20,
        random_state: int | None = 0,
    ) -> None:
        super().__init__(
            confidence=confidence, clip_min=clip_min, clip_max=clip_max, batch_size=batch_size,
            random_state=random_state,
        )
        check_integer("max_iterations", max_iterations, minimum=1)
        check_integer("binary_search_steps", binary_search_steps, minimum=1)
        if early_stopping_patience is not None:
            check_integer("early_stopping_patience", early_stopping_patience, minimum=1)
        for key, value, allow_zero in (
            ("learning_rate", learning_rate, False),
            ("initial_prediction_weight", initial_prediction_weight, False),
            ("l1_weight", l1_weight, True),
            ("l2_weight", l2_weight, True),
        ):
            check_non_negative(key, value, allow_zero=allow_zero)
        self.max_iterations = int(max_iterations)
        self.learning_rate = float(learning_rate)
        self.l1_weight = float(l1_weight)
        self.l2_weight = float(l2_weight)
        self.initial_prediction_weight = float(initial_prediction_weight)
        self.binary_search_steps = int(binary_search_steps)
        self.early_stopping_patience = early_stopping_patience
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
        logits_of = logit_function(model)
        max_iterations = self.max_iterations
        learning_rate = self.learning_rate
        l1_weight = self.l1_weight
        l2_weight = self.l2_weight
        kappa = self.confidence
        clip_min, clip_max = self.clip_min, self.clip_max
        patience = self.early_stopping_patience or max_iterations + 1
        pixel_axes = [1, 2, 3]

        images_spec = tf.TensorSpec([None, *image_shape], tf.float32)
        vector_spec = tf.TensorSpec([None], tf.float32)
        classes_spec = tf.TensorSpec([None], tf.int32)

        @tf.function(
            input_signature=[
                images_spec, classes_spec, classes_spec, vector_spec, vector_spec, images_spec,
                tf.TensorSpec([None], tf.bool),
            ],
            reduce_retracing=True,
        )
        def search_round(
            originals, targets, original_predictions, constants, best_distances,
            best_counterfactuals, active,
        ):
            targeted = targets >= 0
            # The class whose logit must win (targeted) or lose (target -1) by kappa.
            key_classes = tf.where(targeted, targets, original_predictions)
            key_masks = tf.cast(tf.one_hot(key_classes, num_classes), tf.bool)
            directions = tf.where(targeted, 1.0, -1.0)

            def body(step, current, slack, stall, best_objective, iterations, best_distances,
                     best_counterfactuals, found, active):
                # Work only on the images still searching: the batch shrinks as images stop,
                # so the round costs what its active images need, not what the slowest one does.
                rows = tf.where(active)
                take = functools.partial(tf.gather_nd, indices=rows)
                x0, x, y = take(originals), take(current), take(slack)
                key_mask, direction, constant = take(key_masks), take(directions), take(constants)

                def margins(logits):
                    key_logit = tf.reduce_sum(tf.where(key_mask, logits, 0.0), axis=1)
                    best_other = tf.reduce_max(
                        tf.where(key_mask, tf.constant(-np.inf, tf.float32), logits), axis=1
                    )
                    return direction * (key_logit - best_other)

                fraction = tf.cast(step, tf.float32) / max_iterations
                step_size = learning_rate * tf.sqrt(1.0 - fraction)
                with tf.GradientTape() as tape:
                    tape.watch(y)
                    hinge = tf.nn.relu(kappa - margins(logits_of(y)))
                    squared = tf.reduce_sum(tf.square(y - x0), axis=pixel_axes)
                    smooth_loss = tf.reduce_sum(constant * hinge + l2_weight * squared)
                gradient = tape.gradient(smooth_loss, y)

                # Proximal step of l1_weight * ||x - x0||_1 plus the box constraint: shrink the
                # change towards zero, snap small changes to exactly x0, then clip.
                change = y - step_size * gradient - x0
                threshold = step_size * l1_weight
                shrunk = x0 + tf.sign(change) * tf.nn.relu(tf.abs(change) - threshold)
                proposal = tf.where(
                    tf.abs(change) <= threshold, x0, tf.clip_by_value(shrunk, clip_min, clip_max)
                )
                momentum = tf.cast(step, tf.float32) / tf.cast(step + 3, tf.float32)
                next_slack = tf.clip_by_value(
                    proposal + momentum * (proposal - x), clip_min, clip_max
                )

                delta = proposal - x0
                l1_distance = tf.reduce_sum(tf.abs(delta), axis=pixel_axes)
                l2_squared = tf.reduce_sum(tf.square(delta), axis=pixel_axes)
                margin = margins(logits_of(proposal))
                valid = (margin >= kappa) & (margin > 0.0)
                distance = l1_weight * l1_distance + l2_squared
                improved = valid & (distance < take(best_distances))
                objective = (
                    constant * tf.nn.relu(kappa - margin)
                    + l2_weight * l2_squared
                    + l1_weight * l1_distance
                )
                previous_best = take(best_objective)
                progressed = objective < previous_best * (1.0 - _RELATIVE_IMPROVEMENT)
                still_stalled = tf.where(progressed, 0, take(stall) + 1)

                put = functools.partial(tf.tensor_scatter_nd_update, indices=rows)
                return (
                    step + 1,
                    put(current, updates=proposal),
                    put(slack, updates=next_slack),
                    put(stall, updates=still_stalled),
                    put(best_objective, updates=tf.minimum(objective, previous_best)),
                    put(iterations, updates=take(iterations) + 1),
                    put(best_distances,
                        updates=tf.where(improved, distance, take(best_distances))),
                    put(best_counterfactuals, updates=tf.where(
                        tf.reshape(improved, [-1, 1, 1, 1]), proposal, take(best_counterfactuals)
                    )),
                    put(found, updates=take(found) | valid),
                    put(active, updates=still_stalled < patience),
                )

            def condition(step, *state):
                return (step < max_iterations) & tf.reduce_any(state[-1])

            count = tf.shape(originals)[0]
            initial = (
                tf.constant(0),
                originals,
                originals,
                tf.zeros([count], tf.int32),
                tf.fill([count], tf.constant(np.inf, tf.float32)),
                tf.zeros([count], tf.int64),
                best_distances,
                best_counterfactuals,
                tf.zeros([count], tf.bool),
                active,
            )
            final = tf.while_loop(condition, body, initial)
            return final[6], final[7], final[8], final[5]

        return search_round

