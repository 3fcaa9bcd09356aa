"""DVC stage `counterfactuals`: for each model, image set and method, the minimal change that
flips the model's answer.

The sampled set goes towards `counterfactuals.target`; the misclassified set towards each
image's true label ("what minimal change would fix this mistake?").
"""

import numpy as np

from pixelflip.stage import layout
from pixelflip.stage.frame import run_stage
from pixelflip.tracking.runs import log_artifacts, log_metrics


def main(params):
    from pixelflip.counterfactuals import make_counterfactual
    from pixelflip.counterfactuals.result import write_result
    from pixelflip.data.loaders import load_classes, load_split
    from pixelflip.explanation.image_sets import load_image_sets
    from pixelflip.explanation.targets import target_class_index
    from pixelflip.models.loading import load_classifier
    from pixelflip.stage.files import atomic_path

    options = params.counterfactuals
    classes = load_classes(layout.PREPARED_DIR)
    class_index = target_class_index(options.target_class, classes)
    train_images, train_labels = load_split(layout.PREPARED_DIR, "train")
    # Every method sees the training split: the region method draws its distractors from it,
    # the prototype-guided one trains its autoencoder and takes its prototypes from it.
    methods = [make_counterfactual(name, **options.options(name), batch_size=options.batch_size,
                                   random_state=params.seed).fit(train_images, train_labels)
               for name in options.methods]
    with atomic_path(layout.COUNTERFACTUALS_DIR) as out_dir:
        out_dir.mkdir()  # also when every image set is empty, so the output exists
        for name in layout.model_names(params.attention.modules):
            model = load_classifier(layout.model_path(name))
            for image_set in load_image_sets(layout.selected_dir(name)):
                if not len(image_set.indices):
                    continue
                targets = image_set.targets(options.target, class_index)
                for method in methods:
                    result = method.explain(model, image_set.images, targets)
                    write_result(result, layout.explanation_path(out_dir, name, image_set.name,
                                                                 method.name),
                                 class_names=classes,
                                 test_indices=image_set.indices[result.sources],
                                 true_labels=image_set.labels[result.sources])
                    key = f"{name}.{image_set.name}.{method.name}"
                    log_metrics({f"{key}.validity": float(np.mean(result.success)),
                                 f"{key}.seconds_per_image": float(np.mean(result.seconds)),
                                 f"{key}.compile_seconds": method.compile_seconds})
                    compiled = (f" (+{method.compile_seconds:.1f} s compiling)"
                                if method.compile_seconds else "")
                    print(f"[counterfactuals] {key}: {int(result.success.sum())}/{len(result)} "
                          f"valid, {np.mean(result.seconds):.3f} s per image{compiled}",
                          flush=True)
        log_artifacts(out_dir, artifact_path="counterfactuals")


if __name__ == "__main__":
    run_stage("counterfactuals", main)
