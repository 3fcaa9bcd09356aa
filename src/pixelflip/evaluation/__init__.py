"""How good the models and their explanations are.

- :mod:`~pixelflip.evaluation.counterfactual_metrics`: validity, sparsity, size and cost.
- :mod:`~pixelflip.evaluation.plausibility`: distance to real images of the new class.
- :mod:`~pixelflip.evaluation.autoencoders` and :mod:`~pixelflip.evaluation.im1`: IM1.
- :mod:`~pixelflip.evaluation.deletion_insertion`: deletion and insertion AUC of attributions.
- :mod:`~pixelflip.evaluation.report`: the evaluate stage's per-set scores and tables.
- :mod:`~pixelflip.evaluation.comparison`: the model comparison table of the compare stage.
"""
