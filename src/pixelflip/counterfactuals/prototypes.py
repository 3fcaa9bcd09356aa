"""Prototype-guided plausibility for the elastic-net search (Van Looveren & Klaise, 2019,
"Interpretable Counterfactual Explanations Guided by Prototypes").

A minimal change that flips a classifier is often no digit at all: a few pixels the model
happens to weigh. Two terms of
:class:`~pixelflip.counterfactuals.elastic_net.ElasticNetCounterfactual` pull the search
towards points that look like real images of their new class:

* ``autoencoder_weight * ||x - AE(x)||_2^2``: the reconstruction error of x under one
  autoencoder trained on every class, low for images like the training images;
* ``prototype_weight * ||ENC(x) - proto_t||_2^2``: the distance of x's encoding (the
  autoencoder's latent layer) to the prototype of the target class t, the mean encoding of the
  ``num_prototype_neighbours`` (K) training images of class t whose encodings are nearest
  ENC(x0). For target ANY_OTHER the target becomes the class, other than the original
  prediction, whose prototype is nearest ENC(x0), so the search runs towards that class.

:func:`fit_guide` trains the autoencoder (:func:`~pixelflip.evaluation.autoencoders.
build_autoencoder`, the recipe of :func:`~pixelflip.evaluation.autoencoders.train_autoencoder`)
on the training split and keeps its training images' encodings; the :class:`PrototypeGuide` it
returns gives each image its prototypes (:func:`guided_targets`, which also picks the target of
an ANY_OTHER search; :func:`check_guide` says when explain comes before fit). Its seed is its own, derived from the method's
random_state with a key no evaluation autoencoder uses: IM1 scores counterfactuals with the
per-class autoencoders of the ``autoencoders`` stage, and a guide that were one of them would
make the search optimise the score it is judged by.

:class:`PrototypeSearchRound` and :class:`PrototypeSmoothSearchRound` are the rounds of
:mod:`~pixelflip.counterfactuals.elastic_net_round` and
:mod:`~pixelflip.counterfactuals.smooth_perturbation` with both terms added to the smooth loss
(:meth:`~pixelflip.counterfactuals.elastic_net_round.SearchRound.plausibility_loss`): one
forward and backward pass of the autoencoder per iteration for the whole working set, the
per-image prototypes an extra (N, D) input of the compiled round. They change the path of the
search, not what it books: the answer is still the valid point with the smallest
``l1_weight * L1 + L2^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from pixelflip.config.checks import check_integer
from pixelflip.counterfactuals.elastic_net_round import SearchRound
from pixelflip.counterfactuals.smooth_perturbation import SmoothSearchRound
from pixelflip.evaluation.autoencoders import train_autoencoder
from pixelflip.evaluation.training_set import check_training_set, to_unit_float

# Mixed into the guide's seeds so that they never equal those of the evaluation autoencoders
# (class indices >= 0 and the shared autoencoder's 2**31 - 1).
_GUIDE_SEED_KEY = 2**31 - 2
# The training recipe of the autoencoders stage (train_class_autoencoders' defaults).
TRAINING_BATCH_SIZE = 32
TRAINING_LEARNING_RATE = 3e-3
_NAME = "prototype_autoencoder"
_PIXEL_AXES = (1, 2, 3)


@dataclass
class PrototypeGuide:
    """A trained all-class autoencoder and the encodings of the images it was trained on.

    Attributes:
        autoencoder: maps (M, H, W, C) float32 images in [0, 1] to their reconstructions.
        search_model: the same network with two outputs, the latent encoding (M, h, w, c) and
            the reconstruction, so that the search gets both from one forward pass.
        encodings: (M', D) float32 flattened encodings of the training images it saw.
        labels: (M',) int64 their classes.
    """

    autoencoder: keras.Model
    search_model: keras.Model
    encodings: np.ndarray
    labels: np.ndarray

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(side) for side in self.autoencoder.inputs[0].shape[1:])

    @property
    def latent_size(self) -> int:
        """D, the number of values of one flattened encoding."""
        return int(self.encodings.shape[1])

    def encode(self, images, *, batch_size: int = 256) -> np.ndarray:
        """(N, D) float32 flattened encodings of (N, H, W, C) images, uint8 or in [0, 1]."""
        return encode(self.search_model, images, batch_size=batch_size)

    def class_prototypes(self, encodings: np.ndarray, *, neighbours: int,
                         num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Each image's prototype of every class, and which classes have one.

        ``encodings`` (N, D) are those of the images x0 (:meth:`encode`). The prototype of class
        j for image i is the mean of the ``neighbours`` encodings of class-j training images
        nearest ``encodings[i]`` (all of them if the class has fewer). Returns prototypes
        (N, num_classes, D) float32, zero for a class without training images, and available
        (num_classes,) bool, whether a class has any.
        """
        encodings = np.asarray(encodings, np.float32)
        prototypes = np.zeros((len(encodings), num_classes, self.latent_size), np.float32)
        available = np.zeros(num_classes, bool)
        squared_norms = np.sum(np.square(encodings), axis=1, keepdims=True)
        for class_index in range(num_classes):
            members = self.encodings[self.labels == class_index]
            if not len(members):
                continue
            available[class_index] = True
            distances = (squared_norms - 2.0 * encodings @ members.T
                         + np.sum(np.square(members), axis=1)[None, :])
            count = min(int(neighbours), len(members))
            nearest = np.argpartition(distances, count - 1, axis=1)[:, :count]
            prototypes[:, class_index] = members[nearest].mean(axis=1)
        return prototypes, available

    def nearest_prototype_classes(self, encodings: np.ndarray, prototypes: np.ndarray,
                                  available: np.ndarray, excluded: np.ndarray) -> np.ndarray:
        """(N,) int64: for each image the available class, other than ``excluded`` (N,) (its
        original prediction), whose prototype (:meth:`class_prototypes`) is nearest its
        encoding; -1 where there is none."""
        distances = np.sum(np.square(prototypes - encodings[:, None, :]), axis=2)
        allowed = available[None, :] & (np.arange(prototypes.shape[1])[None, :]
                                        != np.asarray(excluded)[:, None])
        distances = np.where(allowed, distances, np.inf)
        nearest = np.argmin(distances, axis=1)
        return np.where(allowed.any(axis=1), nearest, -1).astype(np.int64)


def latent_size(search_model: keras.Model) -> int:
    """D, the number of values of one flattened encoding of ``search_model``'s first output."""
    return int(np.prod(search_model.outputs[0].shape[1:]))


def encode(search_model: keras.Model, images, *, batch_size: int = 256) -> np.ndarray:
    """(N, D) float32 flattened encodings (``search_model``'s first output) of (N, H, W, C)
    images, uint8 or in [0, 1], converted one batch at a time."""
    images = np.asarray(images)
    chunks = [np.zeros((0, latent_size(search_model)), np.float32)]
    for start in range(0, len(images), batch_size):
        batch = to_unit_float(images[start : start + batch_size], np.float32)
        encoding, _ = search_model(batch, training=False)
        chunks.append(np.asarray(encoding, np.float32).reshape(len(batch), -1))
    return np.concatenate(chunks)


def guide_seeds(random_state: int | None) -> tuple[int, int]:
    """Two seeds (the training subset's, the autoencoder's weights and shuffling) derived from
    ``random_state`` and the guide's own key; None draws fresh entropy."""
    entropy = None if random_state is None else [int(random_state), _GUIDE_SEED_KEY]
    subset_seed, model_seed = np.random.SeedSequence(entropy).generate_state(2)
    return int(subset_seed), int(model_seed)


def fit_guide(images, labels, *, epochs: int, max_images: int | None,
              random_state: int | None) -> PrototypeGuide:
    """Train the guide's autoencoder on ``images`` (M, H, W, C), uint8 or float in [0, 1], with
    classes ``labels`` (M,), and encode them.

    ``epochs`` >= 1 of Adam on the binary cross-entropy (the autoencoders stage's recipe) on
    at most ``max_images`` of the images, a random subset seeded by ``random_state`` (None: all
    of them), whose encodings the guide keeps for the prototypes.
    """
    images, labels = check_training_set(images, labels)
    check_integer("autoencoder_epochs", epochs, minimum=1)
    if max_images is not None:
        check_integer("autoencoder_max_images", max_images, minimum=1)
    subset_seed, model_seed = guide_seeds(random_state)
    rows = np.arange(len(labels))
    if max_images is not None and len(rows) > max_images:
        rows = np.sort(np.random.default_rng(subset_seed).choice(rows, max_images,
                                                                  replace=False))
        images, labels = images[rows], labels[rows]
    autoencoder = train_autoencoder(
        images, epochs=epochs, batch_size=TRAINING_BATCH_SIZE,
        learning_rate=TRAINING_LEARNING_RATE, random_state=model_seed, name=_NAME,
    )
    latent = autoencoder.get_layer(f"{_NAME}_latent").output
    search_model = keras.Model(autoencoder.inputs[0], [latent, autoencoder.outputs[0]],
                               name=f"{_NAME}_search")
    return PrototypeGuide(autoencoder, search_model, encode(search_model, images), labels)


def check_guide(guide: PrototypeGuide | None, image_shape, num_classes: int, *,
                setting: str) -> None:
    """ValueError, starting with ``setting`` (the weight that needs it, ``"key=value"``), unless
    ``guide`` was trained (fit) on images of ``image_shape`` with labels below ``num_classes``."""
    if guide is None:
        raise ValueError(
            f"{setting} needs the method's autoencoder, which is trained on real images; call "
            "fit(images, labels) with the training split before explain, or set "
            "autoencoder_weight and prototype_weight to 0."
        )
    if guide.image_shape != tuple(image_shape):
        raise ValueError(
            f"{setting}: the autoencoder was fit on images of shape {guide.image_shape}, the "
            f"images explained have shape {tuple(image_shape)}; call fit(images, labels) with "
            "images of their shape."
        )
    largest = int(guide.labels.max())
    if largest >= num_classes:
        raise ValueError(
            f"{setting}: fit saw class {largest}, but the model has only {num_classes} classes; "
            "fit on labels of the model's classes."
        )


def guided_targets(guide: PrototypeGuide, originals, targets, original_predictions, *,
                   neighbours: int | None, num_classes: int, setting: str,
                   batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The targets (N,) int64 the search runs towards and the prototypes (N, D) float32.

    ``originals`` (N, H, W, C) in [0, 1], ``targets`` (N,) (-1 for ANY_OTHER) and
    ``original_predictions`` (N,). With ``neighbours`` K (prototype_weight > 0) a target -1
    becomes the class, other than the original prediction, whose prototype is nearest the
    image's encoding (as in the paper), and each image gets its target's prototype. With None
    the targets stay and the prototypes are zeros, which the round does not use. ValueError,
    starting with ``setting``, when a searched image's target class has no training images.
    """
    if neighbours is None:
        return targets, np.zeros((len(originals), guide.latent_size), np.float32)
    encodings = guide.encode(originals, batch_size=batch_size)
    prototypes, available = guide.class_prototypes(encodings, neighbours=neighbours,
                                                   num_classes=num_classes)
    nearest = guide.nearest_prototype_classes(encodings, prototypes, available,
                                              original_predictions)
    targets = np.where(targets < 0, nearest, targets).astype(np.int64)
    # Images already predicted as their target are not searched and need no prototype.
    searched = targets != original_predictions
    missing = searched & ((targets < 0) | ~available[np.maximum(targets, 0)])
    if missing.any():
        lacking = sorted(set(targets[missing].tolist()))
        raise ValueError(
            f"{setting} needs training images of every target class, and fit saw none of "
            f"classes {lacking} (-1: no class but the original prediction has any); fit on "
            "images of every class, or set prototype_weight to 0."
        )
    return targets, prototypes[np.arange(len(originals)), np.maximum(targets, 0)]


class PlausibilityTerms:
    """The plausibility terms of a search round; mixed in before a round class.

    Takes ``guide`` (a :attr:`PrototypeGuide.search_model`) as a keyword of the constructor and
    the prototypes (N, D) float32 of the images as the one extra input of the round (see
    :func:`~pixelflip.counterfactuals.elastic_net_round.build_search_round`), kept in the
    working set as ``prototypes``.
    """

    def __init__(self, logits_of, num_classes: int, settings, *, guide: keras.Model) -> None:
        super().__init__(logits_of, num_classes, settings)
        self.guide = guide

    def start(self, originals, targets, original_predictions, constants, best_distances,
              best_counterfactuals, active, prototypes):
        work = super().start(originals, targets, original_predictions, constants,
                             best_distances, best_counterfactuals, active)
        return {**work, "prototypes": tf.gather(prototypes, work["rows"])}

    def plausibility_loss(self, work, points):
        """``gamma * ||x - AE(x)||^2 + theta * ||ENC(x) - proto||^2`` (M,) for the (M, H, W, C)
        ``points``, from one forward pass of the autoencoder."""
        settings = self.settings
        encoding, reconstruction = self.guide(points, training=False)
        loss = tf.zeros(tf.shape(points)[:1])
        if settings.autoencoder_weight > 0.0:
            loss += settings.autoencoder_weight * tf.reduce_sum(
                tf.square(points - reconstruction), axis=_PIXEL_AXES)
        if settings.prototype_weight > 0.0:
            flat = tf.reshape(encoding, tf.shape(work["prototypes"]))
            loss += settings.prototype_weight * tf.reduce_sum(
                tf.square(flat - work["prototypes"]), axis=1)
        return loss


class PrototypeSearchRound(PlausibilityTerms, SearchRound):
    """The per-pixel round with the plausibility terms."""


class PrototypeSmoothSearchRound(PlausibilityTerms, SmoothSearchRound):
    """The smooth round (coarse grid and/or total variation) with the plausibility terms, taken
    at the upsampled points."""


def prototype_round_class(smooth: bool) -> type:
    """The round with the plausibility terms, smooth or per-pixel."""
    return PrototypeSmoothSearchRound if smooth else PrototypeSearchRound
