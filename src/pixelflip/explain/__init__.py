"""Counterfactual explanations: what minimal pixel change flips a classifier's prediction.

Every method is configured once and called as ``method.explain(model, images, targets)``; it
returns a :class:`CounterfactualResult`, which :mod:`pixelflip.explain.metrics` scores,
:mod:`pixelflip.explain.plausibility` and :mod:`pixelflip.explain.im1` compare with real images,
and :mod:`pixelflip.plots` draws.

Attribution maps answer the complementary question, which pixels made the model score a class:
:func:`make_attribution` builds Grad-CAM, Score-CAM, SmoothGrad or LIME, each returning an
:class:`AttributionResult` that :func:`deletion_insertion_auc` scores.
"""

from pixelflip.explain.attribution_metrics import (
    deletion_insertion_auc,
    summarize_deletion_insertion,
)
from pixelflip.explain.attributions import (
    ATTRIBUTION_METHODS,
    AttributionResult,
    GradCAM,
    ScoreCAM,
    SmoothGrad,
    make_attribution,
)
from pixelflip.explain.gradient import ElasticNetCounterfactual, logit_function
from pixelflip.explain.im1 import build_autoencoder, im1_scores, train_class_autoencoders
from pixelflip.explain.lime_attribution import Lime
from pixelflip.explain.methods import COUNTERFACTUAL_METHODS, make_counterfactual
from pixelflip.explain.metrics import counterfactual_metrics, summarize_counterfactuals
from pixelflip.explain.plausibility import nearest_class_distance_ratio
from pixelflip.explain.result import (
    CounterfactualResult,
    build_result,
    predict_probabilities,
    validate_explain_inputs,
)
from pixelflip.explain.selection import (
    IMAGE_SETS,
    ExplainedSet,
    choose_images,
    explained_sets,
    select_test_images,
)
from pixelflip.explain.spheres import GrowingSpheresCounterfactual
from pixelflip.explain.targets import ANY_OTHER, STRATEGIES, resolve_targets

__all__ = [
    "ANY_OTHER",
    "ATTRIBUTION_METHODS",
    "COUNTERFACTUAL_METHODS",
    "IMAGE_SETS",
    "STRATEGIES",
    "AttributionResult",
    "CounterfactualResult",
    "ElasticNetCounterfactual",
    "ExplainedSet",
    "GradCAM",
    "GrowingSpheresCounterfactual",
    "Lime",
    "ScoreCAM",
    "SmoothGrad",
    "build_autoencoder",
    "build_result",
    "choose_images",
    "counterfactual_metrics",
    "deletion_insertion_auc",
    "explained_sets",
    "im1_scores",
    "logit_function",
    "make_attribution",
    "make_counterfactual",
    "nearest_class_distance_ratio",
    "predict_probabilities",
    "resolve_targets",
    "select_test_images",
    "summarize_counterfactuals",
    "summarize_deletion_insertion",
    "train_class_autoencoders",
    "validate_explain_inputs",
]
