"""What every explanation method shares, counterfactual or attribution: its registered name, the
batch size and seed every constructor takes, and a ``repr`` of its constructor's arguments."""

from __future__ import annotations

from pixelflip.config.checks import check_integer
from pixelflip.config.methods import method_repr, name_of


class ExplanationMethod:
    """Base of every explanation method.

    Parameters
    ----------
    batch_size : int >= 1
        Images (or candidate images) per model call.
    random_state : int >= 0 or None
        Seed of the method's random choices, for those that make any.

    ``name`` is the name :mod:`pixelflip.config.methods` registers the class under (the
    ``method`` of its results); ``repr`` shows every constructor argument, read back from the
    attribute of the same name, so a subclass stores each argument under its own name.
    """

    def __init__(self, *, batch_size: int, random_state: int | None) -> None:
        check_integer("batch_size", batch_size, minimum=1)
        if random_state is not None:
            check_integer("random_state", random_state, minimum=0)
        self.batch_size = int(batch_size)
        self.random_state = random_state

    @property
    def name(self) -> str:
        return name_of(type(self))

    def __repr__(self) -> str:
        return method_repr(self)
