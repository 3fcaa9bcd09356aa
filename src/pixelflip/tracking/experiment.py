"""The pipeline's MLflow experiment: found or created, and marked as a model-training experiment.

MLflow 3 records what an experiment is for in its ``mlflow.experimentKind`` tag:
``custom_model_development`` (shown as "Machine learning": runs, metrics, models) or
``genai_development`` (traces, evaluations, prompts). An experiment without the tag is left to
the UI to guess, and an empty or new one is guessed GenAI. Every pixelflip experiment is
created with :data:`MODEL_TRAINING_KIND`, and an experiment of an older store that lacks it (or
was guessed GenAI) gets it the next time a stage opens it.

The MLflow 3.17 UI also has a global switch between its "GenAI" and "Model training" views,
remembered per browser and "GenAI" in a fresh one, which decides the experiment page's first
tab whatever the tag says; :mod:`pixelflip.tracking.ui` gives the address that opens the runs
table in the "Model training" view.
"""

from __future__ import annotations

from typing import Any

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
#: The experiment kind of every pixelflip experiment: model training, not GenAI.
MODEL_TRAINING_KIND = "custom_model_development"
#: Kinds MLflow counts as model training ("Machine learning"); an experiment a user marked with
#: one of them keeps it.
MODEL_TRAINING_KINDS = frozenset({MODEL_TRAINING_KIND, "finetuning", "forecasting",
                                  "classification", "regression", "automl"})


def experiment_id(client: Any, name: str, artifact_location: str) -> str:
    """The id of experiment ``name``, created with ``artifact_location`` when it is missing.

    Either way the experiment ends up marked as model training (see the module docstring).
    """
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        mark_model_training(client, experiment)
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location,
                                        tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
    except MlflowException as error:
        # A server has no lock of ours: another stage created it between the lookup and here.
        experiment = client.get_experiment_by_name(name)
        if error.error_code != "RESOURCE_ALREADY_EXISTS" or experiment is None:
            raise
        mark_model_training(client, experiment)
        return experiment.experiment_id


def mark_model_training(client: Any, experiment: Any) -> None:
    """Tag ``experiment`` (an ``mlflow.entities.Experiment``) as model training, unless it is
    already of a model-training kind."""
    if experiment.tags.get(EXPERIMENT_KIND_TAG) not in MODEL_TRAINING_KINDS:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG,
                                  MODEL_TRAINING_KIND)
