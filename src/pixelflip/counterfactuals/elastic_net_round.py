"""One binary-search round of the elastic-net counterfactual search, compiled as one graph.

:func:`build_search_round` returns a ``tf.function`` that runs every FISTA iteration of a round
for a whole batch inside a single ``tf.while_loop``: an iteration costs one forward and one
backward pass of the model plus some elementwise ops on the batch, and no Python. Its settings
come as one :class:`SearchSettings`; the pieces of its graph (booking valid points, the FISTA
step, compaction) are the methods of :class:`SearchRound`, traced once per image shape. The
smooth options (a coarse grid, total variation) are its subclass
:class:`~pixelflip.counterfactuals.smooth_perturbation.SmoothSearchRound`, which overrides the
FISTA step and leaves this per-pixel round as it is. The plausibility terms (an autoencoder's
reconstruction error and the distance to a class prototype) come in through the hook
:meth:`SearchRound.plausibility_loss`, filled in by the rounds of
:mod:`~pixelflip.counterfactuals.prototypes`, which combine with either round; their per-image
prototypes are an extra input of the compiled round (``extra_inputs`` of
:func:`build_search_round`).

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

The working set of a round is a dict of tensors with one row per searched image: its original
(``originals``), the key-class mask and direction of its margin, its constant c, its best
distance and counterfactual so far, the FISTA state (``current`` proposal, ``slack``
extrapolation point, ``stall`` count, ``best_objective``), its ``iterations``, whether it was
``found`` valid, whether it is still ``active``, and its row in the whole batch (``rows``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class SearchSettings:
    """The settings of one round, those of
    :class:`~pixelflip.counterfactuals.elastic_net.ElasticNetCounterfactual`, which checks them.

    Attributes:
        max_iterations: FISTA iterations per round, >= 1; the step size decays over them.
        learning_rate: initial step size, > 0.
        l1_weight: beta >= 0, the weight of ``||x - x0||_1``.
        l2_weight: weight >= 0 of ``||x - x0||_2^2``.
        confidence: kappa >= 0, the logit margin by which a valid point's key class wins
            (targeted) or loses (untargeted).
        clip_min, clip_max: pixel range of the images and of every point searched.
        patience: iterations without relative improvement after which an image stops its
            round, >= 1; ``max_iterations + 1`` never stops one early.
        proposal_check_interval: an int k >= 1 also books the proposals of every k-th
            iteration; None books only each image's last one.
        perturbation_resolution, tv_weight: the smooth change of
            :class:`~pixelflip.counterfactuals.smooth_perturbation.SmoothSearchRound`; this
            module's :class:`SearchRound` ignores them.
        autoencoder_weight, prototype_weight: gamma >= 0 and theta >= 0, the weights of the
            plausibility terms of the rounds of :mod:`~pixelflip.counterfactuals.prototypes`;
            this module's :class:`SearchRound` ignores them.
    """

    max_iterations: int
    learning_rate: float
    l1_weight: float
    l2_weight: float
    confidence: float
    clip_min: float
    clip_max: float
    patience: int
    proposal_check_interval: int | None = None
    perturbation_resolution: int | None = None
    tv_weight: float = 0.0
    autoencoder_weight: float = 0.0
    prototype_weight: float = 0.0


def build_search_round(logits_of, *, image_shape, num_classes, settings: SearchSettings,
                       round_class: type | None = None, round_options: Mapping | None = None,
                       extra_inputs: Sequence[tf.TensorSpec] = ()):
    """Compile one round of the search for images of ``image_shape`` and ``num_classes`` logits.

    ``logits_of`` maps (M, H, W, C) float32 images to (M, K) logits; ``settings`` holds the
    search's settings (see :class:`SearchSettings`); ``round_class`` is :class:`SearchRound`
    (None) or a subclass, built as ``round_class(logits_of, num_classes, settings,
    **round_options)``. ``extra_inputs`` are the specs of the per-image tensors (first axis N)
    that the round class's ``start`` takes after ``active``, in order (the prototypes of
    :mod:`~pixelflip.counterfactuals.prototypes`); the plain rounds take none. Their shapes are
    fixed here, so calls with any batch size share one trace.

    Returns ``search_round(originals, targets, original_predictions, constants,
    best_distances, best_counterfactuals, active, *extras) -> (best_distances,
    best_counterfactuals, found, iterations)``: originals and best counterfactuals
    (N, H, W, C) float32, targets and predictions (N,) int32, constants and best distances (N,)
    float32 (inf where none yet), active (N,) bool (the images to search), then one tensor per
    ``extra_inputs`` spec; found (N,) bool says which images reached a valid point in this
    round and iterations (N,) int64 counts their FISTA steps.
    """
    images_spec = tf.TensorSpec([None, *image_shape], tf.float32)
    vector_spec = tf.TensorSpec([None], tf.float32)
    classes_spec = tf.TensorSpec([None], tf.int32)
    round_class = round_class or SearchRound
    return tf.function(
        round_class(logits_of, num_classes, settings, **(round_options or {})).run,
        input_signature=[
            images_spec, classes_spec, classes_spec, vector_spec, vector_spec, images_spec,
            tf.TensorSpec([None], tf.bool), *extra_inputs,
        ],
        reduce_retracing=True,
    )


def margins(logits, key_masks, directions):
    """Margin (M,) of the key class (target, or original prediction with direction -1).

    ``logits`` (M, K) float32, ``key_masks`` (M, K) bool with one True per row, ``directions``
    (M,) float32 of +1 (the key class must win) or -1 (it must lose).
    """
    key_logit = tf.reduce_sum(tf.where(key_masks, logits, 0.0), axis=1)
    best_other = tf.reduce_max(
        tf.where(key_masks, tf.constant(-np.inf, tf.float32), logits), axis=1
    )
    return directions * (key_logit - best_other)


def gather(work, rows):
    """The working set restricted to ``rows`` (int64 positions into it)."""
    return {key: tf.gather(value, rows) for key, value in work.items()}


def write_back(results, work):
    """Write the per-image results of ``work`` into the whole batch's at ``work["rows"]``."""
    indices = tf.expand_dims(work["rows"], 1)
    return {
        key: tf.tensor_scatter_nd_update(results[key], indices, work[key])
        for key in _RESULT_KEYS
    }


