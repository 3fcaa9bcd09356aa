"""Configuration: the typed params of ``params.yaml``, photo profiles, the registry of explanation
methods and the argument checks the whole library shares. Nothing here imports TensorFlow.

- :mod:`~pixelflip.config.params`: every params section and :func:`load_params`.
- :mod:`~pixelflip.config.explanations`: the sections of the explanation stages.
- :mod:`~pixelflip.config.typed`: how a YAML mapping becomes a checked, typed section.
- :mod:`~pixelflip.config.knobs`: :func:`knob`, a field with its constraints.
- :mod:`~pixelflip.config.checks`: argument checks of library functions.
"""
