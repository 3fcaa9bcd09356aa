"""The small MNIST CNN of Alibi Explain's Counterfactual example, written once for both sides of
``benchmarks/alibi_comparison.py``: tf.keras 2 in Alibi's venv (``alibi_reference.py``) and
Keras 3 in ours. It imports neither; the caller passes its own ``layers`` module and ``Model``.
"""


def build_alibi_cnn(layers, model_class, *, separate_softmax: bool):
    """Conv(64) - pool - dropout - Conv(32) - pool - dropout - Dense(256) - dropout - Dense(10).

    ``separate_softmax``: the last Dense is ``logits`` followed by a softmax ``Activation`` (what
    our search reads; Dense(softmax) weights load into it unchanged), else one softmax Dense.
    """
    inputs = layers.Input(shape=(28, 28, 1))
    x = layers.Conv2D(64, 2, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Conv2D(32, 2, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    if separate_softmax:
        outputs = layers.Activation("softmax", name="probabilities")(
            layers.Dense(10, name="logits")(x))
    else:
        outputs = layers.Dense(10, activation="softmax")(x)
    return model_class(inputs, outputs)
