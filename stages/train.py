"""DVC stage `train`: fit the base classifier (`train.backbone`) on the prepared training split."""

from pixelflip import layout, tracking
from pixelflip.stage import run_stage


def main(params):
    # The strategy first: a multi-worker one must exist before TensorFlow runs any op.
    from pixelflip.models.distribute import make_strategy, set_precision

    strategy, strategy_info = make_strategy()
    from pixelflip.device import describe_device
    from pixelflip.models.backbones import build_classifier
    from pixelflip.models.training import set_global_seed
    from pixelflip.training_run import (
        Phase,
        discard_backups,
        finish_training,
        fit_and_evaluate,
        load_training_data,
        run_fingerprint,
    )

    train = params.train
    set_global_seed(params.seed)
    precision = set_precision(train.mixed_precision)
    tracking.log_params({**describe_device(extra=strategy_info), "precision": precision})
    data = load_training_data(layout.PREPARED_DIR, batch_size=train.batch_size,
                              random_state=params.seed, augment=train.augment,
                              class_weight=train.class_weight)
    with strategy.scope():
        model = build_classifier(data.example_images.shape[1:], data.num_classes,
                                 backbone=train.backbone, weights=train.weights,
                                 input_size=train.input_size, conv_filters=train.conv_filters,
                                 dense_units=train.dense_units, dropout_rate=train.dropout_rate)
    backup_dir = layout.backup_dir("train")
    history, metrics = fit_and_evaluate(
        model, data, phases=[Phase("all", train.epochs)], learning_rate=train.learning_rate,
        strategy=strategy, backup_dir=backup_dir, random_state=params.seed,
        fingerprint=run_fingerprint({"seed": params.seed, **params.section("train")},
                                    [layout.MANIFEST_CSV]),
        early_stopping_patience=train.early_stopping_patience,
        reduce_lr_factor=train.reduce_lr_factor, reduce_lr_patience=train.reduce_lr_patience,
    )
    metrics.update(model=layout.BASE_MODEL_NAME, module="none", backbone=train.backbone)
    finish_training(model, name=layout.BASE_MODEL_NAME, history=history, metrics=metrics,
                    model_path=layout.BASE_MODEL, metrics_path=layout.metrics_path("base"),
                    plots_dir=layout.PLOTS_DIR / "train", example_images=data.example_images,
                    registered_model=params.tracking.registered_model)
    discard_backups(backup_dir)


if __name__ == "__main__":
    run_stage("train", main, sections=("train",), log_system_metrics=True)
