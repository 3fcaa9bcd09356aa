"""Per-epoch seeding and resumable training: a killed run, rerun, ends as if never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixelflip.data.augment import augment_dataset, build_augmenter
from pixelflip.models.backbones import build_classifier
from pixelflip.training.classifier import (
    Schedule,
    Seeding,
    compile_classifier,
    set_global_seed,
    train_classifier,
)
from pixelflip.training.epochs import EpochClock
from pixelflip.training.resume import (
    EpochSeeding,
    ResumableBackup,
    backed_up_epochs,
    epoch_seed,
    seed_generators,
)

RANDOM_STATE = 7
EPOCHS = 6
TRAINING = {"epochs": EPOCHS, "verbose": 0,
            "schedule": Schedule(early_stopping_patience=3, reduce_lr_factor=0.5,
                                 reduce_lr_patience=1)}


def epoch_dataset(images, labels, *, random_state, epoch_clock, batch_size=16):
    """Batches whose order is drawn from ``(random_state, epoch_clock.epoch)`` when a pass
    starts, built like ``loaders.make_dataset`` builds its shuffled training split."""
    size = len(labels)

    def pass_order(_):
        rng = np.random.default_rng([random_state, epoch_clock.epoch])
        return rng.permutation(size).astype(np.int64)

    order = tf.data.Dataset.from_tensors(np.int64(0)).map(lambda x: tf.ensure_shape(
        tf.numpy_function(pass_order, [x], tf.int64, stateful=True), (size,)))
    batches = order.unbatch().batch(batch_size)
    return batches.map(lambda indices: (tf.gather(images, indices), tf.gather(labels, indices))
                       ).prefetch(2)


def build_run(random_state: int = RANDOM_STATE) -> SimpleNamespace:
    """What a training process builds: seeded model, augmenter, datasets and epoch clock.

    The model has dropout, the training data is shuffled and augmented (flip, rotation, shift,
    elastic), so every kind of random draw has to be repeated exactly by a resumed run.
    """
    set_global_seed(random_state)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=96)
    images = rng.uniform(0.0, 0.3, size=(96, 12, 12, 1)).astype("float32")
    for image, label in zip(images, labels):
        row, column = divmod(int(label), 2)
        image[row * 6:(row + 1) * 6, column * 6:(column + 1) * 6] += 0.6
    clock = EpochClock()
    augmenter = build_augmenter(horizontal_flip=True, rotation=0.05, translation=0.1,
                                elastic_strength=0.5, random_state=random_state)
    train = augment_dataset(
        epoch_dataset(images, labels, random_state=random_state, epoch_clock=clock), augmenter)
    # Validation labels shifted by one class: val_loss rises while training succeeds, so the
    # learning rate is cut and early stopping ends the run: callback state worth restoring.
    validation = tf.data.Dataset.from_tensor_slices((images[:32], (labels[:32] + 1) % 3)).batch(16)
    model = build_classifier((12, 12, 1), 3, conv_filters=(8,), dense_units=8, dropout_rate=0.3)
    compile_classifier(model, learning_rate=1e-2)
    return SimpleNamespace(model=model, train=train, validation=validation, clock=clock,
                           augmenter=augmenter, random_state=random_state)


class LastEpochWeights(keras.callbacks.Callback):
    """The weights at the end of the last epoch run, before early stopping restores the best."""

    weights = None

    def on_epoch_end(self, epoch, logs=None):
        self.weights = self.model.get_weights()


class FailAt(keras.callbacks.Callback):
    """Raises at the start of epoch ``epoch`` (0-based), or at the end of training."""

    def __init__(self, epoch=None):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")

    def on_train_end(self, logs=None):
        if self.epoch is None:
            raise RuntimeError("interrupted")


class HangInEpoch(keras.callbacks.Callback):
    """In the second batch of epoch ``epoch``, write ``marker`` and wait to be killed."""

    def __init__(self, epoch, marker):
        super().__init__()
        self.hang_epoch, self.marker, self.current = epoch, Path(marker), None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.hang_epoch and batch == 1:
            self.marker.write_text("weights already moved on in this epoch")
            while True:
                time.sleep(1)


def fit_run(run, *, backup_dir=None, fingerprint="test", extra_callbacks=()):
    """``train_classifier`` on ``run``; returns (history, weights of the last epoch run)."""
    last = LastEpochWeights()
    history = train_classifier(
        run.model, run.train, run.validation,
        seeding=Seeding(random_state=run.random_state, epoch_clock=run.clock,
                        seeded_layers=[run.augmenter], backup_dir=backup_dir,
                        fingerprint=fingerprint),
        extra_callbacks=[last, *extra_callbacks], **TRAINING)
    return history, last.weights


def training_process(arguments: list[str]) -> None:
    """Entry point of the subprocess of the kill test: BACKUP_DIR OUTPUT [HANG_MARKER]."""
    backup_dir, output = arguments[0], Path(arguments[1])
    extra = [HangInEpoch(2, arguments[2])] if len(arguments) > 2 else []
    run = build_run()
    history, last = fit_run(run, backup_dir=backup_dir, fingerprint="kill-test",
                            extra_callbacks=extra)
    np.savez(output.with_suffix(".npz"), *run.model.get_weights())
    np.savez(output.with_suffix(".last.npz"), *(last or []))
    output.with_suffix(".json").write_text(json.dumps(history))


def assert_same_training(history, weights, expected_history, expected_weights):
    assert history == expected_history
    assert len(weights) == len(expected_weights)
    for actual, expected in zip(weights, expected_weights):
        np.testing.assert_array_equal(actual, expected)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: history, final weights, weights of its last epoch."""
    run = build_run()
    backup_dir = tmp_path_factory.mktemp("reference") / "backup"
    history, last = fit_run(run, backup_dir=backup_dir)
    # The scenario must exercise learning-rate cuts and early stopping.
    assert len(set(history["learning_rate"])) > 1
    assert 3 < len(history["epoch"]) < EPOCHS
    assert not backup_dir.exists()  # deleted once training finished
    return SimpleNamespace(history=history, weights=run.model.get_weights(), last=last)


