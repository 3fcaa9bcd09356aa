"""A validate run that ends, fails or is interrupted leaves no temporary and no worker noise.

Real processes throughout: ``prepare_dataset`` with a pool of 2 workers runs in a child process
that turns SIGTERM into KeyboardInterrupt as the stage frame does, and the test signals the
child's whole process group (as Ctrl-C in a terminal, or ``kill`` of the group, does) while the
workers are decoding.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from pixelflip.data.prepare import SplitSettings, prepare_dataset
from pixelflip.data.scan import InspectionSettings
from tests.support.defects import encode_with_pillow, smooth_pixels
from tests.support.project import ROOT

# 400 WebP photos of 800x600, 10 KB each but ~10 ms to decode: the 2 workers need seconds, so
# the signal arrives while they work.
_MEMBERS = 400
_CHILD = """
import signal, sys

def interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)

signal.signal(signal.SIGTERM, interrupt)
from pixelflip.data.prepare import SplitSettings, prepare_dataset
from pixelflip.data.scan import InspectionSettings

try:
    prepare_dataset(sys.argv[1], sys.argv[2], random_state=0, workers=2, progress=False,
                    inspection=InspectionSettings(image_size=16, color_mode="rgb", min_side=1),
                    split=SplitSettings(val_fraction=0.2, test_fraction=0.2))
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
print("finished")
"""


@pytest.fixture(scope="module")
def slow_archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("interrupts") / "photos.zip"
    photos = [encode_with_pillow(smooth_pixels(seed, 800, 600), "WEBP") for seed in range(10)]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for index in range(_MEMBERS):
            archive.writestr(f"class_{index % 2}/{index:04d}.webp", photos[index % 10])
    return path


def _temporaries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob(".*.tmp*"))


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_scan_exits_quietly_and_removes_its_temporaries(
    slow_archive, tmp_path, signal_number
):
    out_dir = tmp_path / "data" / "prepared"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(slow_archive), str(out_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    try:
        # Signal once the workers have delivered images into the staging file: mid-scan.
        deadline = time.monotonic() + 120
        while not any(path.stat().st_size for path in out_dir.parent.glob(".*/staging_*")):
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.01)
        os.killpg(child.pid, signal_number)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert stderr.strip() == "interrupted"
    assert _temporaries(out_dir.parent) == []
    assert not out_dir.exists()


def test_prepare_leaves_no_temporary_after_success_or_failure(slow_archive, tmp_path):
    data_dir = tmp_path / "data"
    inspection = InspectionSettings(image_size=16, color_mode="rgb", min_side=1)
    prepared = prepare_dataset(slow_archive, data_dir / "prepared", inspection=inspection,
                               split=SplitSettings(val_fraction=0.2, test_fraction=0.2),
                               random_state=0, workers=2, progress=False)
    assert prepared.split_sizes["train"] > 0
    assert sorted(path.name for path in data_dir.iterdir()) == ["prepared"]
    assert "staging_images.bin" not in [path.name for path in (data_dir / "prepared").iterdir()]

    # 10 distinct photos (the rest are duplicates) leave no image for a 2% training split.
    with pytest.raises(ValueError, match="The train split would be empty"):
        prepare_dataset(slow_archive, data_dir / "prepared", inspection=inspection,
                        split=SplitSettings(val_fraction=0.9, test_fraction=0.08),
                        random_state=0, workers=2, progress=False)
    assert sorted(path.name for path in data_dir.iterdir()) == ["prepared"]
