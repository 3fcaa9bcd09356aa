"""DVC stage `train`: fit the base CNN on the prepared training split."""

from pixelflip import layout, tracking
from pixelflip.stage import run_stage


def main(params):
    from pixelflip.data.loaders import load_classes, load_split
    from pixelflip.device import describe_device
    from pixelflip.models.backbones import build_classifier
    from pixelflip.models.training import set_global_seed
    from pixelflip.training_run import finish_training, fit_and_evaluate, load_datasets

    train = params.train
    set_global_seed(params.seed)
    tracking.log_params(describe_device())
    classes = load_classes(layout.PREPARED_DIR)
    test_images, _ = load_split(layout.PREPARED_DIR, "test")
    datasets = load_datasets(layout.PREPARED_DIR, batch_size=train.batch_size,
                             random_state=params.seed, augment=params.train.augment)
    model = build_classifier(test_images.shape[1:], len(classes), conv_filters=train.conv_filters,
                             dense_units=train.dense_units, dropout_rate=train.dropout_rate)
    history, metrics = fit_and_evaluate(
        model, datasets, learning_rate=train.learning_rate, epochs=train.epochs,
        early_stopping_patience=train.early_stopping_patience,
        reduce_lr_factor=train.reduce_lr_factor, reduce_lr_patience=train.reduce_lr_patience,
    )
    finish_training(model, name="base", history=history, metrics=metrics,
                    model_path=layout.BASE_MODEL, metrics_path=layout.METRICS_DIR / "train.json",
                    plots_dir=layout.PLOTS_DIR / "train",
                    example_images=test_images[:2].astype("float32") / 255.0)


if __name__ == "__main__":
    run_stage("train", main, sections=("train",))
