"""Which test images the explanation stages explain: a seeded sample, and the model's mistakes.

The ``select`` stage chooses them once per model (:func:`select_test_images`) and writes them
with :func:`save_image_sets`; the ``attributions`` and ``counterfactuals`` stages read them with
:func:`load_image_sets`, so every explanation of a model is about the same images, and a change
to one method's settings reruns neither the choice nor the other stage.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from pixelflip.config.checks import check_integer
from pixelflip.explanation.inputs import predict_probabilities, unit_float_images
from pixelflip.explanation.targets import resolve_targets
from pixelflip.stage.files import atomic_path, write_json
from pixelflip.stage.inputs import load_npz_input, read_json_input

# "sampled": the images chosen by the seed, explained towards counterfactuals.target;
# "misclassified": the model's mistakes, explained towards their true label.
IMAGE_SETS = ("sampled", "misclassified")


def choose_images(available: int, wanted: int, seed: int) -> np.ndarray:
    """Indices of ``min(wanted, available)`` of ``available`` images drawn by ``seed``, sorted.

    Returns an int64 array; sorted so that tables read in test-set order.
    """
    check_integer("available", available, minimum=0)
    check_integer("wanted", wanted, minimum=0)
    count = min(wanted, available)
    chosen = np.random.default_rng(seed).choice(available, size=count, replace=False)
    return np.sort(chosen).astype(np.int64)


def explained_sets(
    predictions, labels, *, num_images: int, misclassified: int, seed: int
) -> dict[str, np.ndarray]:
    """The test images to explain, by set name (``IMAGE_SETS``).

    Parameters
    ----------
    predictions, labels : int arrays of shape (N,)
        The model's predicted class and the true class of every test image.
    num_images : int >= 1
        Size of the ``sampled`` set (all N if fewer), drawn by ``seed`` from every test image.
    misclassified : int >= 0
        Size of the ``misclassified`` set: that many of the images whose prediction differs from
        the label (all if fewer), drawn by ``seed``; 0 leaves the set empty.
    seed : int

    Returns
    -------
    dict with an int64 array of sorted test indices per set name.
    """
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.shape != labels.shape or predictions.ndim != 1:
        raise ValueError(f"predictions has shape {predictions.shape} and labels {labels.shape}; "
                         "expected two arrays of shape (N,), one entry per test image.")
    check_integer("num_images", num_images, minimum=1)
    check_integer("misclassified", misclassified, minimum=0)
    wrong = np.flatnonzero(predictions != labels)
    return {
        "sampled": choose_images(len(labels), num_images, seed),
        "misclassified": wrong[choose_images(len(wrong), misclassified, seed)],
    }


@dataclasses.dataclass(frozen=True)
class ExplainedSet:
    """One set of test images to explain, with what the model says of them.

    ``indices`` (N,) int64 into the test split; ``images`` (N, H, W, C) float32 in [0, 1];
    ``labels`` (N,) int64 true classes; ``probabilities`` (N, K) float32 model outputs.
    """

    name: str
    indices: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray

    def targets(self, strategy: str, class_index: int | None = None) -> np.ndarray:
        """The class each image should reach, (N,) int64 (see
        :func:`~pixelflip.explanation.targets.resolve_targets`): ``strategy`` for the sampled
        set; the misclassified set always goes towards its true labels, because the question
        there is what minimal change would fix the model's mistake."""
        if self.name == "misclassified":
            strategy = "true_label"
        return resolve_targets(strategy, self.probabilities, labels=self.labels,
                               class_index=class_index)


def select_test_images(
    model, test_images, test_labels, *, num_images: int, misclassified: int, seed: int,
    batch_size: int,
) -> list[ExplainedSet]:
    """The :func:`explained_sets` of ``model`` on the test split, images loaded, in IMAGE_SETS order.

    ``test_images`` (M, H, W, C) uint8 (a memory map is fine: only the chosen images and one
    batch at a time are read) and ``test_labels`` (M,). An empty set has zero-length arrays.
    """
    test_labels = np.asarray(test_labels, dtype=np.int64)
    probabilities = np.concatenate([
        predict_probabilities(model, unit_float_images(test_images[start:start + batch_size]),
                              batch_size=batch_size)
        for start in range(0, len(test_images), batch_size)
    ])
    sets = explained_sets(probabilities.argmax(axis=1), test_labels, num_images=num_images,
                          misclassified=misclassified, seed=seed)
    return [ExplainedSet(name, indices, unit_float_images(test_images[indices]), test_labels[indices],
                         probabilities[indices]) for name, indices in sets.items()]


_SET_FIELDS = ("indices", "images", "labels", "probabilities")
#: The file that lists, per set, the test indices explained (for people and tests to read).
SETS_JSON = "sets.json"


def save_image_sets(image_sets: list[ExplainedSet], folder: str | os.PathLike) -> None:
    """Write each set as ``<folder>/<set>.npz`` (its arrays) and every set's test indices to
    ``<folder>/sets.json``, each file atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for image_set in image_sets:
        with atomic_path(folder / f"{image_set.name}.npz") as temporary, \
                open(temporary, "wb") as handle:
            np.savez_compressed(handle, **{name: getattr(image_set, name) for name in _SET_FIELDS})
    write_json(folder / SETS_JSON,
               {image_set.name: image_set.indices.tolist() for image_set in image_sets})


def load_image_sets(folder: str | os.PathLike) -> list[ExplainedSet]:
    """The sets :func:`save_image_sets` wrote to ``folder``, in ``IMAGE_SETS`` order.

    Raises ValueError naming the folder when a set is missing, so a stage run before ``select``
    says what to run.
    """
    folder = Path(folder)
    names = read_json_input(folder / SETS_JSON) if (folder / SETS_JSON).exists() else {}
    missing = [name for name in IMAGE_SETS if name not in names
               or not (folder / f"{name}.npz").exists()]
    if missing:
        raise ValueError(f"{folder} lacks the image sets {missing}; run `dvc repro select` to "
                         "choose the images to explain")
    sets = []
    for name in IMAGE_SETS:
        stored = load_npz_input(folder / f"{name}.npz", fields=_SET_FIELDS)
        sets.append(ExplainedSet(name, *(stored[field] for field in _SET_FIELDS)))
    return sets
