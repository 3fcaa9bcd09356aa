"""Where training runs: one device, several GPUs, or several machines; and in which precision.

``make_strategy`` picks the ``tf.distribute`` strategy from the environment:
``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes a cluster of workers,
``MirroredStrategy`` when this machine has two or more GPUs, else TensorFlow's default
(single-device) strategy. Build and compile the model inside ``strategy.scope()``.
``MultiWorkerMirroredStrategy`` configures TensorFlow's collective ops, which is only possible
before TensorFlow runs its first op: call ``make_strategy`` at the very start of a stage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

_CLUSTER_ROLES = ("chief", "worker")
# tf.distribute.MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy: log the
# names users know.
_STRATEGY_NAMES = {"multi_worker": "MultiWorkerMirroredStrategy",
                   "mirrored": "MirroredStrategy", "default": "default"}


def _parse_tf_config(tf_config: str | None) -> dict[str, Any] | None:
    """The checked ``TF_CONFIG`` dict, or None when ``tf_config`` is unset or blank.

    Raises:
        ValueError: invalid JSON, no cluster of chief/worker addresses, no task, a task that is
            not one of the cluster's workers, or parameter servers (not supported).
    """
    if tf_config is None or not tf_config.strip():
        return None
    try:
        config = json.loads(tf_config)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}); set it to "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}} '
            "or unset it."
        ) from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError('TF_CONFIG has no "cluster" object; list the workers as '
                         '"cluster": {"worker": ["host:port", ...]}.')
    if "ps" in cluster:
        raise ValueError("TF_CONFIG names parameter servers (\"ps\"); pixelflip trains with "
                         "MultiWorkerMirroredStrategy only: list chief and workers instead.")
    addresses = {role: cluster.get(role, []) for role in _CLUSTER_ROLES}
    if any(not isinstance(listed, list) for listed in addresses.values()) or \
            not any(addresses.values()):
        raise ValueError('TF_CONFIG names no workers; give "cluster": {"worker": '
                         '["host:port", ...]} (optionally with a "chief").')
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError('TF_CONFIG has no task; give this process\'s role as "task": '
                         '{"type": "worker", "index": <its position in cluster.worker>}.')
    role, index = task["type"], task["index"]
    if role not in _CLUSTER_ROLES or not isinstance(index, int) or \
            not 0 <= index < len(addresses[role]):
        raise ValueError(f"TF_CONFIG task {task!r} is not in the cluster; its type must be "
                         f"chief or worker and its index a position in that list.")
    return config


def strategy_kind(tf_config: str | None, gpu_count: int) -> str:
    """``"multi_worker"``, ``"mirrored"`` or ``"default"`` for this environment.

    Args:
        tf_config: the ``TF_CONFIG`` environment variable (None or blank when unset). Any
            cluster of one or more workers means ``"multi_worker"``, a one-worker cluster
            included (it still trains through collective ops, as on a bigger cluster).
        gpu_count: GPUs visible to this process (>= 0); two or more mean ``"mirrored"``.

    Raises:
        ValueError: a malformed ``TF_CONFIG`` (see the message) or a negative ``gpu_count``.
    """
    if isinstance(gpu_count, bool) or not isinstance(gpu_count, int) or gpu_count < 0:
        raise ValueError(f"gpu_count={gpu_count!r} is invalid; expected an integer >= 0.")
    if _parse_tf_config(tf_config) is not None:
        return "multi_worker"
    return "mirrored" if gpu_count >= 2 else "default"


def make_strategy() -> tuple[tf.distribute.Strategy, dict[str, Any]]:
    """The ``tf.distribute`` strategy for ``TF_CONFIG`` and the visible GPUs, and what to log.

    Returns:
        ``(strategy, info)``; ``info`` has ``strategy`` ("MultiWorkerMirroredStrategy",
        "MirroredStrategy" or "default"), ``replicas`` (replicas in sync), ``workers``
        (machines) and ``gpus`` (GPUs on this machine).

    Raises:
        ValueError: a malformed ``TF_CONFIG``.
    """
    tf_config = os.environ.get("TF_CONFIG")
    gpu_count = len(tf.config.list_physical_devices("GPU"))
    kind = strategy_kind(tf_config, gpu_count)
    workers = 1
    if kind == "multi_worker":
        cluster = _parse_tf_config(tf_config)["cluster"]
        workers = sum(len(cluster.get(role, [])) for role in _CLUSTER_ROLES)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    info = {"strategy": _STRATEGY_NAMES[kind], "replicas": int(strategy.num_replicas_in_sync),
            "workers": workers, "gpus": gpu_count}
    return strategy, info


def task_backup_dir(backup_dir: str | os.PathLike, tf_config: str | None = None) -> Path:
    """This process's own training-backup folder under ``backup_dir``.

    On a cluster of several tasks every worker saves the (identical) training state; each gets
    ``<backup_dir>/<type>-<index>`` so that workers sharing a file system never write one file
    together. Otherwise ``backup_dir`` itself. ``tf_config`` defaults to ``$TF_CONFIG``.
    """
    if tf_config is None:
        tf_config = os.environ.get("TF_CONFIG")
    config = _parse_tf_config(tf_config)
    backup_dir = Path(backup_dir)
    if config is None:
        return backup_dir
    tasks = sum(len(config["cluster"].get(role, [])) for role in _CLUSTER_ROLES)
    if tasks <= 1:
        return backup_dir
    return backup_dir / f"{config['task']['type']}-{config['task']['index']}"


def set_precision(mixed_precision: bool) -> str:
    """Set Keras' global dtype policy; returns its name.

    ``"mixed_float16"`` when ``mixed_precision`` and a GPU is visible (tensor cores; the
    optimizer then needs loss scaling, which ``compile_classifier`` adds), ``"mixed_bfloat16"``
    on CPU (no loss scaling needed), ``"float32"`` when ``mixed_precision`` is False. Layers
    built afterwards compute in the policy's dtype and keep float32 variables; call it before
    building the model.

    Raises:
        ValueError: ``mixed_precision`` is not a bool.
    """
    if mixed_precision not in (True, False) or not isinstance(mixed_precision, bool):
        raise ValueError(f"mixed_precision={mixed_precision!r} is invalid; expected true or false.")
    if not mixed_precision:
        policy = "float32"
    elif tf.config.list_physical_devices("GPU"):
        policy = "mixed_float16"
    else:
        policy = "mixed_bfloat16"
    keras.config.set_dtype_policy(policy)
    return policy
