"""pixelflip: train image classifiers and explain them with counterfactuals."""

__version__ = "0.1.0"
