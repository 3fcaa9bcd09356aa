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


def test_temporaries_a_killed_run_left_are_swept_by_the_next_write(tmp_path):
    # SIGKILL skips every finally: what it left is removed the next time the output is written.
    stale_folder = tmp_path / ".prepared.k3x_9q2a.tmp"
    (stale_folder / "staging_images.bin").parent.mkdir(parents=True)
    (stale_folder / "staging_images.bin").write_bytes(b"\0" * 1024)
    stale_file = tmp_path / ".model.ab12cd34.tmp.keras"
    stale_file.write_text("half")
    # Temporaries of other outputs, and files that only look alike, are left alone.
    other = tmp_path / ".model.v2.ab12cd34.tmp.keras"
    other.write_text("another model's")
    with atomic_path(tmp_path / "prepared") as temporary:
        temporary.mkdir()
    with atomic_path(tmp_path / "model.keras") as temporary:
        temporary.write_text("whole")
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        ".model.v2.ab12cd34.tmp.keras", "model.keras", "prepared"]


def test_garbage_json_names_the_file(tmp_path):
    (tmp_path / "metrics.json").write_text("not json")
    with pytest.raises(ValueError, match=r"metrics\.json"):
        read_json(tmp_path / "metrics.json")
