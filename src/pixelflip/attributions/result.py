"""The one result type of every attribution method: normalised maps, their targets and cost."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from pixelflip.stage.files import atomic_path
from pixelflip.stage.inputs import load_npz_input

_FIELDS = ("method", "maps", "targets", "seconds")


@dataclasses.dataclass(frozen=True)
class AttributionResult:
    """Attribution maps for N images.

    Attributes
    ----------
    method : str
        One of ``ATTRIBUTION_METHODS``.
    maps : float32 array of shape (N, H, W)
        Importance of each pixel position for the target class, min-max normalised to [0, 1]
        per image (a constant map is all zeros). Only the order within an image is comparable.
    targets : int64 array of shape (N,)
        The class explained for each image.
    seconds : float64 array of shape (N,)
        Wall time of the batch each image was explained in, divided by the batch's size.
    """

    method: str
    maps: np.ndarray
    targets: np.ndarray
    seconds: np.ndarray

    def __post_init__(self) -> None:
        # A frozen dataclass can only coerce its fields through object.__setattr__.
        coerce = object.__setattr__
        coerce(self, "method", str(self.method))
        coerce(self, "maps", np.asarray(self.maps, dtype=np.float32))
        coerce(self, "targets", np.asarray(self.targets, dtype=np.int64))
        coerce(self, "seconds", np.asarray(self.seconds, dtype=np.float64))
        if self.maps.ndim != 3:
            raise ValueError(f"maps has shape {self.maps.shape}; expected (N, H, W).")
        if self.maps.size and not (
            np.all(np.isfinite(self.maps)) and self.maps.min() >= 0 and self.maps.max() <= 1
        ):
            raise ValueError("maps has values outside [0, 1]; expected normalised maps.")
        for name in ("targets", "seconds"):
            shape = getattr(self, name).shape
            if shape != (len(self.maps),):
                raise ValueError(
                    f"{name} has shape {shape}; expected ({len(self.maps)},), one per image."
                )

    def __len__(self) -> int:
        return int(self.maps.shape[0])

    def save(self, path: str | os.PathLike) -> None:
        """Write every field to one compressed ``.npz`` file, atomically."""
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:
            np.savez_compressed(handle, method=np.array(self.method), maps=self.maps,
                                targets=self.targets, seconds=self.seconds)

    @classmethod
    def load(cls, path: str | os.PathLike) -> AttributionResult:
        """Read a result written by :meth:`save`."""
        return cls(**load_npz_input(path, fields=_FIELDS))
