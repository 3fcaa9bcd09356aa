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

A minimal change is often no digit at all. Two more options make the counterfactual plausible
(:mod:`pixelflip.counterfactuals.prototypes`, Van Looveren & Klaise 2019): ``autoencoder_weight``
adds ``gamma * ||x - AE(x)||_2^2``, the reconstruction error under one autoencoder trained on
every class, and ``prototype_weight`` adds ``theta * ||ENC(x) - proto_t||_2^2``, the distance of
x's encoding to the target class's prototype, the mean encoding of the
``num_prototype_neighbours`` training images of class t nearest ENC(x0). With
``prototype_weight`` > 0 a search for ANY_OTHER runs towards the class, other than the original
prediction, whose prototype is nearest ENC(x0). Both need the autoencoder, which
:meth:`ElasticNetCounterfactual.fit` trains on the training split. They combine with the smooth
options, and what is booked is still the smallest ``l1_weight * L1 + L2^2``.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from pixelflip.config.checks import check_integer, check_non_negative
from pixelflip.config.methods import ElasticNetSettings
from pixelflip.counterfactuals.elastic_net_round import SearchSettings, build_search_round
from pixelflip.counterfactuals.method import CounterfactualMethod
from pixelflip.counterfactuals.polishing import polish_counterfactuals
from pixelflip.counterfactuals.prototypes import (
    check_guide,
    fit_guide,
    guided_targets,
    prototype_round_class,
)
from pixelflip.counterfactuals.several import expand_requests
from pixelflip.counterfactuals.smooth_perturbation import SmoothSearchRound, needs_smooth_round
from pixelflip.counterfactuals.trade_off_search import search_trade_off

_SMALLEST_PROBABILITY = 1e-30


