"""Where every stage reads and writes, relative to the project root.

``dvc.yaml`` declares the same paths; keeping them in one module means a stage and the tests
never disagree about where an output lives.
"""

from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")
SOURCE_JSON = RAW_DIR / "source.json"
PREPARED_DIR = Path("data/prepared")
MANIFEST_CSV = PREPARED_DIR / "manifest.csv"
DATA_DOCS_DIR = Path("reports/data")
COUNTERFACTUALS_DIR = Path("data/counterfactuals")

MODELS_DIR = Path("models")
BASE_MODEL = MODELS_DIR / "base.keras"
ATTENTION_MODELS_DIR = MODELS_DIR / "attention"

METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")

BASE_MODEL_NAME = "base"


def model_path(model_name: str) -> Path:
    """``base`` is the trained CNN; any other name is an attention module's fine-tuned model."""
    if model_name == BASE_MODEL_NAME:
        return BASE_MODEL
    return ATTENTION_MODELS_DIR / f"{model_name}.keras"


def model_names(attention_modules: list[str]) -> list[str]:
    """Every model the pipeline explains and evaluates, base first."""
    return [BASE_MODEL_NAME, *attention_modules]
