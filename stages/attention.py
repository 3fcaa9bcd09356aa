"""DVC stage `attention@<module>`: insert one attention module into the base CNN and fine-tune."""

from pixelflip import layout, tracking
from pixelflip.stage import StageError, run_stage, stage_argument

MODULE = stage_argument(1, "module")


def main(params):
    from pixelflip.data.loaders import load_split
    from pixelflip.device import describe_device
    from pixelflip.models.attention import add_attention
    from pixelflip.models.training import (load_classifier, measure_inference_ms,
                                           set_global_seed)
    from pixelflip.training_run import finish_training, fit_and_evaluate, load_datasets

    attention, train = params.attention, params.train
    if MODULE not in attention.modules:
        raise StageError(f"module '{MODULE}' is not in attention.modules {attention.modules}; "
                         "add it there (dvc.yaml expands one stage per listed module)")
    set_global_seed(params.seed)
    tracking.log_params(describe_device())
    test_images, _ = load_split(layout.PREPARED_DIR, "test")
    datasets = load_datasets(layout.PREPARED_DIR, batch_size=attention.batch_size,
                             random_state=params.seed, augment=params.train.augment)
    base = load_classifier(layout.BASE_MODEL)
    model = add_attention(base, MODULE, placement=attention.placement,
                          reduction_ratio=attention.reduction_ratio)
    history, metrics = fit_and_evaluate(
        model, datasets, learning_rate=attention.learning_rate, epochs=attention.epochs,
        early_stopping_patience=train.early_stopping_patience,
        reduce_lr_factor=train.reduce_lr_factor, reduce_lr_patience=train.reduce_lr_patience,
    )
    examples = test_images[:256].astype("float32") / 255.0
    metrics["module"] = MODULE
    metrics["inference_ms_per_image"] = round(measure_inference_ms(model, examples), 4)
    finish_training(model, name=MODULE, history=history, metrics=metrics,
                    model_path=layout.model_path(MODULE),
                    metrics_path=layout.METRICS_DIR / "attention" / f"{MODULE}.json",
                    plots_dir=layout.PLOTS_DIR / "attention" / MODULE,
                    example_images=examples[:2])


if __name__ == "__main__":
    run_stage(f"attention@{MODULE}", main, sections=("attention",))