def interrupted_backup(backup_dir: Path, *, epoch=2, fingerprint="test") -> None:
    """Run until ``epoch`` (0-based) begins, as a killed process would leave ``backup_dir``."""
    with pytest.raises(RuntimeError, match="interrupted"):
        fit_run(build_run(), backup_dir=backup_dir, fingerprint=fingerprint,
                extra_callbacks=[FailAt(epoch)])
    assert backed_up_epochs(backup_dir) == epoch


def test_epoch_seeding_sets_the_clock_and_every_seed_from_seed_and_epoch():
    set_global_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Flatten(),
                              keras.layers.Dropout(0.5), keras.layers.Dense(3)])
    augmenter = build_augmenter(horizontal_flip=True, rotation=0.1, translation=0.1,
                                elastic_strength=0.3, random_state=0)
    generators = seed_generators([model, augmenter])
    assert len(generators) == 5  # dropout, flip, rotation, translation, elastic
    clock = EpochClock()
    seeding = EpochSeeding(11, clock, [augmenter])
    seeding.set_model(model)

    seeding.on_epoch_begin(3)
    assert clock.epoch == 3
    states = [keras.ops.convert_to_numpy(generator.state).tolist() for generator in generators]
    assert states == [[epoch_seed(11, 3, index), 0] for index in range(5)]
    assert len({seed for seed, _ in states}) == 5
    seeding.on_epoch_begin(4)
    assert clock.epoch == 4
    assert keras.ops.convert_to_numpy(generators[0].state).tolist() == [epoch_seed(11, 4, 0), 0]
    with pytest.raises(ValueError, match="random_state"):
        EpochSeeding(-1)


def test_an_epoch_depends_only_on_the_seed_and_its_number(tmp_path):
    """Epochs 2-3 fitted by a fresh process from epoch 1's weights equal one fit of 3 epochs."""
    def fit_epochs(run, *, initial_epoch, epochs, seeding=True):
        callbacks = [EpochSeeding(run.random_state, run.clock, [run.augmenter])] if seeding else []
        run.model.fit(run.train, epochs=epochs, initial_epoch=initial_epoch, shuffle=False,
                      callbacks=callbacks, verbose=0)
        return run.model

    whole = fit_epochs(build_run(), initial_epoch=0, epochs=3).get_weights()
    fit_epochs(build_run(), initial_epoch=0, epochs=1).save_weights(tmp_path / "e1.weights.h5")

    def continued(seeding):
        run = build_run()  # new generators, new dataset: as in a new process
        run.model.optimizer.build(run.model.trainable_variables)
        run.model.load_weights(tmp_path / "e1.weights.h5")
        return fit_epochs(run, initial_epoch=1, epochs=3, seeding=seeding).get_weights()

    for actual, expected in zip(continued(seeding=True), whole):
        np.testing.assert_array_equal(actual, expected)
    # Without the callback the continued epochs draw other batches, masks and warps.
    assert any(not np.array_equal(a, b) for a, b in zip(continued(seeding=False), whole))


