"""DVC stage `attributions`: which pixels made each model say its class (Grad-CAM, Score-CAM,
SmoothGrad, LIME), on the same test images the `counterfactuals` stage explains."""

import numpy as np

from pixelflip import layout, tracking
from pixelflip.io import atomic_path, write_json
from pixelflip.stage import run_stage


def main(params):
    from pixelflip.data.loaders import load_classes, load_split
    from pixelflip.explain import make_attribution, select_test_images
    from pixelflip.models.training import load_classifier
    from pixelflip.plots import plot_attribution_maps, save_figure

    options, chosen = params.attributions, params.counterfactuals
    methods = [make_attribution(name, **options.options(name), batch_size=options.batch_size,
                                random_state=params.seed) for name in options.methods]
    classes = load_classes(layout.PREPARED_DIR)
    test_images, test_labels = load_split(layout.PREPARED_DIR, "test")
    plots_dir = layout.PLOTS_DIR / "attributions"
    plots_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(layout.ATTRIBUTIONS_DIR) as out_dir:
        out_dir.mkdir()
        for name in layout.model_names(params.attention.modules):
            model = load_classifier(layout.model_path(name))
            image_sets = select_test_images(
                model, test_images, test_labels, num_images=chosen.num_images,
                misclassified=chosen.misclassified, seed=params.seed,
                batch_size=chosen.batch_size)
            (out_dir / name).mkdir()
            write_json(out_dir / name / "sets.json",
                       {image_set.name: image_set.indices.tolist() for image_set in image_sets})
            sampled_maps = {}
            for image_set in (image_set for image_set in image_sets if len(image_set.indices)):
                # The class each model predicted: the answer the counterfactual then overturns.
                predictions = image_set.probabilities.argmax(axis=1)
                for method in methods:
                    result = method.explain(model, image_set.images, predictions)
                    result.save(layout.explanation_path(out_dir, name, image_set.name, method.name))
                    if image_set.name == "sampled":
                        sampled_maps[method.name] = result.maps
                    tracking.log_metrics({f"{name}.{image_set.name}.{method.name}.seconds_per_image":
                                          float(np.mean(result.seconds))})
                    print(f"[attributions] {name} {method.name} ({image_set.name}): "
                          f"{len(result)} maps, {np.mean(result.seconds):.3f} s per image",
                          flush=True)
            sampled = image_sets[0]
            save_figure(plot_attribution_maps(
                sampled.images, sampled_maps, class_names=classes,
                predictions=sampled.probabilities.argmax(axis=1),
                max_images=params.counterfactuals.figure_images,
                title=f"{name}: what each attribution method says the model looked at"),
                plots_dir / f"{name}.png")
        tracking.log_artifacts(out_dir, artifact_path="attributions")
    tracking.log_artifacts(plots_dir, artifact_path="plots")


if __name__ == "__main__":
    run_stage("attributions", main, sections=("attributions",))
