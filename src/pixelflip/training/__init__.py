"""Training machinery: fitting the classifiers resumably and reproducibly, on any strategy.

- :mod:`~pixelflip.training.classifier`: compile, fit, evaluate and time a classifier.
- :mod:`~pixelflip.training.run`: one training stage's run, from data to registered model.
- :mod:`~pixelflip.training.resume`: per-epoch backups a killed run resumes from.
- :mod:`~pixelflip.training.epochs`: the epoch every random draw of training depends on.
- :mod:`~pixelflip.training.distribute`: distribution strategy and mixed precision.
"""
