"""Integration on real photos: the 600-image PetImages sample in ../shared/data, when present.

The sample is not part of the project (users do not have it), so this test skips with the reason
when the folder is absent; the defects of the full archive are covered by tests/support/defects.py.
"""


import numpy as np
import pytest
from support.project import ROOT

from pixelflip.data.expectations import check_manifest
from pixelflip.data.prepare import (
    SplitSettings,
    prepare_dataset,
    read_manifest,
    summarize_manifest,
)
from pixelflip.data.scan import InspectionSettings
from pixelflip.data.sources import download_source

SAMPLE = ROOT.parent / "shared" / "data" / "petimages-sample"

pytestmark = pytest.mark.skipif(
    not SAMPLE.is_dir(), reason=f"{SAMPLE} is absent (the shared cats-vs-dogs sample)"
)


def test_the_shared_sample_validates_into_two_balanced_classes(tmp_path):
    record = download_source("folder", tmp_path / "raw", path=SAMPLE)
    assert record["class_counts"] == {"Cat": 300, "Dog": 300}

    prepared = prepare_dataset(
        tmp_path / "raw" / record["archive"], tmp_path / "prepared",
        inspection=InspectionSettings(image_size=64, color_mode="rgb", min_side=32),
        split=SplitSettings(val_fraction=0.15, test_fraction=0.15), random_state=42,
        workers=2, progress=False,
    )

    manifest = read_manifest(tmp_path / "prepared")
    summary = summarize_manifest(manifest)
    assert prepared.classes == ["Cat", "Dog"]
    assert summary["status_counts"] == {"kept": 600, "converted": 0, "quarantined": 0,
                                        "skipped": 0}
    assert summary["split_counts"] == {"train": 420, "val": 90, "test": 90}
    assert manifest["width"].between(80, 500).all() and manifest["height"].between(80, 500).all()
    train = np.load(tmp_path / "prepared" / "train_images.npy", mmap_mode="r")
    assert train.shape == (420, 64, 64, 3) and 40 < float(train.mean()) < 200
    report = check_manifest(manifest, tmp_path / "docs", classes=prepared.classes, min_side=32,
                            max_pixels=40_000_000, max_class_ratio=1.5)
    assert report.success and report.raw.success
