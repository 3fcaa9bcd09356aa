"""Every figure of the project, drawn with matplotlib's Agg renderer.

Functions return a :class:`matplotlib.figure.Figure` that is not registered with pyplot (so no
display backend is needed and nothing leaks between calls); :func:`save_figure` writes it as a
PNG atomically.

- :mod:`~pixelflip.plots.common`: :func:`save_figure`, colours, image drawing.
- :mod:`~pixelflip.plots.counterfactuals`: counterfactual figures and explanation grids.
- :mod:`~pixelflip.plots.changes`: what a counterfactual changed, outlined, and its distractor.
- :mod:`~pixelflip.plots.method_comparison`: every method's counterfactuals of the same images.
- :mod:`~pixelflip.plots.attention`: attention maps over images and counterfactuals.
- :mod:`~pixelflip.plots.explanations`: attribution maps of several methods and metric bars.
- :mod:`~pixelflip.plots.training`: training history.
- :mod:`~pixelflip.plots.comparison`: model comparison bars and the attention comparison table.
"""
