"""What hardware a stage ran on, so a training run in MLflow says where its seconds came from."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, or the platform's processor string."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_device() -> dict[str, str | int]:
    """Describe the devices TensorFlow will run on.

    Returns a flat dict ready for ``mlflow.log_params``: ``device.type`` ("GPU" or "CPU"),
    ``device.cpu`` and ``device.cpu_count``, and for GPUs ``device.gpu_count``,
    ``device.gpu_names`` and ``device.gpu_memory_mb`` (total per GPU, comma-separated).
    Imports TensorFlow, so call it only from stages that use it anyway.
    """
    import tensorflow as tf

    description: dict[str, str | int] = {
        "device.cpu": cpu_model(),
        "device.cpu_count": os.cpu_count() or 1,
    }
    gpus = tf.config.list_physical_devices("GPU")
    description["device.type"] = "GPU" if gpus else "CPU"
    description["device.gpu_count"] = len(gpus)
    if gpus:
        names, memory = [], []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
            memory.append(str(_gpu_memory_mb(gpu)))
        description["device.gpu_names"] = ", ".join(names)
        description["device.gpu_memory_mb"] = ", ".join(memory)
    return description


def _gpu_memory_mb(gpu) -> int | str:
    # TensorFlow exposes no total-memory query, so ask the driver's own tool; a label is not
    # worth failing a training run over, hence "unknown" when nvidia-smi is absent.
    index = gpu.name.rsplit(":", 1)[-1]
    try:
        output = subprocess.run(
            ["nvidia-smi", f"--id={index}", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
        return int(output.strip().splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return "unknown"
