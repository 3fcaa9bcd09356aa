"""DVC stage `oracle`: train the independent classifier (`oracle.backbone`, `oracle.seed`) that
`evaluate` asks whether each counterfactual really shows its target class."""

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

    oracle, train = params.oracle, params.train
    strategy, data = start_training(random_state=oracle.seed, batch_size=oracle.batch_size,
                                    mixed_precision=train.mixed_precision, augment=train.augment,
                                    class_weight=train.class_weight)
    from pixelflip.models.backbones import build_classifier

    with strategy.scope():
        model = build_classifier(data.example_images.shape[1:], data.num_classes,
                                 backbone=oracle.backbone, input_size=oracle.input_size,
                                 conv_filters=oracle.conv_filters,
                                 dense_units=oracle.dense_units, dropout_rate=oracle.dropout_rate,
                                 name=layout.ORACLE_MODEL_NAME)
    name = layout.ORACLE_MODEL_NAME
    train_and_save(model, data, TrainingJob(
        name=name, stage="oracle", phases=(Phase("all", oracle.epochs),),
        learning_rate=oracle.learning_rate, schedule=schedule_of(train),
        random_state=oracle.seed, settings=params.declared_values(),
        inputs=(layout.MANIFEST_CSV,),
        labels={"model": name, "module": "none", "backbone": oracle.backbone},
        model_path=layout.ORACLE_MODEL, metrics_path=layout.ORACLE_METRICS,
        timings_path=layout.ORACLE_TIMINGS, plots_dir=layout.ORACLE_PLOTS_DIR,
        # Its own registered model: the oracle judges the classifiers and must never become
        # their @best.
        registered_model=f"{params.tracking.registered_model}-oracle"), strategy=strategy)


if __name__ == "__main__":
    run_stage("oracle", main, log_system_metrics=True)
