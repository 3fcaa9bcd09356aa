"""DVC stage `attention@<module>`: insert one attention module into the base model, fine-tune."""

from pixelflip.stage import layout
from pixelflip.stage.frame import run_stage, stage_argument

MODULE = stage_argument(1, "module")


def main(params):
    from pixelflip.training.run import (
        Phase,
        TrainingJob,
        attention_only,
        schedule_of,
        start_training,
        train_and_save,
    )

    attention, train = params.attention, params.train
    strategy, data = start_training(random_state=params.seed, batch_size=attention.batch_size,
                                    mixed_precision=train.mixed_precision, augment=train.augment,
                                    class_weight=train.class_weight)
    import keras

    from pixelflip.models.attention import add_attention
    from pixelflip.models.loading import load_classifier

    # The base goes on training in the precision train.mixed_precision set as the global policy
    # (load_classifier would otherwise load it in float32, as explanations need it).
    compute_dtype = keras.config.dtype_policy().compute_dtype
    with strategy.scope():
        base = load_classifier(layout.BASE_MODEL, compute_dtype=compute_dtype)
        model = add_attention(base, MODULE, placement=attention.placement,
                              reduction_ratio=attention.module(MODULE).reduction_ratio)
    # The new module first learns on a frozen base, so its random start cannot wreck the
    # trained features; then everything trains together.
    phases = (Phase("frozen", attention.frozen_epochs, attention_only(model)),
              Phase("unfrozen", attention.epochs - attention.frozen_epochs))
    train_and_save(model, data, TrainingJob(
        name=MODULE, stage=f"attention@{MODULE}", phases=phases,
        learning_rate=attention.learning_rate, schedule=schedule_of(train),
        random_state=params.seed, settings=params.declared_values(),
        inputs=(layout.MANIFEST_CSV, layout.BASE_MODEL),
        labels={"model": MODULE, "module": MODULE, "backbone": train.backbone,
                "placement": attention.placement or "last feature block"},
        model_path=layout.model_path(MODULE), metrics_path=layout.metrics_path(MODULE),
        timings_path=layout.timings_path(MODULE), plots_dir=layout.attention_plots_dir(MODULE),
        registered_model=params.tracking.registered_model), strategy=strategy)


if __name__ == "__main__":
    run_stage(f"attention@{MODULE}", main, log_system_metrics=True)