class SearchRound:
    """The graph of one round: ``run`` is what :func:`build_search_round` compiles.

    Every method takes and returns working sets (see the module docstring); none runs eagerly.
    """

    def __init__(self, logits_of, num_classes: int, settings: SearchSettings) -> None:
        self.logits_of = logits_of
        self.num_classes = num_classes
        self.settings = settings

    def book(self, work, points, eligible):
        """Keep ``points`` as best counterfactuals where they are valid and closer.

        Costs one forward pass of ``points``; returns the updated working set.
        """
        offset = points - work["originals"]
        # Some kernels (oneDNN convolutions) mis-shape an empty batch, so none is passed to them.
        margin = tf.cond(
            tf.size(work["rows"]) > 0,
            lambda: margins(self.logits_of(points), work["key_masks"], work["directions"]),
            lambda: tf.zeros([0]),
        )
        return self.record(
            work, points, margin, tf.reduce_sum(tf.abs(offset), axis=_PIXEL_AXES),
            tf.reduce_sum(tf.square(offset), axis=_PIXEL_AXES), eligible=eligible,
        )

    def record(self, work, points, margin, l1_distance, squared, *, eligible):
        """Keep ``points`` of known margins and distances where they are valid and closer."""
        settings = self.settings
        valid = eligible & (margin >= settings.confidence) & (margin > 0.0)
        distance = settings.l1_weight * l1_distance + squared
        improved = valid & (distance < work["best_distances"])
        return {
            **work,
            "best_distances": tf.where(improved, distance, work["best_distances"]),
            "best_counterfactuals": tf.where(
                tf.reshape(improved, [-1, 1, 1, 1]), points, work["best_counterfactuals"]
            ),
            "found": work["found"] | valid,
        }

    def settle(self, work):
        """Book each image's last proposal, the one point of its path no gradient pass saw."""
        return self.book(work, work["current"], tf.ones_like(work["found"]))

    def plausibility_loss(self, work, points):
        """Extra smooth loss (M,) of ``points`` (M, H, W, C), the images at the working set's
        extrapolation points, or None for none (this round: the plain search's graph).

        The hook the rounds of :mod:`~pixelflip.counterfactuals.prototypes` fill in; it is
        computed under the gradient tape of :meth:`smooth_gradient`, so it must be
        differentiable in ``points``, and it joins the objective that stops an image early.
        """
        return None

    def smooth_gradient(self, work):
        """Margin, hinge, offset, squared L2 distance, plausibility loss (None without one)
        and gradient of the smooth loss at the extrapolation points ``work["slack"]``: one
        forward and one backward pass (and those of the plausibility terms, if any)."""
        settings, slack = self.settings, work["slack"]
        with tf.GradientTape() as tape:
            tape.watch(slack)
            margin = margins(self.logits_of(slack), work["key_masks"], work["directions"])
            hinge = tf.nn.relu(settings.confidence - margin)
            offset = slack - work["originals"]
            squared = tf.reduce_sum(tf.square(offset), axis=_PIXEL_AXES)
            per_image = work["constants"] * hinge + settings.l2_weight * squared
            plausibility = self.plausibility_loss(work, slack)
            if plausibility is not None:
                per_image += plausibility
            smooth_loss = tf.reduce_sum(per_image)
        return margin, hinge, offset, squared, plausibility, tape.gradient(smooth_loss, slack)

    def proximal_step(self, step, work, gradient):
        """The next proposal and extrapolation point of every image, from the smooth gradient."""
        settings, originals = self.settings, work["originals"]
        clip_min, clip_max = settings.clip_min, settings.clip_max
        # Proximal step of l1_weight * ||x - x0||_1 plus the box constraint: shrink the change
        # towards zero (a change within the threshold becomes exactly zero, and x0 + 0.0 is x0
        # bit for bit), then clip, which leaves x0 itself unchanged since it lies in the range.
        step_size = settings.learning_rate * tf.sqrt(
            1.0 - tf.cast(step, tf.float32) / settings.max_iterations
        )
        change = work["slack"] - step_size * gradient - originals
        shrunk = tf.sign(change) * tf.nn.relu(tf.abs(change) - step_size * settings.l1_weight)
        proposal = tf.clip_by_value(originals + shrunk, clip_min, clip_max)
        # Momentum only on the proposal's support: a pixel the proximal step set back to x0
        # stays x0 in the next extrapolation point instead of overshooting past it, so the
        # points booked are as sparse as the proposals.
        momentum = tf.cast(step, tf.float32) / tf.cast(step + 3, tf.float32)
        next_slack = tf.where(
            proposal == originals,
            originals,
            tf.clip_by_value(
                proposal + momentum * (proposal - work["current"]), clip_min, clip_max
            ),
        )
        return proposal, next_slack

    def fista_step(self, step, work):
        """One FISTA step for every image of the working set; stopped images keep their state."""
        settings, active = self.settings, work["active"]
        slack, constants = work["slack"], work["constants"]
        margin, hinge, offset, squared, plausibility, gradient = self.smooth_gradient(work)
        proposal, next_slack = self.proximal_step(step, work, gradient)
        l1_distance = tf.reduce_sum(tf.abs(offset), axis=_PIXEL_AXES)
        work = self.record(work, slack, margin, l1_distance, squared, eligible=active)
        if settings.proposal_check_interval is not None:
            work = tf.cond(
                (step + 1) % settings.proposal_check_interval == 0,
                lambda: self.book(work, proposal, active),
                lambda: work,
            )
        objective = (
            constants * hinge + settings.l2_weight * squared + settings.l1_weight * l1_distance
        )
        if plausibility is not None:
            objective += plausibility
        return self.advance(work, objective, proposal, next_slack)

    def advance(self, work, objective, proposal, next_slack):
        """Move the active images to their next proposal and extrapolation point; count the
        iterations without progress of ``objective`` (M,) and stop the images out of patience."""
        settings, active = self.settings, work["active"]
        progressed = objective < work["best_objective"] * (1.0 - RELATIVE_IMPROVEMENT)
        stall = tf.where(active, tf.where(progressed, 0, work["stall"] + 1), work["stall"])
        image_active = tf.reshape(active, [-1, 1, 1, 1])
        return {
            **work,
            "current": tf.where(image_active, proposal, work["current"]),
            "slack": tf.where(image_active, next_slack, work["slack"]),
            "stall": stall,
            "best_objective": tf.where(
                active, tf.minimum(objective, work["best_objective"]), work["best_objective"]
            ),
            "iterations": work["iterations"] + tf.cast(active, tf.int64),
            "active": active & (stall < settings.patience),
        }

    def compact(self, results, work):
        """Settle and write back the stopped images, keep only the active ones."""
        stopped = tf.where(~work["active"])[:, 0]
        results = write_back(results, self.settle(gather(work, stopped)))
        return results, gather(work, tf.where(work["active"])[:, 0])

    def body(self, step, results, work):
        """One iteration of the round's ``tf.while_loop``."""
        work = self.fista_step(step, work)
        size = tf.cast(tf.size(work["active"]), tf.float32)
        remaining = tf.reduce_sum(tf.cast(work["active"], tf.float32))
        results, work = tf.cond(
            remaining < COMPACTION_FRACTION * size,
            lambda: self.compact(results, work),
            lambda: (results, work),
        )
        return step + 1, results, work

    def condition(self, step, results, work):
        return (step < self.settings.max_iterations) & tf.reduce_any(work["active"])

    def start(self, originals, targets, original_predictions, constants, best_distances,
              best_counterfactuals, active):
        """The working set of the ``active`` images before their first iteration (a round
        with extra inputs takes them after ``active``)."""
        targeted = targets >= 0
        # The class whose logit must win (targeted) or lose (target -1) by the confidence.
        key_classes = tf.where(targeted, targets, original_predictions)
        rows = tf.where(active)[:, 0]
        work = gather(
            {
                "originals": originals,
                "key_masks": tf.cast(tf.one_hot(key_classes, self.num_classes), tf.bool),
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
        return work

    def run(self, originals, targets, original_predictions, constants, best_distances,
            best_counterfactuals, active, *extras):
        """One round over the batch; see :func:`build_search_round` for shapes and results."""
        work = self.start(originals, targets, original_predictions, constants, best_distances,
                          best_counterfactuals, active, *extras)
        batch_size = tf.shape(originals)[0]
        results = {
            "best_distances": best_distances,
            "best_counterfactuals": best_counterfactuals,
            "found": tf.zeros([batch_size], tf.bool),
            "iterations": tf.zeros([batch_size], tf.int64),
        }
        _, results, work = tf.while_loop(
            self.condition, self.body, (tf.constant(0), results, work)
        )
        results = write_back(results, self.settle(work))
        return tuple(results[key] for key in _RESULT_KEYS)
