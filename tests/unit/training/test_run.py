"""The fingerprint a training backup must match before a rerun may resume from it."""

from pixelflip.training.run import run_fingerprint


def test_fingerprint_follows_the_settings_and_the_bytes_of_the_inputs(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label\na.png,cat\n")
    settings = {"seed": 42, "epochs": 4}
    first = run_fingerprint(settings, [manifest])
    assert run_fingerprint(dict(reversed(settings.items())), [manifest]) == first
    assert run_fingerprint({"seed": 42, "epochs": 5}, [manifest]) != first
    manifest.write_text("path,label\na.png,dog\n")
    assert run_fingerprint(settings, [manifest]) != first
    assert len(first) == 64 and int(first, 16) >= 0


def test_a_run_killed_after_its_last_phase_resumes_to_the_same_evaluation(tmp_path):
    # The kill lands after both phases saved their results but before the stage wrote its
    # outputs: the rerun must restore every phase and still evaluate (a compiled model).
    import keras
    import numpy as np
    import tensorflow as tf

    from pixelflip.models.backbones import build_classifier
    from pixelflip.training.classifier import Schedule, set_global_seed
    from pixelflip.training.epochs import EpochClock
    from pixelflip.training.run import Phase, TrainingData, fit_and_evaluate

    rng = np.random.default_rng(0)
    images = rng.uniform(size=(48, 8, 8, 1)).astype("float32")
    labels = (images[:, :4].mean(axis=(1, 2, 3)) > images[:, 4:].mean(axis=(1, 2, 3)))
    batches = tf.data.Dataset.from_tensor_slices((images, labels.astype("int64"))).batch(16)
    data = TrainingData(datasets={"train": batches, "val": batches, "test": batches},
                        epoch_clock=EpochClock(), augmenter=None, class_weight=None,
                        num_classes=2, example_images=images[:4])

    def run():
        set_global_seed(0)
        model = build_classifier((8, 8, 1), 2, conv_filters=(4,), dense_units=4)
        phases = [Phase("head", 1, ("dense", "logits")), Phase("all", 1)]
        return fit_and_evaluate(
            model, data, phases=phases, learning_rate=1e-2, strategy=tf.distribute.get_strategy(),
            backup_dir=tmp_path / "backup", fingerprint="f", random_state=0,
            schedule=Schedule(early_stopping_patience=3, reduce_lr_factor=0.5,
                              reduce_lr_patience=1))

    first_history, first_metrics = run()
    assert sorted(path.name for path in (tmp_path / "backup").glob("*.done.*")) == [
        "all.done.json", "all.done.npz", "head.done.json", "head.done.npz"]
    keras.backend.clear_session()
    resumed_history, resumed_metrics = run()
    assert resumed_history == first_history and resumed_history["epoch"] == [1, 2]
    assert resumed_metrics["test"] == first_metrics["test"]
    assert resumed_metrics["validation"] == first_metrics["validation"]
