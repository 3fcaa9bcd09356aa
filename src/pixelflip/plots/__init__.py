"""Every figure of the project, drawn with matplotlib's Agg renderer.

Functions return a :class:`matplotlib.figure.Figure` that is not registered with pyplot (so no
display backend is needed and nothing leaks between calls); :func:`save_figure` writes it as a
PNG atomically.

- :mod:`~pixelflip.plots.common`: :func:`save_figure`, colours, :func:`perturbation_overlay`.
- :mod:`~pixelflip.plots.counterfactuals`: counterfactual figures and explanation grids.
- :mod:`~pixelflip.plots.attention`: attention maps over images and counterfactuals.
- :mod:`~pixelflip.plots.explanations`: attribution maps of several methods and metric bars.
- :mod:`~pixelflip.plots.training`: training history.
- :mod:`~pixelflip.plots.comparison`: model comparison bars and the attention comparison table.
"""

from pixelflip.plots.attention import (
    ATTENTION_COLORMAP,
    ATTENTION_OPACITY,
    attention_overlay,
    plot_attention_maps,
)
from pixelflip.plots.common import (
    ATTRIBUTION_COLORMAP,
    DPI,
    FAILURE_COLOR,
    PERTURBATION_COLORMAP,
    SUCCESS_COLOR,
    perturbation_overlay,
    save_figure,
)
from pixelflip.plots.comparison import (
    COMPARISON_TABLE_COLUMNS,
    plot_comparison_table,
    plot_model_comparison,
)
from pixelflip.plots.counterfactuals import (
    plot_counterfactual,
    plot_counterfactual_grid,
    plot_explanation_grid,
    plot_explanation_row,
)
from pixelflip.plots.explanations import plot_attribution_maps, plot_explanation_metrics
from pixelflip.plots.training import plot_training_history

__all__ = [
    "ATTENTION_COLORMAP",
    "ATTENTION_OPACITY",
    "ATTRIBUTION_COLORMAP",
    "COMPARISON_TABLE_COLUMNS",
    "DPI",
    "FAILURE_COLOR",
    "PERTURBATION_COLORMAP",
    "SUCCESS_COLOR",
    "attention_overlay",
    "perturbation_overlay",
    "plot_attention_maps",
    "plot_attribution_maps",
    "plot_comparison_table",
    "plot_counterfactual",
    "plot_counterfactual_grid",
    "plot_explanation_grid",
    "plot_explanation_metrics",
    "plot_explanation_row",
    "plot_model_comparison",
    "plot_training_history",
    "save_figure",
]
