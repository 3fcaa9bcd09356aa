"""Counterfactual explanations: what minimal pixel change flips a classifier's prediction.

Every method is configured once and called as ``method.explain(model, images, targets)``; it
returns a :class:`CounterfactualResult`, which :mod:`pixelflip.explain.metrics` scores and
:mod:`pixelflip.plots` draws.
"""

from pixelflip.explain.gradient import ElasticNetCounterfactual, logit_function
from pixelflip.explain.metrics import counterfactual_metrics, summarize_counterfactuals
from pixelflip.explain.result import (
    CounterfactualResult,
    build_result,
    predict_probabilities,
    validate_explain_inputs,
)
from pixelflip.explain.targets import ANY_OTHER, STRATEGIES, resolve_targets

__all__ = [
    "ANY_OTHER",
    "STRATEGIES",
    "CounterfactualResult",
    "ElasticNetCounterfactual",
    "build_result",
    "counterfactual_metrics",
    "logit_function",
    "predict_probabilities",
    "resolve_targets",
    "summarize_counterfactuals",
    "validate_explain_inputs",
]
