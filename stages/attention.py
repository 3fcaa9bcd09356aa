"""DVC stage `attention@<module>`: insert one attention module into the base model, fine-tune."""

from pixelflip import layout
from pixelflip.stage import StageError, run_stage, stage_argument

MODULE = stage_argument(1, "module")


def main(params):
    from pixelflip.training_run import Phase, attention_only, start_training, train_and_save

    attention = params.attention
    if MODULE not in attention.modules:
        raise StageError(f"module '{MODULE}' is not in attention.modules {attention.modules}; "
                         "add it there (dvc.yaml expands one stage per listed module)")
    strategy, data = start_training(params, batch_size=attention.batch_size)
    from pixelflip.models.attention import add_attention
    from pixelflip.models.training import load_classifier

    with strategy.scope():
        model = add_attention(load_classifier(layout.BASE_MODEL), MODULE,
                              placement=attention.placement,
                              reduction_ratio=attention.module(MODULE).reduction_ratio)
    # The new module first learns on a frozen base, so its random start cannot wreck the
    # trained features; then everything trains together.
    phases = [Phase("frozen", attention.frozen_epochs, attention_only(model)),
              Phase("unfrozen", attention.epochs - attention.frozen_epochs)]
    train_and_save(
        model, data, name=MODULE, stage=f"attention@{MODULE}", params=params, phases=phases,
        learning_rate=attention.learning_rate, strategy=strategy,
        settings={"module": MODULE, "attention": params.section("attention"),
                  "train": params.section("train")},
        inputs=[layout.MANIFEST_CSV, layout.BASE_MODEL],
        labels={"model": MODULE, "module": MODULE, "backbone": params.train.backbone,
                "placement": attention.placement or "last feature block"},
        model_path=layout.model_path(MODULE), metrics_path=layout.metrics_path(MODULE),
        plots_dir=layout.PLOTS_DIR / "attention" / MODULE)


if __name__ == "__main__":
    run_stage(f"attention@{MODULE}", main, sections=("attention", "train"),
              log_system_metrics=True)
