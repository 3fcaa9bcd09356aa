"""The region counterfactual method on a small CNN trained on real digits: validity, changes only
inside its mask of whole superpixels, a minimal final set, distractors of the target class, and
black-box use through an object that can only predict.

Every check re-derives what it checks (the superpixels, the model's prediction) rather than
trusting the fields of the result.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from support.trained_digits import trained_digit_model

from pixelflip.counterfactuals import make_counterfactual
from pixelflip.explanation.inputs import predict_probabilities
from pixelflip.explanation.model_access import PredictOnly
from pixelflip.explanation.superpixels import superpixels
from pixelflip.explanation.targets import ANY_OTHER, resolve_targets

NUM_IMAGES = 24
SEGMENTS = {"num_segments": 25, "compactness": 10.0}


@functools.cache
def _explain(replacement: str, candidates, black_box: bool):
    model, held_out, images, probabilities = trained_digit_model_images()
    method = make_counterfactual("regions", replacement=replacement, candidates=candidates,
                                 **SEGMENTS, random_state=0)
    method.fit(held_out.train_images, held_out.train_labels)
    targets = resolve_targets("other", probabilities)
    return method.explain(PredictOnly(model) if black_box else model, images, targets)


def trained_digit_model_images():
    model, held_out = trained_digit_model()
    correct = np.flatnonzero(held_out.predictions == held_out.labels)[:NUM_IMAGES]
    return model, held_out, held_out.images[correct], held_out.probabilities[correct]


def repredict(model, images) -> np.ndarray:
    return predict_probabilities(model, images).argmax(axis=1)


@pytest.mark.parametrize("replacement", ["inpaint", "distractor"])
def test_region_counterfactuals_flip_trained_digits(replacement):
    model, *_ = trained_digit_model_images()
    result = _explain(replacement, 8, False)
    assert result.success.mean() >= 0.9
    predicted = repredict(model, result.counterfactuals)
    np.testing.assert_array_equal(predicted[result.success],
                                  result.counterfactual_predictions[result.success])
    assert np.all(predicted[result.success] != result.original_predictions[result.success])
    # A few regions, not the whole digit: the median counterfactual replaces under a third.
    area = result.masks.reshape(len(result), -1).mean(axis=1)
    assert np.median(area[result.success]) < 1 / 3


@pytest.mark.parametrize("replacement", ["blur", "inpaint", "distractor"])
def test_no_pixel_changes_outside_the_mask_and_the_mask_is_whole_superpixels(replacement):
    result = _explain(replacement, 8, False)
    assert result.masks.any()
    assert np.all(result.perturbations[~result.masks] == 0.0)
    for image, mask in zip(result.originals, result.masks):
        labels = superpixels(image, **SEGMENTS)
        for label in np.unique(labels[mask]):
            assert mask[labels == label].all(), "a superpixel was replaced only in part"


@pytest.mark.parametrize("replacement", ["inpaint", "distractor"])
def test_removing_any_kept_region_undoes_the_flip(replacement):
    model, *_ = trained_digit_model_images()
    result = _explain(replacement, 8, False)
    checked = 0
    for index in np.flatnonzero(result.success):
        original, counterfactual = result.originals[index], result.counterfactuals[index]
        labels = superpixels(original, **SEGMENTS)
        undone = []
        for label in np.unique(labels[result.masks[index]]):
            without = counterfactual.copy()
            without[labels == label] = original[labels == label]
            undone.append(without)
        checked += len(undone)
        reached = result.counterfactual_predictions[index]
        assert np.all(repredict(model, np.stack(undone)) != reached), (
            f"image {index}: a kept region can go and the counterfactual stays class {reached}; "
            "the set is not minimal")
    assert checked > 0


def test_distractors_are_training_images_of_the_class_reached():
    _, held_out, *_ = trained_digit_model_images()
    result = _explain("distractor", 8, False)
    used = result.success
    indices = result.distractor_indices
    assert np.all(indices[used] >= 0) and np.all(indices[~used] == -1)
    np.testing.assert_array_equal(held_out.train_labels[indices[used]],
                                  result.counterfactual_predictions[used])
    for index in np.flatnonzero(used):
        mask = result.masks[index]
        np.testing.assert_allclose(result.counterfactuals[index][mask],
                                   held_out.train_images[indices[index]][mask], atol=1e-6)


def test_a_predict_only_model_gets_the_same_answer_as_the_keras_model_scoring_every_region():
    black_box = _explain("inpaint", None, True)
    white_box = _explain("inpaint", None, False)
    assert black_box.success.mean() >= 0.9
    np.testing.assert_allclose(black_box.counterfactuals, white_box.counterfactuals, atol=1e-6)
    np.testing.assert_array_equal(black_box.masks, white_box.masks)


def test_distractor_needs_fit_and_bad_settings_are_refused():
    model, _, images, _ = trained_digit_model_images()
    method = make_counterfactual("regions", replacement="distractor")
    with pytest.raises(ValueError, match="fit"):
        method.explain(model, images[:2], np.full(2, ANY_OTHER))
    for options, key in [({"replacement": "noise"}, "replacement"),
                         ({"num_segments": 1}, "num_segments"),
                         ({"max_regions": 0}, "max_regions"),
                         ({"num_distractors": 0}, "num_distractors"),
                         ({"candidates": 0}, "candidates"),
                         ({"compactness": float("nan")}, "compactness"),
                         ({"confidence": float("inf")}, "confidence")]:
        with pytest.raises(ValueError, match=key):
            make_counterfactual("regions", **options)
