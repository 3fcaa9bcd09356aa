"""One binary-search round of the elastic-net counterfactual search, compiled as one graph.

:func:`build_search_round` returns a ``tf.function`` that runs every FISTA iteration of a round
for a whole batch inside a single ``tf.while_loop``: an iteration costs one forward and one
backward pass of the model plus some elementwise ops on the batch, and no Python.

Two choices keep an iteration at that bare forward+backward pass:

* **No second forward pass.** The logits of the FISTA extrapolation point ``y`` are computed
  anyway for its gradient, so ``y`` is the point whose validity, distance and objective are
  booked (best-so-far and early stopping). Momentum acts only on the support of the proposal,
  so ``y`` leaves every pixel the proximal step set back to its original value exactly there:
  the booked points are as sparse as the proposals. The one point of an image's path that no
  gradient pass sees, its last proposal, is checked when the image leaves the round: one forward
  pass per image and round. ``proposal_check_interval=k`` also checks the proposals of every
  k-th iteration, at one more forward pass per k iterations.
* **Compaction only when it pays.** Images that stop early are frozen by masks; the working set
  is gathered down to its active images only when fewer than ``COMPACTION_FRACTION`` of it are
  active, a handful of times per round rather than every iteration, so stopped images never
  cost more than a third of the work of the active ones.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# An image stops its round early when its objective has not improved by this relative amount
# for ``patience`` consecutive iterations.
RELATIVE_IMPROVEMENT = 1e-4
# The working set is compacted when fewer than this fraction of its images are still active.
COMPACTION_FRACTION = 0.75
_PIXEL_AXES = (1, 2, 3)
# Per-image tensors written back to the whole batch when images leave the working set.
_RESULT_KEYS = ("best_distances", "best_counterfactuals", "found", "iterations")


def build_search_round(
    logits_of, *, image_shape, num_classes, max_iterations, learning_rate, l1_weight, l2_weight,
    confidence, clip_min, clip_max, patience, proposal_check_interval=None,
):
    """Compile one round of the search for images of ``image_shape`` and ``num_classes`` logits.

    ``logits_of`` maps (M, H, W, C) float32 images to (M, K) logits. The other arguments are the
    settings of :class:`~pixelflip.explain.gradient.ElasticNetCounterfactual` (``patience`` an
    int, ``max_iterations + 1`` for none; ``proposal_check_interval`` an int or None).

    Returns ``search_round(originals, targets, original_predictions, constants,
    best_distances, best_counterfactuals, active) -> (best_distances, best_counterfactuals,
    found, iterations)``: originals and best counterfactuals (N, H, W, C) float32, targets and
    predictions (N,) int32, constants and best distances (N,) float32 (inf where none yet),
    active (N,) bool (the images to search); found (N,) bool says which images reached a valid
    point in this round and iterations (N,) int64 counts their FISTA steps.
    """

    def margins(logits, key_masks, directions):
        """Margin of the key class (target, or original prediction with direction -1)."""
        key_logit = tf.reduce_sum(tf.where(key_masks, logits, 0.0), axis=1)
        best_other = tf.reduce_max(
            tf.where(key_masks, tf.constant(-np.inf, tf.float32), logits), axis=1
        )
        return directions * (key_logit - best_other)

    def book(work, points, eligible):
        """Keep ``points`` as best counterfactuals where they are valid and closer.

        Costs one forward pass of ``points``; returns the updated working set.
        """
        offset = points - work["originals"]
        # Some kernels (oneDNN convolutions) mis-shape an empty batch, so none is passed to them.
        margin = tf.cond(
            tf.size(work["rows"]) > 0,
            lambda: margins(logits_of(points), work["key_masks"], work["directions"]),
            lambda: tf.zeros([0]),
        )
        return record(
            work, points, margin, tf.reduce_sum(tf.abs(offset), axis=_PIXEL_AXES),
            tf.reduce_sum(tf.square(offset), axis=_PIXEL_AXES), eligible=eligible,
        )

    def record(work, points, margin, l1_distance, squared, *, eligible):
        """Keep ``points`` of known margins and distances where they are valid and closer."""
        valid = eligible & (margin >= confidence) & (margin > 0.0)
        distance = l1_weight * l1_distance + squared
        improved = valid & (distance < work["best_distances"])
        return {
            **work,
            "best_distances": tf.where(improved, distance, work["best_distances"]),
            "best_counterfactuals": tf.where(
                tf.reshape(improved, [-1, 1, 1, 1]), points, work["best_counterfactuals"]
            ),
            "found": work["found"] | valid,
        }

    def settle(work):
        """Book each image's last proposal, the one point of its path no gradient pass saw."""
        return book(work, work["current"], tf.ones_like(work["found"]))

    def fista_step(step, work):
        """One FISTA step for every image of the working set; stopped images keep their state."""
        originals, slack, constants = work["originals"], work["slack"], work["constants"]
        with tf.GradientTape() as tape:
            tape.watch(slack)
            margin = margins(logits_of(slack), work["key_masks"], work["directions"])
            hinge = tf.nn.relu(confidence - margin)
            offset = slack - originals
            squared = tf.reduce_sum(tf.square(offset), axis=_PIXEL_AXES)
            smooth_loss = tf.reduce_sum(constants * hinge + l2_weight * squared)
        gradient = tape.gradient(smooth_loss, slack)

        # Proximal step of l1_weight * ||x - x0||_1 plus the box constraint: shrink the change
        # towards zero (a change within the threshold becomes exactly zero, and x0 + 0.0 is x0
        # bit for bit), then clip, which leaves x0 itself unchanged since it lies in the range.
        step_size = learning_rate * tf.sqrt(1.0 - tf.cast(step, tf.float32) / max_iterations)
        change = slack - step_size * gradient - originals
        shrunk = tf.sign(change) * tf.nn.relu(tf.abs(change) - step_size * l1_weight)
        proposal = tf.clip_by_value(originals + shrunk, clip_min, clip_max)
        # Momentum only on the proposal's support: a pixel the proximal step set back to x0
        # stays x0 in the next extrapolation point instead of overshooting past it, so the
        # points booked below are as sparse as the proposals.
        momentum = tf.cast(step, tf.float32) / tf.cast(step + 3, tf.float32)
        next_slack = tf.where(
            proposal == originals,
            originals,
            tf.clip_by_value(
                proposal + momentum * (proposal - work["current"]), clip_min, clip_max
            ),
        )

        active = work["active"]
        l1_distance = tf.reduce_sum(tf.abs(offset), axis=_PIXEL_AXES)
        work = record(work, slack, margin, l1_distance, squared, eligible=active)
        if proposal_check_interval is not None:
            work = tf.cond(
                (step + 1) % proposal_check_interval == 0,
                lambda: book(work, proposal, active),
                lambda: work,
            )
        objective = constants * hinge + l2_weight * squared + l1_weight * l1_distance
        progressed = objective < work["best_objective"] * (1.0 - RELATIVE_IMPROVEMENT)
        stall = tf.where(active, tf.where(progressed, 0, work["stall"] + 1), work["stall"])
        image_active = tf.reshape(active, [-1, 1, 1, 1])
        return {
            **work,
            "current": tf.where(image_active, proposal, work["current"]),
            "slack": tf.where(image_active, next_slack, slack),
            "stall": stall,
            "best_objective": tf.where(
                active, tf.minimum(objective, work["best_objective"]), work["best_objective"]
            ),
            "iterations": work["iterations"] + tf.cast(active, tf.int64),
            "active": active & (stall < patience),
        }

    def write_back(results, work):
        indices = tf.expand_dims(work["rows"], 1)
        return {
            key: tf.tensor_scatter_nd_update(results[key], indices, work[key])
            for key in _RESULT_KEYS
        }

    def gather(work, rows):
        return {key: tf.gather(value, rows) for key, value in work.items()}

    def compact(results, work):
        """Settle and write back the stopped images, keep only the active ones."""
        stopped = tf.where(~work["active"])[:, 0]
        results = write_back(results, settle(gather(work, stopped)))
        return results, gather(work, tf.where(work["active"])[:, 0])

    def body(step, results, work):
        work = fista_step(step, work)
        size = tf.cast(tf.size(work["active"]), tf.float32)
        remaining = tf.reduce_sum(tf.cast(work["active"], tf.float32))
        results, work = tf.cond(
            remaining < COMPACTION_FRACTION * size,
            lambda: compact(results, work),
            lambda: (results, work),
        )
        return step + 1, results, work

    def condition(step, results, work):
        return (step < max_iterations) & tf.reduce_any(work["active"])

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
        # The class whose logit must win (targeted) or lose (target -1) by the confidence.
        key_classes = tf.where(targeted, targets, original_predictions)
        rows = tf.where(active)[:, 0]
        work = gather(
            {
                "originals": originals,
                "key_masks": tf.cast(tf.one_hot(key_classes, num_classes), tf.bool),
                "directions": tf.where(targeted, 1.0, -1.0),
                "constants": constants,
                "best_distances": best_distances,
                "best_counterfactuals": best_counterfactuals,
            },
            rows,
        )
        count = tf.shape(rows)[0]
        work.update(
            rows=rows,
            current=work["originals"],
            slack=work["originals"],
            stall=tf.zeros([count], tf.int32),
            best_objective=tf.fill([count], tf.constant(np.inf, tf.float32)),
            iterations=tf.zeros([count], tf.int64),
            found=tf.zeros([count], tf.bool),
            active=tf.ones([count], tf.bool),
        )
        batch_size = tf.shape(originals)[0]
        results = {
            "best_distances": best_distances,
            "best_counterfactuals": best_counterfactuals,
            "found": tf.zeros([batch_size], tf.bool),
            "iterations": tf.zeros([batch_size], tf.int64),
        }
        _, results, work = tf.while_loop(condition, body, (tf.constant(0), results, work))
        results = write_back(results, settle(work))
        return tuple(results[key] for key in _RESULT_KEYS)

    return search_round
