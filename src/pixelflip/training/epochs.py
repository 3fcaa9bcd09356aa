"""The epoch a training run is in, shared by the input pipeline and the training callbacks.

Every random choice of a training epoch (the order of the batches, the augmentation draws, the
dropout masks) is made a function of ``(seed, epoch)`` instead of "whatever the random state
reached by now". That is what lets a killed run resume at epoch ``e`` and still finish with the
same weights as a run that was never interrupted: the resumed process sees exactly the batches
the first one would have seen. The training loop sets :attr:`EpochClock.epoch` at the start of
each epoch; the input pipeline reads it when a pass over the data begins.
"""

from __future__ import annotations


class EpochClock:
    """A mutable holder of the current (0-based) training epoch.

    Parameters
    ----------
    epoch : int
        The epoch the next pass over the training data belongs to.
    """

    def __init__(self, epoch: int = 0):
        self.epoch = int(epoch)

    def __repr__(self) -> str:
        return f"EpochClock(epoch={self.epoch})"
