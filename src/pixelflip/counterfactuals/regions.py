"""Region counterfactuals: the fewest superpixels whose replacement makes the model say the target.

A pixel search answers "which pixels must change?" with a haze of small changes over the whole
image, which is valid and adversarial and unreadable. This method changes whole regions instead:
each image is split into SLIC superpixels (:mod:`pixelflip.explanation.superpixels`) and every
region has a replacement, chosen by ``replacement``:

* ``blur``: the region heavily blurred ("remove this evidence");
* ``inpaint``: the region filled from its surroundings by OpenCV's Telea inpainting, each region
  on its own;
* ``distractor``: the same region of a real image of the target class (for "any other class",
  the runner-up, which the search then aims at), one of the ``num_distractors`` references given
  to :meth:`fit` nearest to the image in the model's penultimate features, all searched at once,
  the one needing the fewest regions kept (the distractor of Goyal et al. 2019, *Counterfactual
  Visual Explanations*): "this patch of a dog makes it a dog".

The search is greedy and batched (:mod:`pixelflip.counterfactuals.region_search`): every step adds,
for each image still searching, the region whose replacement most raises the target's margin;
all candidates of all images are scored in batched predictions. For a Keras model the gradient
ranks the regions first and only the ``candidates`` best are scored exactly; any other model is
only asked for predictions and every region is scored. Once valid, regions that are not needed
are dropped, one at a time, until removing any kept region undoes the flip.
"""

from __future__ import annotations

import cv2
import numpy as np

from pixelflip.config.checks import check_integer, check_non_negative
from pixelflip.config.methods import REGION_REPLACEMENTS, RegionsSettings
from pixelflip.counterfactuals.method import CounterfactualMethod
from pixelflip.counterfactuals.region_search import (
    PREDICTION_BATCH,
    RegionSearch,
    compiled_forward,
    feature_function,
)
from pixelflip.explanation.inputs import unit_float_images
from pixelflip.explanation.model_access import as_prediction_model
from pixelflip.explanation.superpixels import superpixels
from pixelflip.explanation.targets import ANY_OTHER

_DEFAULTS = RegionsSettings()
# Blur width as a fraction of the image side: wide enough that a region's texture is gone.
_BLUR_SIGMA_FRACTION = 1 / 16
_INPAINT_RADIUS = 3


