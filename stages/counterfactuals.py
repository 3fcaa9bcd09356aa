"""DVC stage `counterfactuals`: for each model, the minimal change that flips its prediction."""

import numpy as np

from pixelflip import layout, tracking
from pixelflip.io import atomic_path
from pixelflip.stage import StageError, run_stage


def main(params):
    from pixelflip.data.loaders import load_classes, load_split
    from pixelflip.explain.gradient import ElasticNetCounterfactual
    from pixelflip.explain.targets import resolve_targets
    from pixelflip.models.training import load_classifier
    from pixelflip.plots import plot_counterfactual_grid, save_figure

    options = params.counterfactuals
    classes = load_classes(layout.PREPARED_DIR)
    if options.target == "class" and options.target_class not in classes:
        raise StageError(f"counterfactuals.target_class '{options.target_class}' is not a class; "
                         f"allowed: {', '.join(classes)}")
    test_images, test_labels = load_split(layout.PREPARED_DIR, "test")
    chosen = choose_images(len(test_images), options.num_images, params.seed)
    images = test_images[chosen].astype(np.float32) / 255.0
    labels = np.asarray(test_labels[chosen])
    engine = ElasticNetCounterfactual(
        max_iterations=options.max_iterations, learning_rate=options.learning_rate,
        l1_weight=options.l1_weight, l2_weight=options.l2_weight,
        initial_prediction_weight=options.initial_prediction_weight,
        binary_search_steps=options.binary_search_steps, confidence=options.confidence,
        batch_size=options.batch_size, random_state=params.seed,
    )
    plots_dir = layout.PLOTS_DIR / "counterfactuals"
    plots_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(layout.COUNTERFACTUALS_DIR) as out_dir:
        out_dir.mkdir()
        for name in layout.model_names(params.attention.modules):
            model = load_classifier(layout.model_path(name))
            probabilities = model.predict(images, batch_size=options.batch_size, verbose=0)
            targets = resolve_targets(
                options.target, probabilities, labels=labels,
                class_index=classes.index(options.target_class) if options.target_class else None)
            result = engine.explain(model, images, targets)
            result.save(out_dir / f"{name}.npz")
            frame = result.to_frame(class_names=classes)
            frame.insert(0, "test_index", chosen)
            frame.to_csv(out_dir / f"{name}.csv", index=False, float_format="%.6g")
            figure = plot_counterfactual_grid(result, classes, max_images=options.figure_images)
            save_figure(figure, plots_dir / f"{name}_grid.png")
            save_figure(example_figure(result, classes), plots_dir / f"{name}_example.png")
            export_attention_maps(model, result, out_dir / f"{name}_attention.npz",
                                  plots_dir / f"{name}_attention.png",
                                  batch_size=options.batch_size, max_images=options.figure_images)
            tracking.log_metrics({f"{name}.validity": float(np.mean(result.success)),
                                  f"{name}.seconds_per_image": float(np.mean(result.seconds))})
            print(f"[counterfactuals] {name}: {int(result.success.sum())}/{len(result)} valid, "
                  f"{np.mean(result.seconds):.3f} s per image", flush=True)
        tracking.log_artifacts(out_dir, artifact_path="counterfactuals")
    tracking.log_artifacts(plots_dir, artifact_path="plots")


def export_attention_maps(model, result, arrays_path, figure_path, *, batch_size, max_images):
    """Where each attention module looks, on the originals and on their counterfactuals.

    Writes ``<model>_attention.npz`` (``original/<layer>`` and ``counterfactual/<layer>`` maps,
    (N, H, W) in [0, 1]) and a figure; a model without attention layers (the base) gets none.
    """
    from pixelflip.models.attention import attention_maps
    from pixelflip.plots import plot_attention_maps, save_figure

    before = attention_maps(model, result.originals, batch_size=batch_size)
    if not before:
        return
    after = attention_maps(model, result.counterfactuals, batch_size=batch_size)
    np.savez_compressed(arrays_path, **{f"original/{layer}": maps for layer, maps in before.items()},
                        **{f"counterfactual/{layer}": maps for layer, maps in after.items()})
    save_figure(plot_attention_maps(result.originals, before, counterfactuals=result.counterfactuals,
                                    counterfactual_maps=after, max_images=max_images), figure_path)


def choose_images(available, wanted, seed):
    """Indices of ``wanted`` test images, drawn by the seed, sorted so tables read in order."""
    count = min(wanted, available)
    return np.sort(np.random.default_rng(seed).choice(available, size=count, replace=False))


def example_figure(result, classes):
    """Original -> Counterfactual -> Perturbation for the first image whose search succeeded."""
    from pixelflip.plots import plot_counterfactual

    index = int(np.argmax(result.success)) if result.success.any() else 0
    before, after = result.original_predictions[index], result.counterfactual_predictions[index]
    return plot_counterfactual(
        result.originals[index], result.counterfactuals[index], result.perturbations[index],
        original_label=classes[before], counterfactual_label=classes[after],
        original_probability=float(result.original_probabilities[index, before]),
        counterfactual_probability=float(result.counterfactual_probabilities[index, after]),
        title=f"{result.method}: {classes[before]} -> {classes[after]}",
    )


if __name__ == "__main__":
    run_stage("counterfactuals", main, sections=("counterfactuals",))
