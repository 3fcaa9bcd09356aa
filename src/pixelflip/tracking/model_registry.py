"""Models in MLflow: logging them with a signature, registering versions, aliasing the best one.

Design: one registered model per pipeline experiment (for example ``pixelflip-classifier``).
Every ``train`` and ``attention@<module>`` run adds a version of it, tagged with what it is
(``module`` = base, se, cbam, pam or gc, plus whatever the stage passes: backbone,
``val_accuracy``, ``test_accuracy``) and where it came from (pipeline id, stage, git commit, DVC
experiment name and data sha256, copied from the run). Two kinds of alias point into it:

- ``best``: the version with the highest validation accuracy among the versions trained on
  the same data (same ``pixelflip.data_sha256`` tag), because accuracies measured on different
  data are not comparable. :func:`update_best_alias` moves it.
- ``latest-<module>``: the newest version of each module, moved by :func:`register_version`.

So ``models:/pixelflip-classifier@best`` loads the model to serve, with
``mlflow.tensorflow.load_model`` (a Keras 3 model) or ``mlflow.pyfunc.load_model``.

Every helper is a no-op returning None when no MLflow run is active, like those in
:mod:`pixelflip.tracking`; without a run there is no store to write to. Inside a stage run, a
store that fails makes them return None too (see :mod:`pixelflip.tracking.outage`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pixelflip.stage.library_logs import without_progress_bars, without_registry_notices
from pixelflip.tracking.outage import tolerated
from pixelflip.tracking.runs import (
    DATA_SHA256_TAG,
    EXP_NAME_TAG,
    GIT_COMMIT_TAG,
    PIPELINE_ID_TAG,
    STAGE_TAG,
)

#: Run tags every registered version carries, so a version leads back to code, data and run.
RUN_TAGS_ON_VERSIONS = (PIPELINE_ID_TAG, STAGE_TAG, GIT_COMMIT_TAG, EXP_NAME_TAG, DATA_SHA256_TAG)
#: The version tag naming the attention module (``base`` for the plain CNN).
MODULE_TAG = "module"


def log_keras_model(model: Any, name: str, input_example: Any, *,
                    registered_model_name: str | None = None,
                    tags: Mapping[str, Any] | None = None) -> str | None:
    """Log a Keras model with its signature and an input example to the active run, if any.

    Parameters
    ----------
    model : keras.Model
    name : str
        Name of the logged model in the run (``base``, ``se``, ...).
    input_example : numpy.ndarray
        A small batch, float32 NHWC in [0, 1]; the signature is inferred from it and the
        model's predictions on it.
    registered_model_name : str or None
        When given, the logged model also becomes a new version of this registered model
        (see :func:`register_version` for its tags and aliases).
    tags : mapping or None
        Tags of the logged model and of the registered version (values become strings), for
        example ``{"module": "se", "val_accuracy": 0.91, "test_accuracy": 0.9}``.

    Returns
    -------
    str or None
        The registered version ("1", "2", ...), or None when nothing was registered (no
        ``registered_model_name``, or no active run).

    Raises
    ------
    ValueError
        If ``registered_model_name`` is empty or contains a quote.

    MLflow's ``tensorflow`` flavor is used because the ``keras`` flavor of MLflow 3.17 writes
    the input example before it creates the model folder and fails; the ``tensorflow`` flavor
    stores the same ``.keras`` file and loads back as a Keras 3 model or a pyfunc. Requirements
    are named here because MLflow's inference of them starts a subprocess that costs tens of
    seconds.
    """
    import mlflow

    if registered_model_name is not None:
        _check_name(registered_model_name)
    if mlflow.active_run() is None:
        return None
    import keras
    import tensorflow as tf
    from mlflow.models import infer_signature

    text_tags = {key: str(value) for key, value in (tags or {}).items()}
    signature = infer_signature(input_example, model.predict(input_example, verbose=0))
    logged = None
    # MLflow checks the logged model serves input_example with a predict that prints a bar.
    with tolerated("log the model"), without_progress_bars():
        logged = mlflow.tensorflow.log_model(
            model,
            name=name,
            signature=signature,
            input_example=input_example,
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}",
                              "pixelflip"],
            tags=text_tags or None,
        )
    if registered_model_name is None or logged is None:
        return None
    return register_version(logged.model_uri, registered_model_name, tags=text_tags)


def register_version(model_uri: str, registered_model_name: str, *,
                     tags: Mapping[str, Any] | None = None) -> str | None:
    """Register ``model_uri`` (a model logged by the active run) as a new version.

    The registered model is created on first use. The version carries ``tags`` (values become
    strings) and the active run's :data:`RUN_TAGS_ON_VERSIONS`; when ``tags`` names a
    ``module``, the alias ``latest-<module>`` moves to the new version.

    Returns the new version ("1", "2", ...), or None when no run is active.

    Raises
    ------
    ValueError
        If ``registered_model_name`` is empty or contains a quote (checked with or without a
        run, so a bad name fails the same way whether tracking is on or off).
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    _check_name(registered_model_name)
    active = mlflow.active_run()
    if active is None:
        return None
    client = MlflowClient()
    version = None
    with tolerated("register the model"):
        # Fetched now rather than read from `active`, a snapshot taken when the run started.
        run_tags = client.get_run(active.info.run_id).data.tags
        version_tags = {key: run_tags[key] for key in RUN_TAGS_ON_VERSIONS if key in run_tags}
        version_tags.update({key: str(value) for key, value in (tags or {}).items()})
        with without_registry_notices():  # the stage prints the version itself
            version = mlflow.register_model(model_uri, registered_model_name,
                                            tags=version_tags).version
        if MODULE_TAG in version_tags:
            client.set_registered_model_alias(registered_model_name,
                                              f"latest-{version_tags[MODULE_TAG]}", version)
    return None if version is None else str(version)


