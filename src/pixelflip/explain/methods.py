"""Counterfactual methods by name, as ``counterfactuals.methods`` in params.yaml lists them."""

from __future__ import annotations

from pixelflip.explain.gradient import ElasticNetCounterfactual
from pixelflip.explain.method import CounterfactualMethod
from pixelflip.explain.spheres import GrowingSpheresCounterfactual

_METHOD_CLASSES = {cls.name: cls for cls in (ElasticNetCounterfactual, GrowingSpheresCounterfactual)}
COUNTERFACTUAL_METHODS = tuple(_METHOD_CLASSES)


def make_counterfactual(name: str, **options) -> CounterfactualMethod:
    """The counterfactual method called ``name`` (one of ``COUNTERFACTUAL_METHODS``).

    ``options`` are its constructor's keyword arguments. Raises ValueError for an unknown name or
    an option the method does not take.
    """
    if name not in _METHOD_CLASSES:
        raise ValueError(
            f"counterfactual method {name!r} is unknown; allowed: {list(COUNTERFACTUAL_METHODS)}."
        )
    method_class = _METHOD_CLASSES[name]
    try:
        return method_class(**options)
    except TypeError as error:
        raise ValueError(
            f"bad options for counterfactual method {name!r}: {error}; "
            f"see {method_class.__name__}."
        ) from None
