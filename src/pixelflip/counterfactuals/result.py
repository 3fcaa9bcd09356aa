"""The one result type of every counterfactual method, and the checks and assembly they share.

A counterfactual method only has to turn (model, images, targets) into counterfactual images and
per-image iteration counts; :func:`validate_explain_inputs` checks what it receives and
:func:`build_result` measures the model on what it found, so every method reports success, labels
and probabilities the same way.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pixelflip.explanation.inputs import predict_probabilities
from pixelflip.explanation.targets import ANY_OTHER
from pixelflip.stage.files import atomic_path
from pixelflip.stage.inputs import load_npz_input

_ARRAY_FIELDS = (
    "originals",
    "counterfactuals",
    "perturbations",
    "targets",
    "original_predictions",
    "original_probabilities",
    "counterfactual_predictions",
    "counterfactual_probabilities",
    "success",
    "iterations",
    "seconds",
    "masks",
    "distractor_indices",
    "sources",
)
# Fields added after results were first written: a file without them reads with their defaults.
_OPTIONAL_FIELDS = ("masks", "distractor_indices", "sources")


@dataclasses.dataclass
class CounterfactualResult:
    """Counterfactuals for N images, with what the model says about them before and after.

    Attributes
    ----------
    method : str
        Name of the method that produced them (for example ``"elastic_net"``).
    originals, counterfactuals, perturbations : float32 arrays of shape (N, H, W, C)
        Pixels in [0, 1]; ``perturbations = counterfactuals - originals``.
    targets : int64 array of shape (N,)
        Requested class per image, or ``ANY_OTHER`` (-1) for "any class but the original
        prediction".
    original_predictions, counterfactual_predictions : int64 arrays of shape (N,)
    original_probabilities, counterfactual_probabilities : float32 arrays of shape (N, K)
    success : bool array of shape (N,)
        The counterfactual is predicted as the target, or (target -1) not as the original
        prediction. A failed search returns the original image, so its perturbation is zero.
    iterations : int64 array of shape (N,)
        Optimisation steps spent on each image.
    seconds : float64 array of shape (N,)
        Wall time of the batched call, less any one-off compilation, divided by the number of
        rows (counterfactuals).
    masks : bool array of shape (N, H, W), optional
        The pixel positions the method was allowed to change: for the region method, the union
        of the regions it replaced (no pixel outside it differs from the original). By default,
        the positions where any channel of the perturbation is non-zero.
    distractor_indices : int64 array of shape (N,), optional
        For a method that copies pixels from reference images (the region method's
        ``distractor`` replacement), the index of each image's distractor in the references
        it was fitted on; -1 (the default) where none was used.
    sources : int64 array of shape (N,), optional
        The position, in the images given to ``explain``, of the image each row explains. A
        method asked for several counterfactuals per image (``num_counterfactuals``) returns
        them as consecutive rows sharing one source; by default every row is its own,
        ``arange(N)``.
    """

    method: str
    originals: np.ndarray
    counterfactuals: np.ndarray
    perturbations: np.ndarray
    targets: np.ndarray
    original_predictions: np.ndarray
    original_probabilities: np.ndarray
    counterfactual_predictions: np.ndarray
    counterfactual_probabilities: np.ndarray
    success: np.ndarray
    iterations: np.ndarray
    seconds: np.ndarray
    masks: np.ndarray | None = None
    distractor_indices: np.ndarray | None = None
    sources: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.method = str(self.method)
        for name in ("originals", "counterfactuals", "perturbations"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float32))
        for name in ("original_probabilities", "counterfactual_probabilities"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float32))
        for name in ("targets", "original_predictions", "counterfactual_predictions", "iterations"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        self.success = np.asarray(self.success, dtype=bool)
        self.seconds = np.asarray(self.seconds, dtype=np.float64)

        if self.originals.ndim != 4:
            raise ValueError(
                f"originals has shape {self.originals.shape}; expected (N, H, W, C) images."
            )
        if self.masks is None:
            self.masks = np.any(self.perturbations != 0, axis=-1)
        self.masks = np.asarray(self.masks, dtype=bool)
        if self.masks.shape != self.originals.shape[:3]:
            raise ValueError(f"masks has shape {self.masks.shape}; expected "
                             f"{self.originals.shape[:3]}, one (H, W) mask per image.")
        if self.distractor_indices is None:
            self.distractor_indices = np.full(len(self.originals), -1)
        self.distractor_indices = np.asarray(self.distractor_indices, dtype=np.int64)
        if self.sources is None:
            self.sources = np.arange(len(self.originals))
        self.sources = np.asarray(self.sources, dtype=np.int64)
        for name in ("counterfactuals", "perturbations"):
            shape = getattr(self, name).shape
            if shape != self.originals.shape:
                raise ValueError(
                    f"{name} has shape {shape}; expected the shape of originals "
                    f"{self.originals.shape}."
                )
        count = self.originals.shape[0]
        for name in ("targets", "original_predictions", "counterfactual_predictions", "success",
                     "iterations", "seconds", "distractor_indices", "sources"):
            shape = getattr(self, name).shape
            if shape != (count,):
                raise ValueError(f"{name} has shape {shape}; expected ({count},), one per image.")
        first = self.original_probabilities.shape
        if len(first) != 2 or first[0] != count or first[1] < 2:
            raise ValueError(
                f"original_probabilities has shape {first}; expected ({count}, K) with K >= 2."
            )
        if self.counterfactual_probabilities.shape != first:
            raise ValueError(
                "counterfactual_probabilities has shape "
                f"{self.counterfactual_probabilities.shape}; expected {first}, the shape of "
                "original_probabilities."
            )

    def __len__(self) -> int:
        return int(self.originals.shape[0])

    def first_per_source(self) -> CounterfactualResult:
        """The result with only each image's first counterfactual (all of it, for a result of
        one counterfactual per image), in the order of the images."""
        _, rows = np.unique(self.sources, return_index=True)
        rows = np.sort(rows)
        return dataclasses.replace(self, **{name: getattr(self, name)[rows]
                                            for name in _ARRAY_FIELDS})

    @property
    def num_classes(self) -> int:
        return int(self.original_probabilities.shape[1])

    def save(self, path: str | os.PathLike) -> None:
        """Write every field to one compressed ``.npz`` file, atomically."""
        arrays = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:
            # Writing through a handle stops NumPy from appending ".npz" to the temporary name.
            np.savez_compressed(handle, method=np.array(self.method), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CounterfactualResult:
        """Read a result written by :meth:`save`."""
        arrays = load_npz_input(path, fields=[
            name for name in ("method", *_ARRAY_FIELDS) if name not in _OPTIONAL_FIELDS])
        with np.load(path, allow_pickle=False) as stored:
            arrays.update({name: stored[name] for name in _OPTIONAL_FIELDS if name in stored.files})
        return cls(method=str(arrays.pop("method")), **arrays)

    @classmethod
    def concatenate(cls, results: Sequence[CounterfactualResult]) -> CounterfactualResult:
        """Join results of the same method, image shape and class count, in the given order."""
        results = list(results)
        if not results:
            raise ValueError("results is empty; expected at least one CounterfactualResult.")
        first = results[0]
        for other in results[1:]:
            if other.method != first.method:
                raise ValueError(
                    f"cannot concatenate results of methods {first.method!r} and {other.method!r}; "
                    "expected one method."
                )
            if other.originals.shape[1:] != first.originals.shape[1:]:
                raise ValueError(
                    f"cannot concatenate images of shape {first.originals.shape[1:]} and "
                    f"{other.originals.shape[1:]}; expected one image shape."
                )
            if other.num_classes != first.num_classes:
                raise ValueError(
                    f"cannot concatenate results over {first.num_classes} and {other.num_classes} "
                    "classes; expected one class count."
                )
        joined = {
            name: np.concatenate([getattr(result, name) for result in results])
            for name in _ARRAY_FIELDS
        }
        return cls(method=first.method, **joined)

    def to_frame(self, class_names: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per image: targets, predictions, their probabilities, success and cost.

        ``original_probability`` is the probability of the original prediction on the original
        image; ``counterfactual_probability`` that of the counterfactual prediction on the
        counterfactual. With ``class_names`` (length K) the frame also has ``*_label`` columns.
        """
        rows = np.arange(len(self))
        frame = pd.DataFrame(
            {
                "index": rows,
                "method": self.method,
                "target": self.targets,
                "original_prediction": self.original_predictions,
                "counterfactual_prediction": self.counterfactual_predictions,
                "original_probability": self.original_probabilities[
                    rows, self.original_predictions
                ].astype(np.float64),
                "counterfactual_probability": self.counterfactual_probabilities[
                    rows, self.counterfactual_predictions
                ].astype(np.float64),
                "success": self.success,
                "iterations": self.iterations,
                "seconds": self.seconds,
            }
        )
        if class_names is not None:
            names = list(class_names)
            if len(names) != self.num_classes:
                raise ValueError(
                    f"class_names has {len(names)} entries; expected {self.num_classes}, one per "
                    "class."
                )
            frame["target_label"] = [target_label(int(target), names) for target in self.targets]
            frame["original_label"] = [names[int(index)] for index in self.original_predictions]
            frame["counterfactual_label"] = [
                names[int(index)] for index in self.counterfactual_predictions
            ]
        return frame


