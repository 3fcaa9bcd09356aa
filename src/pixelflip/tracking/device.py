"""What hardware a stage ran on, so a training run in MLflow says where its seconds came from."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")


def cpu_model(cpuinfo: str | os.PathLike = CPUINFO) -> str:
    """The CPU's marketing name from ``cpuinfo`` (the first ``model name`` line).

    Falls back to the platform's processor string, then its machine type, when the file is
    missing or names no model (ARM kernels often leave it out).
    """
    cpuinfo = Path(cpuinfo)
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_device(*, extra: Mapping[str, Any] | None = None) -> dict[str, str | int]:
    """Describe the devices TensorFlow will run on, as MLflow parameters.

    Returns a flat dict ready for ``mlflow.log_params``: ``device.type`` ("GPU" or "CPU"),
    ``device.cpu`` (model name) and ``device.cpu_count``, ``device.gpu_count``, and when there
    are GPUs ``device.gpu_names`` and ``device.gpu_memory_mb`` (total MiB per GPU, or
    "unknown" where NVML cannot tell; comma-separated, in TensorFlow's order). Entries of
    ``extra`` are added as ``device.<key>`` (``{"strategy": "MirroredStrategy", "replicas": 2}``
    gives ``device.strategy`` and ``device.replicas``); None values are left out.
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
        names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
                 for gpu in gpus]
        description["device.gpu_names"] = ", ".join(names)
        description["device.gpu_memory_mb"] = ", ".join(
            str(memory) for memory in match_gpu_memory(names, nvml_gpu_memory()))
    for key, value in (extra or {}).items():
        if value is not None:
            description[key if key.startswith("device.") else f"device.{key}"] = value
    return description


def nvml_gpu_memory() -> list[tuple[str, int]]:
    """``(name, total MiB)`` of every GPU the NVIDIA driver sees; empty without driver or GPU."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # no driver, or no GPU
        return []
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(index)
                   for index in range(pynvml.nvmlDeviceGetCount())]
        return [(_text(pynvml.nvmlDeviceGetName(handle)),
                 int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // 2**20)
                for handle in handles]
    except pynvml.NVMLError:
        return []
    finally:
        pynvml.nvmlShutdown()


def match_gpu_memory(names: list[str], nvml_devices: list[tuple[str, int]]) -> list[int | str]:
    """Total memory of each GPU in ``names``, matched to the NVML devices by name.

    TensorFlow numbers only the GPUs in ``CUDA_VISIBLE_DEVICES``, in CUDA's order, while NVML
    numbers every GPU by PCI bus; matching by name (each NVML device used once) gets the right
    memory wherever GPUs of one name have one memory size. "unknown" when no device matches.
    """
    remaining = list(nvml_devices)
    memory: list[int | str] = []
    for name in names:
        match = next((device for device in remaining if device[0] == name), None)
        if match is None:
            memory.append("unknown")
        else:
            remaining.remove(match)
            memory.append(match[1])
    return memory


def _text(value: str | bytes) -> str:
    # Older NVML bindings return bytes, current ones str.
    return value.decode() if isinstance(value, bytes) else value
