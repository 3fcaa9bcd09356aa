"""DVC stage `train`: fit the base classifier (`train.backbone`) on the prepared training split."""

from pixelflip import layout
from pixelflip.stage import run_stage


def main(params):
    from pixelflip.training_run import Phase, start_training, train_and_save

    train = params.train
    strategy, data = start_training(params, batch_size=train.batch_size)
    from pixelflip.models.backbones import build_classifier

    with strategy.scope():
        model = build_classifier(data.example_images.shape[1:], data.num_classes,
                                 backbone=train.backbone, weights=train.weights,
                                 input_size=train.input_size, conv_filters=train.conv_filters,
                                 dense_units=train.dense_units, dropout_rate=train.dropout_rate)
    train_and_save(
        model, data, name=layout.BASE_MODEL_NAME, stage="train", params=params,
        phases=[Phase("all", train.epochs)], learning_rate=train.learning_rate,
        strategy=strategy, settings=params.section("train"), inputs=[layout.MANIFEST_CSV],
        labels={"model": layout.BASE_MODEL_NAME, "module": "none", "backbone": train.backbone},
        model_path=layout.BASE_MODEL, metrics_path=layout.metrics_path(layout.BASE_MODEL_NAME),
        plots_dir=layout.PLOTS_DIR / "train")


if __name__ == "__main__":
    run_stage("train", main, sections=("train",), log_system_metrics=True)
