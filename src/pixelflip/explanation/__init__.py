"""What every explanation shares, whichever method explains: the images explained (the ``select``
stage's image sets), the class each should reach, the checked inputs of a method, and models that
can only predict.

- :mod:`~pixelflip.explanation.image_sets`: the seeded sample and the model's mistakes.
- :mod:`~pixelflip.explanation.targets`: target strategies (other, runner-up, class, true label).
- :mod:`~pixelflip.explanation.inputs`: checks of ``(model, images, targets)``, predictions.
- :mod:`~pixelflip.explanation.model_access`: a ``predict``-only model seen as a Keras model.
"""
