"""Where every stage reads and writes, relative to the project root.

``dvc.yaml`` declares the same paths; keeping them in one module means a stage and the tests
never disagree about where an output lives.
"""

from __future__ import annotations

from pathlib import Path

# The check stage's mark: its content never changes, so a checked edit of params.yaml reruns
# only the stages that read the edited keys.
PARAMS_CHECKED = Path("reports/params.checked")
RAW_DIR = Path("data/raw")
SOURCE_JSON = RAW_DIR / "source.json"
PREPARED_DIR = Path("data/prepared")
MANIFEST_CSV = PREPARED_DIR / "manifest.csv"
DATA_DOCS_DIR = Path("reports/data")
SELECTED_DIR = Path("data/selected")
COUNTERFACTUALS_DIR = Path("data/counterfactuals")
ATTRIBUTIONS_DIR = Path("data/attributions")
ATTENTION_MAPS_DIR = Path("data/attention_maps")

MODELS_DIR = Path("models")
BASE_MODEL = MODELS_DIR / "base.keras"
ATTENTION_MODELS_DIR = MODELS_DIR / "attention"
AUTOENCODERS_DIR = MODELS_DIR / "autoencoders"
# The independent classifier that re-predicts counterfactuals; not one of the explained models.
ORACLE_MODEL_NAME = "oracle"
ORACLE_MODEL = MODELS_DIR / "oracle.keras"

METRICS_DIR = Path("metrics")
DATA_METRICS = METRICS_DIR / "data.json"
COMPARISON_METRICS = METRICS_DIR / "comparison.json"
EVALUATION_METRICS = METRICS_DIR / "evaluation.json"
ORACLE_METRICS = METRICS_DIR / "oracle.json"
PLOTS_DIR = Path("plots")
TRAIN_PLOTS_DIR = PLOTS_DIR / "train"
COMPARISON_DIR = PLOTS_DIR / "comparison"
ATTRIBUTION_PLOTS_DIR = PLOTS_DIR / "attributions"
ATTENTION_MAP_PLOTS_DIR = PLOTS_DIR / "attention_maps"
EVALUATE_PLOTS_DIR = PLOTS_DIR / "evaluate"
EXPLANATIONS_DIR = PLOTS_DIR / "explanations"
ORACLE_PLOTS_DIR = PLOTS_DIR / "oracle"

# The headline of a run, written by `evaluate`: one small file per model, per counterfactual
# method and for the data, so that `dvc metrics show` prints one short row per file.
SUMMARY_DIR = Path("summary")
SUMMARY_DATA_NAME = "data"
# Everything a rerun measures anew (seconds, milliseconds), apart from the results, which a
# rerun on the same models reproduces byte for byte. Each file is an output of the stage that
# measured it.
TIMINGS_DIR = Path("timings")
ORACLE_TIMINGS = TIMINGS_DIR / "oracle.json"
COMPARISON_TIMINGS = TIMINGS_DIR / "comparison.json"
COMPARISON_TIMINGS_TABLE = TIMINGS_DIR / "comparison.csv"
COUNTERFACTUAL_TIMINGS = TIMINGS_DIR / "counterfactuals.csv"
ATTRIBUTION_TIMINGS = TIMINGS_DIR / "attributions.csv"
# The timing half of the headline, one file per counterfactual method. A folder of its own:
# it is one DVC output of `evaluate`, which must not overlap the other stages' timing files.
SUMMARY_TIMINGS_DIR = TIMINGS_DIR / "summary"

# Training backups live outside every DVC output: DVC deletes a stage's outputs before it reruns
# the stage, and a killed stage must find its last finished epoch there.
BACKUP_DIR = Path(".backup")

BASE_MODEL_NAME = "base"


def model_path(model_name: str) -> Path:
    """``base`` is the trained CNN; any other name is an attention module's fine-tuned model."""
    if model_name == BASE_MODEL_NAME:
        return BASE_MODEL
    return ATTENTION_MODELS_DIR / f"{model_name}.keras"


def model_names(attention_modules: list[str]) -> list[str]:
    """Every model the pipeline explains and evaluates, base first."""
    return [BASE_MODEL_NAME, *attention_modules]


def metrics_path(model_name: str) -> Path:
    """The training metrics of a model: the base CNN's, or one attention module's."""
    if model_name == BASE_MODEL_NAME:
        return METRICS_DIR / "train.json"
    return METRICS_DIR / "attention" / f"{model_name}.json"


def timings_path(model_name: str) -> Path:
    """How long a model took to train and to predict: the base CNN's, or one attention
    module's (beside :func:`metrics_path`, which holds what a rerun reproduces)."""
    if model_name == BASE_MODEL_NAME:
        return TIMINGS_DIR / "train.json"
    return TIMINGS_DIR / "attention" / f"{model_name}.json"


def attention_plots_dir(module: str) -> Path:
    """The training curves of one attention module's fine-tuning."""
    return PLOTS_DIR / "attention" / module


def selected_dir(model_name: str) -> Path:
    """The image sets the ``select`` stage chose for one model."""
    return SELECTED_DIR / model_name


def backup_dir(stage: str) -> Path:
    """Where the ``train`` or ``attention@<module>`` stage keeps its resumable epochs."""
    return BACKUP_DIR / stage.replace("@", "-")


def explanation_path(root: Path, model_name: str, image_set: str, method: str) -> Path:
    """``<root>/<model>/<set>_<method>.npz``: one method's explanations of one image set."""
    return root / model_name / f"{image_set}_{method}.npz"