class _CompiledSearch(NamedTuple):
    """What one model and image shape compiles once: the search round, the logits polishing
    calls, and whether the round is a smooth one (which is not polished)."""

    model: keras.Model
    key: tuple
    search_round: Any
    logits: Any
    smooth: bool
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
    autoencoder_weight : float >= 0, default 0.0
        gamma, the weight of ``||x - AE(x)||_2^2``, the squared reconstruction error (summed
        over pixels) of the counterfactual under one autoencoder trained on every class by
        :meth:`fit`: the change is drawn towards images like the training images.
    prototype_weight : float >= 0, default 0.0
        theta, the weight of ``||ENC(x) - proto_t||_2^2``, the squared distance of the
        counterfactual's encoding (that autoencoder's latent layer) to the prototype of its
        target class t: the mean encoding of the ``num_prototype_neighbours`` class-t training
        images nearest ENC(x0). With theta > 0 a target ANY_OTHER becomes the class, other than
        the original prediction, whose prototype is nearest ENC(x0); with theta 0 ANY_OTHER is
        untargeted. Both weights shape the path only: the answer is still the valid point with
        the smallest ``l1_weight * L1 + L2^2``. With either > 0, :meth:`fit` must be called
        first, and each iteration also costs a forward and backward pass of the autoencoder.
        Strong terms steepen the smooth loss, so they need a smaller ``learning_rate`` or FISTA
        oscillates and misses valid points (MNIST: theta 20 with K 10 wants 0.01).
    num_prototype_neighbours : int >= 1, default 5
        K, the training images averaged into a prototype (all of a class's if it has fewer).
    autoencoder_epochs : int >= 1, default 5
        Training epochs of that autoencoder (the recipe of the ``autoencoders`` stage).
    autoencoder_max_images : int >= 1 or None, default None
        Train it on (and take prototypes from) a random subset of at most this many training
        images, seeded by ``random_state``; None: all of them.
    polish : bool, default True
        After the search of a per-pixel change (not with the smooth options, whose blobs it
        would break into pixels), reset every change the new prediction does not need
        (:func:`~pixelflip.counterfactuals.polishing.polish_counterfactuals`): a reset pixel is
        its original value exactly, and the counterfactual stays valid and of the same class.
        It costs about 20 forward passes of the batch and removes most changes the proximal
        steps left just above zero (MNIST: median L0 at tolerance 0.01 about halved).
    num_counterfactuals : int >= 1, default 1
        k counterfactuals per image, towards the k most probable classes other than the
        original prediction (a named target first; see
        :func:`~pixelflip.counterfactuals.several.expand_requests`), all searched in the same
        batches. The result has k consecutive rows per image, ``sources`` naming it.
    random_state : int or None, default 0
        Seeds the autoencoder of the plausibility terms (its own seed, not that of any
        evaluation autoencoder) and its training subset. The search itself starts from the
        original images and makes no random choices.
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
        autoencoder_weight: float = _DEFAULTS.autoencoder_weight,
        prototype_weight: float = _DEFAULTS.prototype_weight,
        num_prototype_neighbours: int = _DEFAULTS.num_prototype_neighbours,
        autoencoder_epochs: int = _DEFAULTS.autoencoder_epochs,
        autoencoder_max_images: int | None = _DEFAULTS.autoencoder_max_images,
        polish: bool = _DEFAULTS.polish,
        num_counterfactuals: int = _DEFAULTS.num_counterfactuals,
        random_state: int | None = 0,
        proposal_check_interval: int | None = None,
    ) -> None:
        super().__init__(
            confidence=confidence, clip_min=clip_min, clip_max=clip_max, batch_size=batch_size,
            random_state=random_state,
        )
        check_integer("max_iterations", max_iterations, minimum=1)
        check_integer("binary_search_steps", binary_search_steps, minimum=1)
        check_integer("num_prototype_neighbours", num_prototype_neighbours, minimum=1)
        check_integer("autoencoder_epochs", autoencoder_epochs, minimum=1)
        check_integer("num_counterfactuals", num_counterfactuals, minimum=1)
        if not isinstance(polish, bool):
            raise ValueError(f"polish={polish!r} is not a boolean; set it to true or false.")
        for key, value in (
            ("early_stopping_patience", early_stopping_patience),
            ("proposal_check_interval", proposal_check_interval),
            ("perturbation_resolution", perturbation_resolution),
            ("autoencoder_max_images", autoencoder_max_images),
        ):
            if value is not None:
                check_integer(key, value, minimum=1)
        for key, value, allow_zero in (
            ("learning_rate", learning_rate, False),
            ("initial_prediction_weight", initial_prediction_weight, False),
            ("l1_weight", l1_weight, True),
            ("l2_weight", l2_weight, True),
            ("tv_weight", tv_weight, True),
            ("autoencoder_weight", autoencoder_weight, True),
            ("prototype_weight", prototype_weight, True),
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
        self.autoencoder_weight = float(autoencoder_weight)
        self.prototype_weight = float(prototype_weight)
        self.num_prototype_neighbours = int(num_prototype_neighbours)
        self.autoencoder_epochs = int(autoencoder_epochs)
        self.autoencoder_max_images = (
            None if autoencoder_max_images is None else int(autoencoder_max_images)
        )
        self.polish = polish
        self.num_counterfactuals = int(num_counterfactuals)
        # The autoencoder and training encodings of the plausibility terms, once fit trained them.
        self._guide = None
        # The compiled search round of the last model and image shape, so that calling explain
        # again (once per stage batch) does not retrace. Only one is kept: the compiled function
        # holds its model, and a stage explaining several models should not keep them all alive.
        self._compiled: _CompiledSearch | None = None

    @property
    def uses_autoencoder(self) -> bool:
        """Whether a plausibility term is on, so that :meth:`fit` trains the autoencoder."""
        return self.autoencoder_weight > 0.0 or self.prototype_weight > 0.0

    @property
    def prototype_guide(self):
        """The :class:`~pixelflip.counterfactuals.prototypes.PrototypeGuide` (autoencoder and
        training encodings) :meth:`fit` trained, or None before that or with both weights 0."""
        return self._guide

    def fit(self, images, labels) -> ElasticNetCounterfactual:
        """Train the autoencoder of the plausibility terms on ``images`` (M, H, W, C), uint8 or
        float in [0, 1], with classes ``labels`` (M,), and keep their encodings for the
        prototypes; returns ``self``. Does nothing when both weights are 0."""
        if self.uses_autoencoder:
            self._guide = fit_guide(images, labels, epochs=self.autoencoder_epochs,
                                    max_images=self.autoencoder_max_images,
                                    random_state=self.random_state)
            self._compiled = None
        return self

    def _search(self, model, images, targets, original_probabilities, original_predictions):
        num_classes = original_probabilities.shape[1]
        key = "prototype_weight" if self.prototype_weight > 0.0 else "autoencoder_weight"
        setting = f"{key}={getattr(self, key)!r}"
        if self.uses_autoencoder:
            check_guide(self._guide, images.shape[1:], num_classes, setting=setting)
        search_round = self._search_round(model, images.shape[1:], num_classes)
        # One row per counterfactual asked for: each image's k rows are searched together.
        sources, targets = expand_requests(targets, original_probabilities,
                                           self.num_counterfactuals)
        if self.num_counterfactuals > 1:
            images, original_predictions = images[sources], original_predictions[sources]
        counterfactuals = images.copy()
        iterations = np.zeros(len(images), dtype=np.int64)
        for start in range(0, len(images), self.batch_size):
            batch = slice(start, start + self.batch_size)
            batch_targets, extras = targets[batch], ()
            if self.uses_autoencoder:
                batch_targets, prototypes = guided_targets(
                    self._guide, images[batch], batch_targets, original_predictions[batch],
                    neighbours=self.num_prototype_neighbours if self.prototype_weight else None,
                    num_classes=num_classes, setting=setting, batch_size=self.batch_size,
                )
                extras = (tf.constant(prototypes),)
            counterfactuals[batch], iterations[batch] = search_trade_off(
                search_round, images[batch], batch_targets, original_predictions[batch], extras,
                initial_prediction_weight=self.initial_prediction_weight,
                binary_search_steps=self.binary_search_steps)
            if self.polish and not self._compiled.smooth:
                counterfactuals[batch], _ = polish_counterfactuals(
                    self._compiled.logits, images[batch], counterfactuals[batch], batch_targets,
                    original_predictions[batch], confidence=self.confidence)
        if self.num_counterfactuals == 1:
            return counterfactuals, iterations
        return counterfactuals, iterations, {"sources": sources, "targets": targets}

    def _search_round(self, model, image_shape, num_classes):
        key = (tuple(image_shape), int(num_classes))
        compiled = self._compiled
        if compiled is None or compiled.model is not model or compiled.key != key:
            started = time.perf_counter()
            # The logits function too, which polishing calls: one per model, not per batch.
            search_round = self._compile_search_round(model, *key)
            logits = tf.function(logit_function(model), reduce_retracing=True,
                                 input_signature=[tf.TensorSpec([None, *key[0]])])
            # Trace both now, on one image that is not searched, so that compiling is timed
            # apart (compile_seconds) and no batch's seconds pay for it.
            image = tf.zeros([1, *key[0]])
            no_class = tf.zeros([1], tf.int32)
            extras = ([tf.zeros([1, self._guide.latent_size])] if self.uses_autoencoder else [])
            search_round(image, no_class, no_class, tf.ones([1]), tf.fill([1], np.inf), image,
                         tf.zeros([1], tf.bool), *extras)
            logits(image)
            self._compiled = _CompiledSearch(model, key, search_round, logits,
                                             needs_smooth_round(self._settings(), key[0]))
            self.compile_seconds += time.perf_counter() - started
        return self._compiled.search_round

    def _settings(self) -> SearchSettings:
        """The settings of a search round, from this method's."""
        return SearchSettings(
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
            autoencoder_weight=self.autoencoder_weight,
            prototype_weight=self.prototype_weight,
        )

    def _compile_search_round(self, model, image_shape, num_classes):
        """Build the ``tf.function`` that runs one binary-search round over a batch."""
        settings = self._settings()
        smooth = needs_smooth_round(settings, image_shape)
        if not self.uses_autoencoder:
            return build_search_round(
                logit_function(model), image_shape=image_shape, num_classes=num_classes,
                settings=settings, round_class=SmoothSearchRound if smooth else None,
            )
        # The guide joins the graph; the prototypes are its one extra per-image input.
        return build_search_round(
            logit_function(model), image_shape=image_shape, num_classes=num_classes,
            settings=settings, round_class=prototype_round_class(smooth),
            round_options={"guide": self._guide.search_model},
            extra_inputs=[tf.TensorSpec([None, self._guide.latent_size], tf.float32)],
        )