def update_best_alias(registered_model_name: str, *, metric: str = "val_accuracy",
                      alias: str = "best", data_sha256: str | None = None) -> str | None:
    """Point ``alias`` at the version with the highest ``metric`` tag, and return that version.

    Parameters
    ----------
    registered_model_name : str
    metric : str
        Version tag holding the score, higher is better; versions without it, or with a value
        that is not a finite number, are not candidates.
    alias : str
    data_sha256 : str or None
        When given, only versions tagged with this data digest (``pixelflip.data_sha256``)
        compete, so that accuracies measured on different data are never compared. Pass the
        digest of the data the pipeline is running on (``tracking.data_sha256(root)``).

    Returns
    -------
    str or None
        The aliased version; on a tie the newest version wins. None, leaving the alias as it
        was, when no version qualifies or no run is active.

    Raises
    ------
    ValueError
        If ``registered_model_name`` or ``data_sha256`` is empty or contains a quote.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    _check_name(registered_model_name)
    query = f"name = '{registered_model_name}'"
    if data_sha256 is not None:
        _check_name(data_sha256, what="data_sha256")
        query += f" AND tags.`{DATA_SHA256_TAG}` = '{data_sha256}'"
    if mlflow.active_run() is None:
        return None
    client = MlflowClient()
    best = None
    with tolerated("move the model alias"):
        scored = [(score, int(version.version)) for version in _search_all(client, query)
                  if (score := _score(version.tags.get(metric))) is not None]
        if scored:
            winner = str(max(scored)[1])
            client.set_registered_model_alias(registered_model_name, alias, winner)
            best = winner
    return best


def _search_all(client: Any, query: str) -> list[Any]:
    versions, token = [], None
    while True:
        page = client.search_model_versions(query, page_token=token)
        versions.extend(page)
        token = page.token
        if not token:
            return versions


def _score(value: str | None) -> float | None:
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if math.isfinite(score) else None


def _check_name(value: str, *, what: str = "registered_model_name") -> None:
    # The value goes into an MLflow search filter, where a quote would end the string early.
    if not value or "'" in value or '"' in value:
        raise ValueError(f"{what}={value!r} is invalid; expected a non-empty name without quotes.")
