"""pixelflip: train image classifiers and explain them with counterfactuals."""

from pixelflip.stage.library_logs import quiet_libraries

__version__ = "0.1.0"

# Here, before any module of the package imports TensorFlow or MLflow: both read their log
# settings once, when imported (see pixelflip.stage.library_logs).
quiet_libraries()
