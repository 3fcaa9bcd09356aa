"""DVC stage `attention@<module>`: insert one attention module into the base model, fine-tune."""

from pixelflip import layout, tracking
from pixelflip.stage import StageError, run_stage, stage_argument

MODULE = stage_argument(1, "module")


def main(params):
    # The strategy first: a multi-worker one must exist before TensorFlow runs any op.
    from pixelflip.models.distribute import make_strategy, set_precision

    strategy, strategy_info = make_strategy()
    from pixelflip.device import describe_device
    from pixelflip.models.attention import add_attention
    from pixelflip.models.training import load_classifier, set_global_seed
    from pixelflip.training_run import (
        Phase,
        attention_only,
        discard_backups,
        finish_training,
        fit_and_evaluate,
        load_training_data,
        run_fingerprint,
    )

    attention, train = params.attention, params.train
    if MODULE not in attention.modules:
        raise StageError(f"module '{MODULE}' is not in attention.modules {attention.modules}; "
                         "add it there (dvc.yaml expands one stage per listed module)")
    set_global_seed(params.seed)
    precision = set_precision(train.mixed_precision)
    tracking.log_params({**describe_device(extra=strategy_info), "precision": precision})
    data = load_training_data(layout.PREPARED_DIR, batch_size=attention.batch_size,
                              random_state=params.seed, augment=train.augment,
                              class_weight=train.class_weight)
    with strategy.scope():
        model = add_attention(load_classifier(layout.BASE_MODEL), MODULE,
                              placement=attention.placement,
                              reduction_ratio=attention.reduction_ratio)
    phases = [Phase("frozen", attention.frozen_epochs, attention_only(model)),
              Phase("unfrozen", attention.epochs - attention.frozen_epochs)]
    backup_dir = layout.backup_dir(f"attention@{MODULE}")
    settings = {"seed": params.seed, "module": MODULE, **params.section("attention"),
                **params.section("train")}
    history, metrics = fit_and_evaluate(
        model, data, phases=phases, learning_rate=attention.learning_rate, strategy=strategy,
        backup_dir=backup_dir, random_state=params.seed,
        fingerprint=run_fingerprint(settings, [layout.MANIFEST_CSV, layout.BASE_MODEL]),
        early_stopping_patience=train.early_stopping_patience,
        reduce_lr_factor=train.reduce_lr_factor, reduce_lr_patience=train.reduce_lr_patience,
    )
    metrics.update(model=MODULE, module=MODULE, backbone=train.backbone,
                   placement=attention.placement or "last block")
    finish_training(model, name=MODULE, history=history, metrics=metrics,
                    model_path=layout.model_path(MODULE), metrics_path=layout.metrics_path(MODULE),
                    plots_dir=layout.PLOTS_DIR / "attention" / MODULE,
                    example_images=data.example_images,
                    registered_model=params.tracking.registered_model)
    discard_backups(backup_dir)


if __name__ == "__main__":
    run_stage(f"attention@{MODULE}", main, sections=("attention", "train"),
              log_system_metrics=True)
