"""MLflow tracking: the pipeline's parent and stage runs, per-epoch metrics, the model registry
and the device a run trained on.

- :mod:`~pixelflip.tracking.runs`: one parent run per pipeline execution, a child per stage,
  and the logging helpers every stage uses (no-ops when tracking is off).
- :mod:`~pixelflip.tracking.epochs`: per-epoch metrics of the training stages.
- :mod:`~pixelflip.tracking.model_registry`: logged Keras models and the registered versions.
- :mod:`~pixelflip.tracking.device`: CPU, GPU and strategy of a training run.
"""
