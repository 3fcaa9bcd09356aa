"""Attribution maps: which pixels made the model score a class.

Every method is configured once and called as ``method.explain(model, images, targets)``; it
returns an :class:`~pixelflip.attributions.result.AttributionResult`, which
:mod:`pixelflip.evaluation.deletion_insertion` scores. The methods, one module each, are those
:mod:`pixelflip.config.methods` registers: Grad-CAM, Score-CAM and SmoothGrad on tf-keras-vis
(0.8.7, its latest release, works with Keras 3 and TensorFlow 2.21), LIME on the ``lime``
package; their shared frame is :mod:`pixelflip.attributions.method`. All explain the pre-softmax
scores (:func:`~pixelflip.attributions.method.score_model`), so Score-CAM's own softmax turns
them back into probabilities. :func:`make_attribution` builds any of them by name.
"""

from __future__ import annotations

from typing import Any

from pixelflip.config.methods import ATTRIBUTIONS, make_method, method_names

ATTRIBUTION_METHODS = method_names(ATTRIBUTIONS)


def make_attribution(name: str, **options: Any):
    """The attribution method called ``name`` (one of ``ATTRIBUTION_METHODS``) with ``options``.

    Raises ValueError for an unknown name or an option the method does not take.
    """
    return make_method(ATTRIBUTIONS, name, **options)
