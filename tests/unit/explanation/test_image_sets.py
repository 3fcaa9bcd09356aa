"""The explained image sets: a seeded sample and the model's mistakes, the same in every stage."""

import numpy as np
import pytest

from pixelflip.explanation.image_sets import choose_images, explained_sets, select_test_images


def test_sets_are_seeded_sorted_and_hold_only_mistakes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=200)
    predictions = np.where(rng.random(200) < 0.2, (labels + 1) % 3, labels)
    sets = explained_sets(predictions, labels, num_images=16, misclassified=5, seed=7)
    assert list(sets) == ["sampled", "misclassified"]
    assert len(sets["sampled"]) == 16 and len(np.unique(sets["sampled"])) == 16
    assert np.all(np.diff(sets["sampled"]) > 0) and np.all(np.diff(sets["misclassified"]) > 0)
    assert len(sets["misclassified"]) == 5
    assert np.all(predictions[sets["misclassified"]] != labels[sets["misclassified"]])
    again = explained_sets(predictions, labels, num_images=16, misclassified=5, seed=7)
    other = explained_sets(predictions, labels, num_images=16, misclassified=5, seed=8)
    assert all(np.array_equal(sets[name], again[name]) for name in sets)
    assert not np.array_equal(sets["sampled"], other["sampled"])


def test_sets_shrink_to_what_there_is():
    labels = np.array([0, 1, 1, 0])
    predictions = np.array([0, 0, 1, 0])
    sets = explained_sets(predictions, labels, num_images=10, misclassified=10, seed=0)
    assert sets["sampled"].tolist() == [0, 1, 2, 3]
    assert sets["misclassified"].tolist() == [1]
    assert explained_sets(predictions, labels, num_images=2, misclassified=0,
                          seed=0)["misclassified"].tolist() == []
    assert choose_images(0, 5, seed=0).tolist() == []


@pytest.mark.parametrize("keywords, message", [
    ({"num_images": 0}, "num_images=0 is invalid"),
    ({"misclassified": -1}, "misclassified=-1 is invalid"),
    ({"predictions": np.zeros(3)}, "predictions has shape (3,) and labels (4,)"),
])
def test_bad_arguments_raise_value_error(keywords, message):
    arguments = {"predictions": np.zeros(4), "labels": np.zeros(4), "num_images": 2,
                 "misclassified": 1, "seed": 0, **keywords}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        explained_sets(**arguments)


def test_select_test_images_loads_the_chosen_images_and_the_model_answers():
    import keras

    # A model that predicts class 1 whenever the mean pixel is above one half.
    inputs = keras.Input((4, 4, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    logits = keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant([[-20.0, 20.0]]),
                                bias_initializer=keras.initializers.Constant([10.0, -10.0]))(mean)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    brightness = np.array([0, 40, 200, 250, 10, 230], dtype=np.uint8)
    images = np.broadcast_to(brightness[:, None, None, None], (6, 4, 4, 1)).copy()
    labels = np.array([0, 1, 1, 1, 0, 0])  # image 1 (dark, says 0) and 5 (bright, says 1) wrong
    sampled, misclassified = select_test_images(model, images, labels, num_images=3,
                                                misclassified=5, seed=0, batch_size=4)
    assert (sampled.name, misclassified.name) == ("sampled", "misclassified")
    assert misclassified.indices.tolist() == [1, 5]
    np.testing.assert_allclose(misclassified.images[:, 0, 0, 0], [40 / 255, 230 / 255], rtol=1e-6)
    assert misclassified.labels.tolist() == [1, 0]
    assert misclassified.probabilities.argmax(axis=1).tolist() == [0, 1]
    assert sampled.images.dtype == np.float32 and sampled.images.shape == (3, 4, 4, 1)
