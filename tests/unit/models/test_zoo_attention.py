"""Attention modules inside a keras.applications backbone, as the attention stage uses them."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from pixelflip.models.attention import add_attention, attention_maps  # noqa: E402
from pixelflip.models.backbones import build_classifier, feature_block_names  # noqa: E402
from pixelflip.models.loading import load_classifier  # noqa: E402
from pixelflip.training.classifier import compile_classifier

pytestmark = pytest.mark.slow


def test_all_four_modules_inside_mobilenet_train_save_and_explain(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_classifier((28, 28, 1), 3, backbone="mobilenet_v2", weights="none",
                             dense_units=8, input_size=64)
    blocks = feature_block_names(model)
    # One module after each of four stages, the way attention.placement can stack them.
    for module, block in zip(["se", "cbam", "pam", "gc"], blocks[1:]):
        model = add_attention(model, module, placement=block, reduction_ratio=4)
    names = ["attention_se", "attention_cbam", "attention_pam", "attention_gc"]
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(8, 28, 28, 1)).astype("float32")
    labels = rng.integers(0, 3, size=8)
    compile_classifier(model, learning_rate=1e-2)
    before = {name: [w.copy() for w in model.get_layer(name).get_weights()] for name in names}
    model.fit(images, labels, epochs=1, batch_size=8, verbose=0)
    for name in names:
        after = model.get_layer(name).get_weights()
        assert any(not np.array_equal(old, new) for old, new in zip(before[name], after)), name

    path = tmp_path / "mobilenet_attention.keras"
    model.save(path)
    loaded = load_classifier(path)
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    maps = attention_maps(loaded, images[:3])
    assert sorted(maps) == sorted(names)
    for attention in maps.values():
        assert attention.shape == (3, 28, 28)
        assert attention.min() >= 0.0 and attention.max() <= 1.0
