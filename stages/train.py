"""DVC stage `train`: fit the base classifier (`train.backbone`) on the prepared training split."""

from pixelflip.stage import layout
from pixelflip.stage.frame import run_stage


def main(params):
    from pixelflip.training.run import (
        Phase,
        TrainingJob,
        schedule_of,
        start_training,
        train_and_save,
    )

    train = params.train
    strategy, data = start_training(random_state=params.seed, batch_size=train.batch_size,
                                    mixed_precision=train.mixed_precision, augment=train.augment,
                                    class_weight=train.class_weight)
    from pixelflip.models.backbones import build_classifier

    with strategy.scope():
        model = build_classifier(data.example_images.shape[1:], data.num_classes,
                                 backbone=train.backbone, weights=train.weights,
                                 input_size=train.input_size, conv_filters=train.conv_filters,
                                 dense_units=train.dense_units, dropout_rate=train.dropout_rate)
    name = layout.BASE_MODEL_NAME
    train_and_save(model, data, TrainingJob(
        name=name, stage="train", phases=(Phase("all", train.epochs),),
        learning_rate=train.learning_rate, schedule=schedule_of(train), random_state=params.seed,
        settings=params.declared_values(), inputs=(layout.MANIFEST_CSV,),
        labels={"model": name, "module": "none", "backbone": train.backbone},
        model_path=layout.model_path(name), metrics_path=layout.metrics_path(name),
        timings_path=layout.timings_path(name), plots_dir=layout.TRAIN_PLOTS_DIR,
        registered_model=params.tracking.registered_model), strategy=strategy)


if __name__ == "__main__":
    run_stage("train", main, log_system_metrics=True)
