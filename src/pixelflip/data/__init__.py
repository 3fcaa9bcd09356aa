"""From a source of class-folder images to cleaned split arrays a model trains from.

Modules: ``sources`` and ``kaggle`` (download stage), ``archive`` (raw zip format and its
safety checks), ``subset`` (which members are used), ``headers`` (format, size and
orientation from an image's header), ``inspect`` (per-file status), ``scan`` (parallel
inspection), ``prepare`` (validate stage: clean, resize, split), ``suites`` (what the Great
Expectations suites expect), ``expectations`` (running the suites, Data Docs), ``loaders``
(memory maps and tf.data) and ``augment`` (training-batch augmentation); the last two import
TensorFlow.

Names are imported lazily, so ``import pixelflip.data`` costs neither TensorFlow nor Great
Expectations; only the module that defines a name is imported when the name is used.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "download_source": "sources",
    "file_sha256": "sources",
    "KaggleDownloadError": "kaggle",
    "SOURCES": "sources",
    "ArchiveMember": "archive",
    "read_class_members": "archive",
    "ArchiveLimits": "archive",
    "inspect_image_bytes": "inspect",
    "STATUSES": "inspect",
    "PreparedDataset": "prepare",
    "SplitSettings": "prepare",
    "prepare_dataset": "prepare",
    "read_manifest": "prepare",
    "summarize_manifest": "prepare",
    "MANIFEST_COLUMNS": "prepare",
    "SPLITS": "prepare",
    "ExpectationReport": "expectations",
    "DataReport": "expectations",
    "UnsafeArchiveError": "archive",
    "scan_members": "scan",
    "InspectionSettings": "scan",
    "select_members": "subset",
    "MemberSelection": "subset",
    "build_augmenter": "augment",
    "augment_dataset": "augment",
    "check_manifest": "expectations",
    "load_classes": "loaders",
    "load_split": "loaders",
    "make_dataset": "loaders",
    "dataset_size": "loaders",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
