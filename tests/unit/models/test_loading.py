"""Loading a classifier trained under mixed precision: rebuilt in float32 for explanations, kept
in its training precision when asked, and refused by the explanation methods as it was saved."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import contextlib

import keras
import numpy as np
import pytest

from pixelflip.attributions.grad_cam import GradCAM
from pixelflip.counterfactuals.elastic_net import ElasticNetCounterfactual
from pixelflip.explanation.targets import ANY_OTHER
from pixelflip.models.attention import ATTENTION_MODULES, add_attention, attention_layer_names
from pixelflip.models.backbones import build_classifier
from pixelflip.models.loading import load_classifier, reduced_precision_layers, with_compute_dtype

# bfloat16 keeps 8 significant bits: probabilities of the mixed model are off by ~1e-2 at most.
BFLOAT16_TOLERANCE = 3e-2


@contextlib.contextmanager
def global_policy(name):
    """Build layers under the global dtype policy ``name``; the previous one is restored."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def mixed_classifier(module=None, seed=0, policy="mixed_bfloat16"):
    """A tiny (16, 16, 1) -> 3 classifier built under ``policy`` from ``seed`` (the same weights
    under every policy), optionally with one attention module after its last block, whose
    weights are random (PAM and GC start as the identity, which a rebuild that forgot their
    weights would match)."""
    keras.utils.set_random_seed(seed)
    with global_policy(policy):
        model = build_classifier((16, 16, 1), 3, conv_filters=(4, 8), dense_units=8, name="base")
        if module is None:
            return model
        model = add_attention(model, module, reduction_ratio=2)
    rng = np.random.default_rng(seed)
    attention = model.get_layer(f"attention_{module}")
    attention.set_weights([rng.normal(scale=0.3, size=weight.shape)
                           for weight in attention.get_weights()])
    return model


def policies(model):
    return {layer.name: layer.dtype_policy.name
            for layer in model._flatten_layers(include_self=False)}


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(size=(4, 16, 16, 1)).astype("float32")


@pytest.fixture(scope="module")
def mixed_model():
    return mixed_classifier()


@pytest.fixture(scope="module")
def mixed_path(mixed_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "mixed.keras"
    mixed_model.save(path)
    return path


@pytest.fixture(scope="module")
def loaded(mixed_path):
    return load_classifier(mixed_path)


def test_mixed_model_is_loaded_computing_in_float32_with_its_weights(mixed_model, loaded, images):
    # The fixture really is a half-precision model, apart from its float32 softmax.
    assert set(reduced_precision_layers(mixed_model).values()) == {"mixed_bfloat16"}
    assert mixed_model.get_layer("probabilities").dtype_policy.name == "float32"
    assert reduced_precision_layers(loaded) == {}
    assert {layer.compute_dtype for layer in loaded._flatten_layers()} == {"float32"}
    assert loaded.get_layer("logits").output.dtype == "float32"
    for saved, copied in zip(mixed_model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, copied)
    expected = mixed_model.predict(images, verbose=0)
    probabilities = loaded.predict(images, verbose=0)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, expected, atol=BFLOAT16_TOLERANCE)
    # The global policy a stage set is left as it was.
    assert keras.config.dtype_policy().name == "float32"


def test_loading_in_the_training_precision_keeps_or_converts_the_half_layers(mixed_path):
    kept = load_classifier(mixed_path, compute_dtype="bfloat16")
    assert policies(kept) == policies(keras.saving.load_model(mixed_path))
    converted = load_classifier(mixed_path, compute_dtype="float16")
    assert set(reduced_precision_layers(converted).values()) == {"mixed_float16"}
    # Layers that are float32 on purpose under mixed precision stay float32.
    assert converted.get_layer("probabilities").dtype_policy.name == "float32"


def test_float32_model_is_returned_as_it_is():
    keras.utils.set_random_seed(0)
    model = build_classifier((16, 16, 1), 3, conv_filters=(4, 8), dense_units=8)
    assert with_compute_dtype(model, "float32") is model
    # Nothing tells which layers of a float32 model could compute in half precision.
    assert with_compute_dtype(model, "bfloat16") is model


def test_nested_models_are_rebuilt_in_float32_under_a_mixed_global_policy(images):
    with global_policy("mixed_bfloat16"):
        # Named: Keras numbers default names per process, so they depend on earlier tests.
        features = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(3, 3, name="conv"),
                                     keras.layers.GlobalAveragePooling2D(name="pool")],
                                    name="features")
        inputs = keras.Input((16, 16, 1))
        outputs = keras.layers.Dense(3, activation="softmax", dtype="float32")(features(inputs))
        model = keras.Model(inputs, outputs)
        rebuilt = with_compute_dtype(model, "float32")
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert set(reduced_precision_layers(model)) == {"conv", "pool"}
    assert reduced_precision_layers(rebuilt) == {}
    np.testing.assert_allclose(rebuilt.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=BFLOAT16_TOLERANCE)


def test_unknown_compute_dtype_is_refused(mixed_path):
    with pytest.raises(ValueError, match=r"compute_dtype='float64'.*'float32'"):
        load_classifier(mixed_path, compute_dtype="float64")


@pytest.mark.parametrize("module", sorted(ATTENTION_MODULES))
def test_attention_model_round_trips_in_float32(module, images, tmp_path):
    model = mixed_classifier(module, seed=3)
    # The attention layer's own sub-layers (Dense, Conv2D) compute in bfloat16 too.
    assert len(reduced_precision_layers(model)) > len(model.layers) - 3
    model.save(tmp_path / f"{module}.keras")
    loaded = load_classifier(tmp_path / f"{module}.keras")
    assert attention_layer_names(loaded) == [f"attention_{module}"]
    assert reduced_precision_layers(loaded) == {}
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=BFLOAT16_TOLERANCE)


def test_grad_cam_explains_the_loaded_model_in_float32_and_refuses_the_mixed_one(
        mixed_model, loaded, images):
    targets = np.array([0, 1, 2, 0])
    result = GradCAM(batch_size=4).explain(loaded, images, targets)
    assert result.maps.dtype == np.float32 and result.maps.shape == (4, 16, 16)
    assert np.all(np.isfinite(result.maps)) and result.maps.max() > 0
    with pytest.raises(ValueError, match=r"mixed_bfloat16.*load_classifier"):
        GradCAM(batch_size=4).explain(mixed_model, images, targets)


def test_elastic_net_explains_the_loaded_model_as_a_float32_twin_and_refuses_the_mixed_one(
        mixed_model, loaded, images):
    method = ElasticNetCounterfactual(max_iterations=20, binary_search_steps=2, batch_size=4)
    targets = np.full(len(images), ANY_OTHER)
    result = method.explain(loaded, images, targets)
    # The same weights built in float32 from the start: the loaded model is the same function.
    twin = method.explain(mixed_classifier(policy="float32"), images, targets)
    assert np.all(result.iterations > 0)
    for name in ("counterfactuals", "original_probabilities", "counterfactual_probabilities"):
        assert getattr(result, name).dtype == np.float32
        np.testing.assert_allclose(getattr(result, name), getattr(twin, name), atol=1e-5)
    np.testing.assert_array_equal(result.success, twin.success)
    with pytest.raises(ValueError, match=r"mixed_bfloat16.*load_classifier"):
        method.explain(mixed_model, images, targets)