class RegionCounterfactual(CounterfactualMethod):
    """The smallest set of superpixels whose replacement flips the prediction to the target.

    Parameters
    ----------
    The defaults of the options params.yaml sets are those of
    :class:`~pixelflip.config.methods.RegionsSettings` (section ``counterfactuals.regions``).

    replacement : {"blur", "inpaint", "distractor"}
        What a replaced region shows (see the module docstring). ``distractor`` needs :meth:`fit`.
    num_segments : int >= 2
        About how many SLIC superpixels each image is split into.
    compactness : float > 0
        SLIC compactness: higher gives squarer regions.
    max_regions : int >= 1
        Most regions one counterfactual may replace; an image needing more fails and is
        returned unchanged.
    candidates : int >= 1 or None
        For a Keras model, regions scored exactly per image and step, the best by the gradient's
        first-order estimate of their gain; None scores every region (as for a model that only
        predicts).
    num_references : int >= 1
        References per class kept by :meth:`fit` (a seeded subset), among which distractors are
        chosen.
    num_distractors : int >= 1
        For ``distractor``: the nearest references of the target class each image is searched
        with, all at once; the answer is the one needing the fewest regions (then the smallest
        area).
    confidence : float >= 0
        Margin in log-probability by which the target must beat every other class (target -1:
        by which some other class must beat the original prediction).
    clip_min, clip_max, batch_size, random_state
        As for every counterfactual method; ``random_state`` seeds the reference subset.

    ``explain`` (see :meth:`CounterfactualMethod.explain`) takes a ``keras.Model`` or any object
    with ``predict(images) -> (N, K) probabilities``. Its result's ``masks`` are the union of the
    replaced regions (no pixel outside differs from the original), ``distractor_indices`` index
    the references given to :meth:`fit`, and ``iterations`` count the prediction rounds each
    image took part in (search steps and pruning rounds).
    """

    def __init__(
        self,
        *,
        replacement: str = _DEFAULTS.replacement,
        num_segments: int = _DEFAULTS.num_segments,
        compactness: float = _DEFAULTS.compactness,
        max_regions: int = _DEFAULTS.max_regions,
        candidates: int | None = _DEFAULTS.candidates,
        num_references: int = _DEFAULTS.num_references,
        num_distractors: int = _DEFAULTS.num_distractors,
        confidence: float = _DEFAULTS.confidence,
        clip_min: float = 0.0,
        clip_max: float = 1.0,
        batch_size: int = 128,
        random_state: int | None = 0,
    ) -> None:
        super().__init__(confidence=confidence, clip_min=clip_min, clip_max=clip_max,
                         batch_size=batch_size, random_state=random_state)
        if replacement not in REGION_REPLACEMENTS:
            raise ValueError(f"replacement={replacement!r} is unknown; expected one of "
                             f"{list(REGION_REPLACEMENTS)}.")
        check_integer("num_segments", num_segments, minimum=2)
        check_integer("max_regions", max_regions, minimum=1)
        check_integer("num_references", num_references, minimum=1)
        check_integer("num_distractors", num_distractors, minimum=1)
        if candidates is not None:
            check_integer("candidates", candidates, minimum=1)
        check_non_negative("compactness", compactness, allow_zero=False)
        self.replacement = replacement
        self.num_segments = int(num_segments)
        self.compactness = float(compactness)
        self.max_regions = int(max_regions)
        self.candidates = None if candidates is None else int(candidates)
        self.num_references = int(num_references)
        self.num_distractors = int(num_distractors)
        self._references: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._reference_features: tuple | None = None
        # The compiled forward pass of the last model, so that explaining several image sets
        # with one model traces it once (only one kept: it holds its model alive).
        self._forward: tuple | None = None

    def fit(self, images, labels) -> RegionCounterfactual:
        """Keep the references distractors are drawn from: up to ``num_references`` per class.

        Parameters
        ----------
        images : array of shape (M, H, W, C)
            Real images (the training split), float in [clip_min, clip_max] or uint8 in
            [0, 255] (scaled to [0, 1]).
        labels : int array of shape (M,)
            Their classes.

        Returns ``self``. Only the ``distractor`` replacement uses them.
        """
        images, labels = np.asarray(images), np.asarray(labels).astype(np.int64)
        if images.ndim != 4 or labels.shape != (len(images),):
            raise ValueError(f"fit takes images (M, H, W, C) and labels (M,); got shapes "
                             f"{images.shape} and {labels.shape}.")
        rng = np.random.default_rng(self.random_state)
        kept = np.concatenate([
            rng.permutation(np.flatnonzero(labels == label))[:self.num_references]
            for label in np.unique(labels)])
        kept.sort()
        self._references = (kept, unit_float_images(images[kept]), labels[kept])
        self._reference_features = None
        return self

    def _model_to_search(self, model, images):
        """A Keras model as it is, any other model behind :func:`as_prediction_model`."""
        return as_prediction_model(model, images, fill_value=self.clip_min)

    def explain(self, model, images, targets):
        if self.replacement == "distractor" and self._references is None:
            raise ValueError("replacement 'distractor' copies regions of real images of the "
                             "target class: call fit(train_images, train_labels) before explain.")
        return super().explain(model, images, targets)

    def _search(self, model, images, targets, original_probabilities, original_predictions):
        segments = np.stack([superpixels(image, num_segments=self.num_segments,
                                         compactness=self.compactness) for image in images])
        goals = _goal_classes(targets, original_probabilities)
        fills, distractors = self._fills(model, images, segments, goals)
        # One search row per image and fill (several distractors each): all searched at once.
        count, per_image = fills.shape[:2]
        owner = np.repeat(np.arange(count), per_image)
        fills = fills.reshape(-1, *images.shape[1:])
        if self.replacement == "distractor":
            # Pasting a dog's regions must make it a dog: "any other class" searches for the
            # class the distractors show.
            targets = goals
        search = RegionSearch(model, images[owner], segments[owner], fills, targets[owner],
                              original_predictions[owner], confidence=self.confidence,
                              batch_size=self.batch_size, forward=self._compiled(model))
        selected = search.prune(search.grow(self.max_regions, candidates=self.candidates,
                                            owners=owner))
        masks = search.masks(selected)
        candidates = np.where(masks[..., np.newaxis], fills, images[owner]).astype(np.float32)
        found = search.is_valid(candidates)
        # Per image, the valid row with the fewest regions, then the smallest area.
        cost = np.where(found, selected.sum(axis=1) * (masks[0].size + 1)
                        + masks.reshape(len(owner), -1).sum(axis=1), np.iinfo(np.int64).max)
        best = np.argmin(cost.reshape(count, per_image), axis=1) + np.arange(count) * per_image
        valid = found[best]
        counterfactuals = np.where(valid[:, None, None, None], candidates[best], images)
        rounds = search.rounds.reshape(count, per_image).sum(axis=1)
        return counterfactuals, rounds, {
            "masks": masks[best] & valid[:, None, None],
            "distractor_indices": np.where(valid, distractors.reshape(-1)[best], -1)}

    def _compiled(self, model):
        if self._forward is None or self._forward[0] is not model:
            self._forward = (model, compiled_forward(model))
        return self._forward[1]

    def _fills(self, model, images, segments, goals):
        """The replacements tried per image, (N, F, H, W, C), and the distractor of each (N, F),
        -1 for blur and inpaint (F = 1)."""
        if self.replacement == "blur":
            sigma = max(images.shape[1], images.shape[2]) * _BLUR_SIGMA_FRACTION
            fills = np.stack([_blur(image, sigma) for image in images])[:, np.newaxis]
        elif self.replacement == "inpaint":
            fills = np.stack([_inpaint(image, labels, self.clip_min, self.clip_max)
                              for image, labels in zip(images, segments)])[:, np.newaxis]
        else:
            nearest, reference_images = self._nearest_distractors(model, images, goals)
            fills = reference_images[nearest]
            return np.clip(fills, self.clip_min, self.clip_max), self._references[0][nearest]
        return np.clip(fills, self.clip_min, self.clip_max), np.full(fills.shape[:2], -1)

    def _nearest_distractors(self, model, images, goals):
        """Rows (N, num_distractors) of the kept references nearest to each image in the
        model's feature space among those of its goal class, and the kept reference images."""
        _, reference_images, reference_labels = self._references
        if reference_images.shape[1:] != images.shape[1:]:
            raise ValueError(f"the references given to fit have shape "
                             f"{reference_images.shape[1:]}; expected the images' "
                             f"{images.shape[1:]}.")
        features_of = feature_function(model)
        image_features = features_of(images, PREDICTION_BATCH)
        # The references' features, once per model: a stage explains several image sets with it.
        if self._reference_features is None or self._reference_features[0] is not model:
            self._reference_features = (model, features_of(reference_images, PREDICTION_BATCH))
        reference_features = self._reference_features[1]
        nearest = np.empty((len(images), self.num_distractors), dtype=np.int64)
        for goal in np.unique(goals):
            pool = np.flatnonzero(reference_labels == goal)
            if pool.size < self.num_distractors:
                raise ValueError(f"the references given to fit hold {pool.size} images of class "
                                 f"{goal}, a target here; num_distractors = "
                                 f"{self.num_distractors} needs at least that many of each.")
            rows = np.flatnonzero(goals == goal)
            distances = _squared_distances(image_features[rows], reference_features[pool])
            nearest[rows] = pool[np.argsort(distances, axis=1)[:, :self.num_distractors]]
        return nearest, reference_images


def _goal_classes(targets: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """The class each image's distractor is drawn from: its target, or for ``ANY_OTHER`` the
    runner-up, the class the model already finds most likely after its prediction."""
    runner_up = np.argsort(probabilities, axis=1)[:, -2]
    return np.where(targets == ANY_OTHER, runner_up, targets).astype(np.int64)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    return blurred.reshape(image.shape)


def _inpaint(image: np.ndarray, segments: np.ndarray, clip_min: float,
             clip_max: float) -> np.ndarray:
    """Each region filled from its own surroundings (Telea), the fills put side by side."""
    scale = clip_max - clip_min
    as_bytes = np.round((image - clip_min) / scale * 255).astype(np.uint8)
    fill = np.empty_like(image)
    for label in np.unique(segments):
        region = segments == label
        painted = cv2.inpaint(as_bytes, region.astype(np.uint8), _INPAINT_RADIUS,
                              cv2.INPAINT_TELEA).reshape(image.shape)
        fill[region] = painted[region].astype(np.float32) / 255 * scale + clip_min
    return fill


def _squared_distances(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    return (np.square(queries).sum(1)[:, None] - 2 * queries @ references.T
            + np.square(references).sum(1)[None, :])