def test_resume_after_an_interruption_repeats_the_uninterrupted_run(reference, tmp_path, capsys):
    backup_dir = tmp_path / "backup"
    interrupted_backup(backup_dir)
    # A save that a kill cut short is ignored and cleaned up.
    partial = backup_dir / "epoch-0003.partial"
    partial.mkdir()
    (partial / "training.weights.h5").write_bytes(b"half a file")

    run = build_run()
    history, last = fit_run(run, backup_dir=backup_dir)

    assert f"[simple_cnn] resuming from epoch 2 of {EPOCHS} (backup in {backup_dir})" in \
        capsys.readouterr().out
    assert history["epoch"] == list(range(1, len(reference.history["epoch"]) + 1))
    assert_same_training(history, run.model.get_weights(), reference.history, reference.weights)
    assert_same_training({}, last, {}, reference.last)
    assert not backup_dir.exists()


def test_a_backup_made_with_another_fingerprint_is_discarded(reference, tmp_path, capsys):
    backup_dir = tmp_path / "backup"
    interrupted_backup(backup_dir, fingerprint="params of yesterday")

    run = build_run()
    history, _ = fit_run(run, backup_dir=backup_dir, fingerprint="test")

    output = capsys.readouterr().out
    assert f"[simple_cnn] discarding the backup in {backup_dir}" in output
    assert "fingerprint 'params of yesterday', this run 'test'" in output
    assert "resuming" not in output
    assert_same_training(history, run.model.get_weights(), reference.history, reference.weights)


def test_an_unreadable_backup_is_discarded_and_training_starts_fresh(reference, tmp_path,
                                                                     capsys):
    backup_dir = tmp_path / "backup"
    interrupted_backup(backup_dir)
    (backup_dir / "epoch-0002" / "training.weights.h5").write_bytes(b"not hdf5")

    run = build_run()
    history, _ = fit_run(run, backup_dir=backup_dir)

    assert "it cannot be loaded" in capsys.readouterr().out
    assert_same_training(history, run.model.get_weights(), reference.history, reference.weights)


def test_a_run_killed_after_early_stopping_resumes_to_the_same_end(reference, tmp_path, capsys):
    backup_dir = tmp_path / "backup"
    with pytest.raises(RuntimeError, match="interrupted"):
        fit_run(build_run(), backup_dir=backup_dir, extra_callbacks=[FailAt(None)])
    epochs_run = len(reference.history["epoch"])
    assert backed_up_epochs(backup_dir) == epochs_run

    run = build_run()
    history, last = fit_run(run, backup_dir=backup_dir)

    assert f"resuming from epoch {epochs_run} of {EPOCHS}" in capsys.readouterr().out
    assert last is None  # no epoch ran again
    assert_same_training(history, run.model.get_weights(), reference.history, reference.weights)


def test_callbacks_without_saveable_state_are_refused(tmp_path):
    with pytest.raises(ValueError, match="LastEpochWeights has no state"):
        ResumableBackup(tmp_path, stateful_callbacks=[LastEpochWeights()])


def _start_training_process(backup_dir, output, log, *extra):
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import {Path(__file__).stem}; {Path(__file__).stem}.training_process(sys.argv[1:])")
    return subprocess.Popen([sys.executable, "-c", code, str(backup_dir), str(output), *extra],
                            stdout=log, stderr=subprocess.STDOUT)


def _results(output: Path):
    def arrays(path):
        with np.load(path) as data:
            return [data[f"arr_{index}"] for index in range(len(data.files))]

    return (json.loads(output.with_suffix(".json").read_text()),
            arrays(output.with_suffix(".npz")), arrays(output.with_suffix(".last.npz")))


@pytest.mark.slow
def test_a_killed_training_process_resumes_and_ends_as_if_never_killed(tmp_path):
    with open(tmp_path / "reference.log", "w") as log:
        assert _start_training_process(tmp_path / "reference-backup", tmp_path / "reference",
                                       log).wait() == 0
    expected = _results(tmp_path / "reference")

    backup_dir, marker = tmp_path / "backup", tmp_path / "in-epoch-3"
    with open(tmp_path / "killed.log", "w") as log:
        process = _start_training_process(backup_dir, tmp_path / "killed", log, marker)
        while process.poll() is None and not marker.exists():
            time.sleep(0.1)
        assert marker.exists(), (tmp_path / "killed.log").read_text()
        # Killed in the middle of epoch 3: epochs 1-2 are backed up, epoch 3 is lost.
        assert backed_up_epochs(backup_dir) == 2
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL

    with open(tmp_path / "resumed.log", "w") as log:
        assert _start_training_process(backup_dir, tmp_path / "resumed", log).wait() == 0
    assert "resuming from epoch 2 of 6" in (tmp_path / "resumed.log").read_text()
    history, weights, last = _results(tmp_path / "resumed")
    assert_same_training(history, weights, expected[0], expected[1])
    assert_same_training({}, last, {}, expected[2])
    assert not backup_dir.exists()
