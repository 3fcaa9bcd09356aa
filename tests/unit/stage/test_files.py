"""Atomic writes never leave a half-written output behind."""

import pytest

from pixelflip.stage.files import atomic_path, read_json, write_json


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "out" / "model.keras"
    with atomic_path(target) as temporary:
        assert temporary.suffix == ".keras"  # libraries pick the format by suffix
        temporary.write_text("first")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "first"
    assert sorted(path.name for path in target.parent.iterdir()) == ["model.keras"]


def test_atomic_directory_replaces_old_contents(tmp_path):
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "stale.npy").write_text("old")
    with atomic_path(target) as temporary:
        temporary.mkdir()
        (temporary / "fresh.npy").write_text("new")
    assert [path.name for path in target.iterdir()] == ["fresh.npy"]


def test_json_round_trip_handles_numpy(tmp_path):
    import numpy as np

    write_json(tmp_path / "m.json", {"accuracy": np.float32(0.5), "counts": np.arange(3)})
    assert read_json(tmp_path / "m.json") == {"accuracy": 0.5, "counts": [0, 1, 2]}