def write_result(result: CounterfactualResult, path: str | os.PathLike, *,
                 class_names: Sequence[str], test_indices, true_labels) -> None:
    """``<path>`` (``.npz``, every array) and the same name in ``.csv``: one row per image with
    its test index, true label, targets, predictions, probabilities, success and cost."""
    path = Path(path)
    result.save(path)
    frame = result.to_frame(class_names=class_names)
    frame.insert(0, "test_index", np.asarray(test_indices))
    frame.insert(1, "true_label", [class_names[int(label)] for label in true_labels])
    with atomic_path(path.with_suffix(".csv")) as temporary:
        frame.to_csv(temporary, index=False, float_format="%.6g")


def check_result(result) -> None:
    """Raise ValueError unless ``result`` is a :class:`CounterfactualResult`."""
    if not isinstance(result, CounterfactualResult):
        raise ValueError(f"result is a {type(result).__name__}; expected a CounterfactualResult.")


def score_successes(
    result: CounterfactualResult, score: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """A float64 score per image of ``result``, NaN where its counterfactual failed.

    ``score`` is called once, and only if some counterfactual succeeded, with the int64 indices
    (n,) of the successful images; it returns their n scores in that order.
    """
    scores = np.full(len(result), np.nan)
    valid = np.flatnonzero(result.success)
    if valid.size:
        scores[valid] = score(valid)
    return scores


def target_label(target: int, class_names: Sequence[str] | None) -> str:
    """Human name of a target: the class name, its index, or "any other" for ``ANY_OTHER``."""
    if target == ANY_OTHER:
        return "any other"
    return str(class_names[target]) if class_names is not None else str(target)


def is_success(
    predictions: np.ndarray, targets: np.ndarray, original_predictions: np.ndarray
) -> np.ndarray:
    """Whether each prediction is the target, or differs from the original for ``ANY_OTHER``."""
    return np.where(
        targets == ANY_OTHER, predictions != original_predictions, predictions == targets
    )


def build_result(
    method: str,
    model,
    originals: np.ndarray,
    counterfactuals: np.ndarray,
    targets: np.ndarray,
    original_probabilities: np.ndarray,
    iterations: np.ndarray,
    *,
    started: float,
    batch_size: int = 256,
    masks: np.ndarray | None = None,
    distractor_indices: np.ndarray | None = None,
    sources: np.ndarray | None = None,
) -> CounterfactualResult:
    """Measure the model on the counterfactuals and assemble the result.

    ``started`` is the :func:`time.perf_counter` value at the start of the method's call; the
    per-image seconds cover everything up to and including this final prediction (per row:
    per counterfactual). ``masks``, ``distractor_indices`` and ``sources`` are those of
    :class:`CounterfactualResult` (None: their defaults); ``originals``, ``targets`` and
    ``original_probabilities`` are per row, already repeated for several rows of one source.
    """
    counterfactuals = np.asarray(counterfactuals, dtype=np.float32)
    counterfactual_probabilities = predict_probabilities(
        model, counterfactuals, batch_size=batch_size
    )
    original_predictions = np.argmax(original_probabilities, axis=1).astype(np.int64)
    counterfactual_predictions = np.argmax(counterfactual_probabilities, axis=1).astype(np.int64)
    count = len(originals)
    elapsed = time.perf_counter() - started
    return CounterfactualResult(
        method=method,
        originals=originals,
        counterfactuals=counterfactuals,
        perturbations=counterfactuals - originals,
        targets=targets,
        original_predictions=original_predictions,
        original_probabilities=original_probabilities,
        counterfactual_predictions=counterfactual_predictions,
        counterfactual_probabilities=counterfactual_probabilities,
        success=is_success(counterfactual_predictions, targets, original_predictions),
        iterations=iterations,
        seconds=np.full(count, elapsed / count),
        masks=masks,
        distractor_indices=distractor_indices,
        sources=sources,
    )
