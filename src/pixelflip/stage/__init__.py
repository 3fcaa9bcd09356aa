"""The frame of a stage script: run it with its params and MLflow run, where it reads and writes,
and atomic file writes.

- :mod:`~pixelflip.stage.frame`: :func:`run_stage`, clean one-line errors.
- :mod:`~pixelflip.stage.layout`: every path a stage reads or writes.
- :mod:`~pixelflip.stage.files`: atomic writes and JSON.
"""
