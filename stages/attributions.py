"""DVC stage `attributions`: which pixels made each model say its class (Grad-CAM, Score-CAM,
SmoothGrad, LIME), on the image sets `select` chose, one figure per model."""

import numpy as np

from pixelflip.stage import layout
from pixelflip.stage.console import progress
from pixelflip.stage.frame import run_stage
from pixelflip.tracking.runs import log_artifacts, log_metrics


def main(params):
    from pixelflip.attributions import make_attribution
    from pixelflip.data.loaders import load_classes
    from pixelflip.explanation.image_sets import load_image_sets
    from pixelflip.models.loading import load_classifier
    from pixelflip.plots.common import save_figure
    from pixelflip.plots.explanations import plot_attribution_maps
    from pixelflip.stage.files import atomic_path

    options = params.attributions
    methods = [make_attribution(name, **options.options(name), batch_size=options.batch_size,
                                random_state=params.seed) for name in options.methods]
    classes = load_classes(layout.PREPARED_DIR)
    with atomic_path(layout.ATTRIBUTIONS_DIR) as out_dir:
        names = layout.model_names(params.attention.modules)
        for model_position, name in enumerate(names, 1):
            model = load_classifier(layout.model_path(name))
            image_sets = load_image_sets(layout.selected_dir(name))
            sampled, sampled_maps = image_sets[0], {}
            for set_position, image_set in enumerate(image_sets, 1):
                if not len(image_set.indices):
                    continue
                progress("attributions", model=(model_position, len(names), name),
                         set=(set_position, len(image_sets), image_set.name))
                # The class each model predicted: the answer the counterfactual then overturns.
                predictions = image_set.probabilities.argmax(axis=1)
                for method in methods:
                    result = method.explain(model, image_set.images, predictions)
                    result.save(layout.explanation_path(out_dir, name, image_set.name, method.name))
                    if image_set is sampled:
                        sampled_maps[method.name] = result.maps
                    key = f"{name}.{image_set.name}.{method.name}"
                    log_metrics({f"{key}.seconds_per_image": float(np.mean(result.seconds))})
                    print(f"[attributions] {key}: {len(result)} maps, "
                          f"{np.mean(result.seconds):.3f} s per image", flush=True)
            save_figure(plot_attribution_maps(
                sampled.images, sampled_maps, class_names=classes,
                predictions=sampled.probabilities.argmax(axis=1),
                max_images=params.select.figure_images,
                title=f"{name}: what each attribution method says the model looked at"),
                layout.ATTRIBUTION_PLOTS_DIR / f"{name}.png")
        log_artifacts(out_dir, artifact_path="attributions")
    log_artifacts(layout.ATTRIBUTION_PLOTS_DIR, artifact_path="plots")


if __name__ == "__main__":
    run_stage("attributions", main)
