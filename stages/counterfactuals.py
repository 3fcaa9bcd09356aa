"""DVC stage `counterfactuals`: for each model and method, the minimal change that flips its answer.

Two image sets per model: `counterfactuals.num_images` test images drawn by the seed, explained
towards `counterfactuals.target`, and up to `counterfactuals.misclassified` of the model's
mistakes, explained towards their true label ("what minimal change would fix this mistake?").
"""

import dataclasses

import numpy as np

from pixelflip import layout, tracking
from pixelflip.io import atomic_path, write_json
from pixelflip.stage import StageError, run_stage


def main(params):
    from pixelflip.data.loaders import load_classes, load_split
    from pixelflip.explain import make_counterfactual, select_test_images
    from pixelflip.models.training import load_classifier

    options = params.counterfactuals
    classes = load_classes(layout.PREPARED_DIR)
    if options.target == "class" and options.target_class not in classes:
        raise StageError(f"counterfactuals.target_class '{options.target_class}' is not a class; "
                         f"allowed: {', '.join(classes)}")
    methods = [make_counterfactual(name, **dataclasses.asdict(options.method(name)),
                                   batch_size=options.batch_size, random_state=params.seed)
               for name in options.methods]
    test_images, test_labels = load_split(layout.PREPARED_DIR, "test")
    plots_dir = layout.PLOTS_DIR / "counterfactuals"
    plots_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(layout.COUNTERFACTUALS_DIR) as out_dir:
        out_dir.mkdir()
        for name in layout.model_names(params.attention.modules):
            model = load_classifier(layout.model_path(name))
            image_sets = select_test_images(
                model, test_images, test_labels, num_images=options.num_images,
                misclassified=options.misclassified, seed=params.seed,
                batch_size=options.batch_size)
            (out_dir / name).mkdir()
            write_json(out_dir / name / "sets.json",
                            {image_set.name: image_set.indices.tolist() for image_set in image_sets})
            for image_set in image_sets:
                if len(image_set.indices):
                    explain_set(model, name, image_set, methods, options, classes, out_dir)
            sampled = layout.explanation_path(out_dir, name, "sampled", methods[0].name)
            export_attention_maps(model, sampled, out_dir / name / "attention.npz",
                                  plots_dir / f"{name}_attention.png",
                                  batch_size=options.batch_size, max_images=options.figure_images)
        tracking.log_artifacts(out_dir, artifact_path="counterfactuals")
    tracking.log_artifacts(plots_dir, artifact_path="plots")


def explain_set(model, model_name, image_set, methods, options, classes, out_dir):
    """Every method on one image set; writes ``<model>/<set>_<method>.npz`` and ``.csv``."""
    from pixelflip.explain import resolve_targets

    strategy = options.target if image_set.name == "sampled" else "true_label"
    class_index = classes.index(options.target_class) if options.target_class else None
    targets = resolve_targets(strategy, image_set.probabilities, labels=image_set.labels,
                              class_index=class_index)
    for method in methods:
        result = method.explain(model, image_set.images, targets)
        path = layout.explanation_path(out_dir, model_name, image_set.name, method.name)
        result.save(path)
        frame = result.to_frame(class_names=classes)
        frame.insert(0, "test_index", image_set.indices)
        frame.insert(1, "true_label", [classes[label] for label in image_set.labels])
        frame.to_csv(path.with_suffix(".csv"), index=False, float_format="%.6g")
        key = f"{model_name}.{image_set.name}.{method.name}"
        tracking.log_metrics({f"{key}.validity": float(np.mean(result.success)),
                              f"{key}.seconds_per_image": float(np.mean(result.seconds))})
        print(f"[counterfactuals] {model_name} {method.name} ({image_set.name}, target "
              f"{strategy}): {int(result.success.sum())}/{len(result)} valid, "
              f"{np.mean(result.seconds):.3f} s per image", flush=True)


def export_attention_maps(model, result_path, arrays_path, figure_path, *, batch_size, max_images):
    """Where each attention module looks, on the sampled originals and their counterfactuals.

    Writes ``<model>/attention.npz`` (``original/<layer>`` and ``counterfactual/<layer>`` maps,
    (N, H, W) in [0, 1]) and a figure; a model without attention layers (the base) gets none.
    """
    from pixelflip.explain import CounterfactualResult
    from pixelflip.models.attention import attention_maps
    from pixelflip.plots import plot_attention_maps, save_figure

    result = CounterfactualResult.load(result_path)
    before = attention_maps(model, result.originals, batch_size=batch_size)
    if not before:
        return
    after = attention_maps(model, result.counterfactuals, batch_size=batch_size)
    np.savez_compressed(arrays_path, **{f"original/{layer}": maps for layer, maps in before.items()},
                        **{f"counterfactual/{layer}": maps for layer, maps in after.items()})
    save_figure(plot_attention_maps(result.originals, before, counterfactuals=result.counterfactuals,
                                    counterfactual_maps=after, max_images=max_images), figure_path)


if __name__ == "__main__":
    run_stage("counterfactuals", main, sections=("counterfactuals",))
