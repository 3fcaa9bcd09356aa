"""Counterfactual explanations: what minimal pixel change flips a classifier's prediction.

Every method is configured once and called as ``method.explain(model, images, targets)``; it
returns a :class:`~pixelflip.counterfactuals.result.CounterfactualResult`. The methods, one module
each, are those :mod:`pixelflip.config.methods` registers: ``elastic_net`` (batched white-box
gradient search) and ``growing_spheres`` (black-box, predictions only). :func:`make_counterfactual`
builds any of them by name.
"""

from __future__ import annotations

from typing import Any

from pixelflip.config.methods import COUNTERFACTUALS, make_method, method_names

COUNTERFACTUAL_METHODS = method_names(COUNTERFACTUALS)


def make_counterfactual(name: str, **options: Any):
    """The counterfactual method called ``name`` (one of ``COUNTERFACTUAL_METHODS``).

    ``options`` are its constructor's keyword arguments. Raises ValueError for an unknown name or
    an option the method does not take.
    """
    return make_method(COUNTERFACTUALS, name, **options)
