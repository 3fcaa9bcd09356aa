"""Growing Spheres counterfactual search (Laugel et al. 2018), black-box and batched.

Only model predictions are used, never a gradient. For every image x0:

1. **Halving.** Sample ``num_samples`` points uniformly in the ball of radius ``initial_radius``
   around x0; while some already reach the target ("enemies"), halve the radius and resample.
2. **Growing.** From the last radius r without enemies, sample layers ``[r, r + w]``,
   ``[r + w, r + 2w]``, ... (``w = step * r``) until one holds an enemy, for at most
   ``max_layers`` layers.
3. The answer is the enemy closest to x0 (L2) among all samples.
4. **Sparsification** (the paper's feature selection): reset the changed pixels with the
   smallest change to their original values, in order, while the prediction stays valid, so
   pixels the counterfactual does not need end *exactly* unchanged.

Adaptations to images and batches:

* Samples are clipped to ``[clip_min, clip_max]``; distances are measured after clipping.
* Radii are per-value RMS (radius r is the L2 distance ``r * sqrt(H * W * C)``), so one setting
  suits 28x28 digits and 128x128 RGB photos alike.
* Directions are Gaussian in a ``sample_resolution``-sided grid per channel, upsampled
  bilinearly: independent per-pixel noise barely moves a CNN until the radius is huge, smooth
  blobs flip it far closer. ``sample_resolution=None`` samples every pixel independently.
* A pixel is a position (h, w) with all its channels, as in the ``l0`` metric: ranked by its
  largest channel change and reset whole. Sparsification searches the *number* of smallest
  changes reset, ``sparsification_candidates`` numbers per image and model call, instead of one
  call per pixel; where validity is monotone in that number this is the paper's greedy answer.
* Candidates of many images share each model call (about ``batch_size`` rows); each image draws
  from its own random stream, so answers do not depend on how images are grouped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from pixelflip.config.checks import check_integer, check_non_negative
from pixelflip.config.methods import GrowingSpheresSettings
from pixelflip.counterfactuals.method import CounterfactualMethod
from pixelflip.explanation.inputs import predict_probabilities
from pixelflip.explanation.model_access import as_prediction_model

_SMALLEST_PROBABILITY = 1e-30
_DEFAULTS = GrowingSpheresSettings()
# The margin a candidate must always clear, whatever ``confidence`` says: build_result predicts
# the answer again in a different batch, where rounding moves logits by ~1e-6, and that must not
# turn an accepted counterfactual at the very edge of the class into a reported failure.
_MINIMUM_MARGIN = 1e-3
# An image whose ball of radius initial_radius / 2**20 still holds enemies sits on the decision
# boundary; its closest enemy so far is the answer.
_MAX_HALVINGS = 20


class GrowingSpheresCounterfactual(CounterfactualMethod):
    """Growing Spheres counterfactual search that only queries model predictions.

    Parameters
    ----------
    The defaults of the options params.yaml sets are those of
    :class:`~pixelflip.config.methods.GrowingSpheresSettings` (section
    ``counterfactuals.growing_spheres``).

    num_samples : int
        Points sampled per image in each ball or layer (one model row each).
    initial_radius : float
        Radius of the first ball, in per-value RMS units (see the module docstring).
    step : float
        Width of each growing layer, as a fraction of the radius the halving stopped at.
    max_layers : int
        Growing layers sampled before an image's search gives up.
    sample_resolution : int or None
        Side of the grid in which directions are drawn before bilinear upsampling (capped at
        the image's sides); None samples every pixel independently.
    sparsify : bool, default True
        Run the sparsification step on every counterfactual found.
    sparsification_candidates : int
        Reset counts tried per image and model call by the sparsification search.
    confidence : float
        Logit margin (difference of log-probabilities) by which the target must win, or the
        original prediction lose; at least 1e-3 is always required.
    clip_min, clip_max : float, default 0.0 and 1.0
        Pixel range of images and counterfactuals.
    batch_size : int, default 256
        Candidate images per model call (rows of all images together).
    random_state : int or None, default 0
        Seed of the sampling. Image i of a call draws from stream i of
        ``numpy.random.SeedSequence(random_state)``, so the same seed, settings and images give
        identical results. None draws fresh entropy.

    Models
    ------
    ``model`` is either a ``keras.Model`` mapping (N, H, W, C) float32 images to (N, K)
    probabilities, called as ``model(images, training=False)``, or any other object with a
    ``predict(images)`` method returning (N, K) non-negative scores (probabilities), such as a
    scikit-learn classifier wrapped to take image arrays or a remote prediction service. Either
    way it is only ever asked for predictions (see :mod:`pixelflip.explanation.model_access`);
    ``explain`` raises ValueError for an object without ``predict`` or whose predictions are not
    (N, K) finite non-negative scores.

    The ``iterations`` of a result count the candidate images the model scored for each image
    (its queries).
    """

    # Grouped as the search runs: sampling, radii, sparsification; then the shared settings.
    def __init__(
        self,
        *,
        num_samples: int = _DEFAULTS.num_samples,
        sample_resolution: int | None = _DEFAULTS.sample_resolution,
        initial_radius: float = _DEFAULTS.initial_radius, step: float = _DEFAULTS.step,
        max_layers: int = _DEFAULTS.max_layers, sparsify: bool = True,
        sparsification_candidates: int = _DEFAULTS.sparsification_candidates,
        confidence: float = _DEFAULTS.confidence, clip_min: float = 0.0, clip_max: float = 1.0,
        batch_size: int = 256, random_state: int | None = 0,
    ) -> None:
        super().__init__(
            confidence=confidence, clip_min=clip_min, clip_max=clip_max, batch_size=batch_size,
            random_state=random_state,
        )
        for key, value in (
            ("num_samples", num_samples),
            ("max_layers", max_layers),
            ("sparsification_candidates", sparsification_candidates),
            ("sample_resolution", 1 if sample_resolution is None else sample_resolution),
        ):
            check_integer(key, value, minimum=1)
        check_non_negative("initial_radius", initial_radius, allow_zero=False)
        check_non_negative("step", step, allow_zero=False)
        if not isinstance(sparsify, (bool, np.bool_)):
            raise ValueError(f"sparsify={sparsify!r} is invalid; expected True or False.")
        self.num_samples = int(num_samples)
        self.initial_radius = float(initial_radius)
        self.step = float(step)
        self.max_layers = int(max_layers)
        self.sample_resolution = None if sample_resolution is None else int(sample_resolution)
        self.sparsify = bool(sparsify)
        self.sparsification_candidates = int(sparsification_candidates)

    def _model_to_search(self, model, images):
        """A Keras model as it is, any other model behind :func:`as_prediction_model`."""
        return as_prediction_model(model, images, fill_value=self.clip_min)

    def _search(self, model, images, targets, original_probabilities, original_predictions):
        search = _Search(self, model, images, targets, original_predictions)
        counterfactuals, found = search.grow_spheres()
        if self.sparsify:
            counterfactuals = search.sparsify(counterfactuals, found)
        return counterfactuals, search.queries


class _Search:
    """The state of one ``explain`` call: the images, their targets and their random streams."""

    def __init__(self, settings, model, originals, targets, original_predictions) -> None:
        self.settings = settings
        self.model = model
        self.originals = originals
        self.targets = targets
        self.original_predictions = original_predictions
        count = len(originals)
        self.queries = np.zeros(count, dtype=np.int64)
        self.streams = [
            np.random.default_rng(seed)
            for seed in np.random.SeedSequence(settings.random_state).spawn(count)
        ]
        self.grid_shape, self.upsample = _upsampler(originals.shape[1:], settings.sample_resolution)
        # Radii are per-value RMS; this turns them into L2 distances.
        self.radius_scale = np.float32(np.sqrt(originals[0].size))

    def grow_spheres(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps 1-3 for every image; returns the closest enemies and whether each was found."""
        settings = self.settings
        count = len(self.originals)
        # Images already predicted as their target are their own answer.
        active = (self.targets < 0) | (self.targets != self.original_predictions)
        halving = np.ones(count, dtype=bool)
        halvings = np.zeros(count, dtype=np.int64)
        layers = np.zeros(count, dtype=np.int64)
        inner = np.zeros(count)
        outer = np.full(count, settings.initial_radius)
        width = np.zeros(count)
        best = self.originals.copy()
        best_distances = np.full(count, np.inf)

        def sample(index):
            return self._sample_layer(index, inner[index], outer[index])

        while active.any():
            indices = np.flatnonzero(active)
            found = np.zeros(count, dtype=bool)
            for index, candidates, valid in self._evaluate(indices, sample, settings.num_samples):
                if not valid.any():
                    continue
                found[index] = True
                distances = np.sqrt(
                    np.square(candidates - self.originals[index]).reshape(len(candidates), -1)
                    .sum(axis=1, dtype=np.float64)
                )
                closest = int(np.argmin(np.where(valid, distances, np.inf)))
                if distances[closest] < best_distances[index]:
                    best_distances[index] = distances[closest]
                    best[index] = candidates[closest]

            shrink = active & halving & found
            start_growing = active & halving & ~found
            grew = active & ~halving
            outer[shrink] /= 2
            halvings[shrink] += 1
            halving[start_growing] = False
            width[start_growing] = settings.step * outer[start_growing]
            layers[grew] += 1
            # The next layer starts where the last empty ball or layer ended.
            move_out = start_growing | (grew & ~found)
            inner[move_out] = outer[move_out]
            outer[move_out] += width[move_out]
            active &= ~(grew & found) & (halvings < _MAX_HALVINGS) & (layers < settings.max_layers)
        return best, np.isfinite(best_distances)

    def sparsify(self, counterfactuals: np.ndarray, found: np.ndarray) -> np.ndarray:
        """Step 4: reset the smallest changes of every found counterfactual while it stays valid.

        For each image, ``lower`` smallest changes are known to be resettable and ``upper`` are
        known not to be (resetting all of them gives back the original image); every round tries
        up to ``sparsification_candidates`` counts strictly between them and narrows the gap
        until it is one.
        """
        count = len(self.originals)
        changes = np.abs(counterfactuals - self.originals).max(axis=-1).reshape(count, -1)
        unchanged = (changes == 0).sum(axis=1)
        # Unchanged pixels sort first, so "reset the first unchanged + k pixels of this order"
        # resets the k smallest changes.
        ranks = np.argsort(np.argsort(changes, axis=1, kind="stable"), axis=1, kind="stable")
        ranks = ranks.reshape(counterfactuals.shape[:-1])
        lower = np.zeros(count, dtype=np.int64)
        upper = changes.shape[1] - unchanged
        trials: dict[int, np.ndarray] = {}
        most = self.settings.sparsification_candidates

        def with_resets(index: int, resets: np.ndarray) -> np.ndarray:
            keep_original = ranks[index][None] < (unchanged[index] + resets)[:, None, None]
            return np.where(
                keep_original[..., None], self.originals[index][None], counterfactuals[index][None]
            )

        def candidates_of(index: int) -> np.ndarray:
            trials[index] = _counts_between(lower[index], upper[index], most)
            return with_resets(index, trials[index])

        while len(indices := np.flatnonzero(found & (upper - lower > 1))):
            for index, _, valid in self._evaluate(indices, candidates_of, most):
                tried = trials[index]
                if valid.any():
                    lower[index] = tried[valid].max()
                above = tried[~valid & (tried > lower[index])]
                if len(above):
                    upper[index] = above.min()
        sparse = counterfactuals.copy()
        for index in np.flatnonzero(found & (lower > 0)):
            sparse[index] = with_resets(index, lower[index : index + 1])[0]
        return sparse

    def _sample_layer(self, index: int, inner: float, outer: float) -> np.ndarray:
        """``num_samples`` clipped points uniform in the layer inner <= radius <= outer."""
        settings = self.settings
        stream = self.streams[index]
        shape = (settings.num_samples, *self.grid_shape)
        directions = self.upsample(stream.standard_normal(shape, dtype=np.float32))
        norms = np.sqrt(np.square(directions).reshape(settings.num_samples, -1).sum(axis=1))
        # Uniform in the layer's volume: the radius's cumulative distribution grows as radius**d
        # in the d dimensions the directions span.
        dimension = int(np.prod(self.grid_shape))
        floor = (inner / outer) ** dimension
        uniform = stream.random(settings.num_samples)
        radii = outer * (floor + uniform * (1.0 - floor)) ** (1.0 / dimension)
        lengths = radii * self.radius_scale / np.maximum(norms, _SMALLEST_PROBABILITY)
        perturbations = directions * lengths.astype(np.float32)[:, None, None, None]
        return np.clip(self.originals[index] + perturbations, settings.clip_min, settings.clip_max)

    def _evaluate(
        self, indices: Sequence[int], make_candidates: Callable[[int], np.ndarray], rows: int
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Score the candidates of many images, yielding (index, candidates, valid) per image.

        Images are grouped so that a model call scores about ``batch_size`` rows; ``rows`` is the
        most candidates one image makes.
        """
        per_call = max(1, self.settings.batch_size // rows)
        for start in range(0, len(indices), per_call):
            group = [int(index) for index in indices[start : start + per_call]]
            candidates = [make_candidates(index) for index in group]
            sizes = [len(batch) for batch in candidates]
            probabilities = predict_probabilities(
                self.model, np.concatenate(candidates), batch_size=self.settings.batch_size
            )
            owners = np.repeat(group, sizes)
            valid = self._is_valid(probabilities, owners)
            self.queries[group] += sizes
            bounds = np.cumsum([0, *sizes])
            for position, index in enumerate(group):
                rows_of_image = slice(bounds[position], bounds[position + 1])
                yield index, candidates[position], valid[rows_of_image]

    def _is_valid(self, probabilities: np.ndarray, owners: np.ndarray) -> np.ndarray:
        """Whether each row reaches its image's target by the required logit margin."""
        targets = self.targets[owners]
        targeted = targets >= 0
        key_classes = np.where(targeted, targets, self.original_predictions[owners])[:, None]
        scores = np.log(np.maximum(probabilities, _SMALLEST_PROBABILITY))
        key = np.take_along_axis(scores, key_classes, axis=1)[:, 0]
        np.put_along_axis(scores, key_classes, -np.inf, axis=1)
        best_other = scores.max(axis=1)
        margins = np.where(targeted, key - best_other, best_other - key)
        return margins >= max(self.settings.confidence, _MINIMUM_MARGIN)


def _upsampler(image_shape: tuple[int, int, int], resolution: int | None):
    """The grid shape (h, w, C) of directions and a function upsampling (n, h, w, C) grids to
    (n, H, W, C) bilinearly, with half-pixel centres like ``tf.image.resize``."""
    height, width, channels = image_shape
    grid_shape = (height, width, channels)
    if resolution is not None:
        grid_shape = (min(resolution, height), min(resolution, width), channels)
    if grid_shape == image_shape:
        return grid_shape, lambda grids: grids
    rows = _interpolation_matrix(grid_shape[0], height)
    columns = _interpolation_matrix(grid_shape[1], width)

    def upsample(grids: np.ndarray) -> np.ndarray:
        return np.einsum("hs,wt,nstc->nhwc", rows, columns, grids, optimize=True)

    return grid_shape, upsample


def _interpolation_matrix(source: int, target: int) -> np.ndarray:
    """(target, source) linear interpolation weights; the identity when the sizes match."""
    positions = np.clip((np.arange(target) + 0.5) * source / target - 0.5, 0, source - 1)
    below = np.floor(positions).astype(np.int64)
    fraction = (positions - below).astype(np.float32)
    matrix = np.zeros((target, source), dtype=np.float32)
    np.add.at(matrix, (np.arange(target), below), 1.0 - fraction)
    np.add.at(matrix, (np.arange(target), np.minimum(below + 1, source - 1)), fraction)
    return matrix


def _counts_between(lower: int, upper: int, most: int) -> np.ndarray:
    """Up to ``most`` integers strictly between lower and upper, evenly spread."""
    if upper - lower - 1 <= most:
        return np.arange(lower + 1, upper, dtype=np.int64)
    spread = np.round(np.linspace(lower, upper, most + 2)[1:-1]).astype(np.int64)
    return np.unique(np.clip(spread, lower + 1, upper - 1))

