"""CounterfactualResult on a hand-made result: saving and loading, joining, its frame and its
shape checks."""

from __future__ import annotations

import numpy as np
import pytest
from support.hand_made_results import make_result

from pixelflip.counterfactuals.result import CounterfactualResult
from pixelflip.explanation.targets import ANY_OTHER


def test_save_and_load_round_trip(tmp_path):
    result = make_result()
    path = tmp_path / "nested" / "counterfactuals.npz"
    result.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["counterfactuals.npz"]
    loaded = CounterfactualResult.load(path)
    assert loaded.method == "elastic_net"
    for field in ("originals", "counterfactuals", "perturbations", "targets", "success",
                  "original_probabilities", "counterfactual_probabilities", "iterations",
                  "seconds", "original_predictions", "counterfactual_predictions"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(result, field))
        assert getattr(loaded, field).dtype == getattr(result, field).dtype


def test_load_rejects_a_foreign_file(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, something=np.zeros(3))
    with pytest.raises(ValueError, match="lacks the fields"):
        CounterfactualResult.load(path)


def test_concatenate_keeps_order_and_checks_compatibility():
    result = make_result()
    joined = CounterfactualResult.concatenate([result, result])
    assert len(joined) == 6
    np.testing.assert_array_equal(joined.targets, [ANY_OTHER, 2, 1, ANY_OTHER, 2, 1])
    np.testing.assert_array_equal(joined.originals[3:], result.originals)
    with pytest.raises(ValueError, match="empty"):
        CounterfactualResult.concatenate([])
    with pytest.raises(ValueError, match="methods"):
        CounterfactualResult.concatenate([result, make_result("growing_spheres")])


def test_to_frame_has_one_row_per_image_with_labels():
    frame = make_result().to_frame(["zero", "one", "two"])
    assert len(frame) == 3
    assert frame["target_label"].tolist() == ["any other", "two", "one"]
    assert frame["counterfactual_label"].tolist() == ["two", "zero", "one"]
    np.testing.assert_allclose(frame["counterfactual_probability"], [0.6, 0.5, 0.5])
    with pytest.raises(ValueError, match="class_names"):
        make_result().to_frame(["zero", "one"])


def test_result_validates_shapes():
    fields = make_result().__dict__.copy()
    with pytest.raises(ValueError, match="counterfactuals"):
        CounterfactualResult(**{**fields, "counterfactuals": fields["counterfactuals"][:2]})
    with pytest.raises(ValueError, match="success"):
        CounterfactualResult(**{**fields, "success": np.array([True])})
    with pytest.raises(ValueError, match="counterfactual_probabilities"):
        CounterfactualResult(
            **{**fields, "counterfactual_probabilities": np.ones((3, 4)) / 4}
        )
    with pytest.raises(ValueError, match="originals"):
        CounterfactualResult(**{**fields, "originals": fields["originals"][0]})
