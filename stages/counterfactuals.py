"""DVC stage `counterfactuals`: for each model, image set and method, the minimal change that
flips the model's answer.

The sampled set goes towards `counterfactuals.target`; the misclassified set towards each
image's true label ("what minimal change would fix this mistake?"). The stage's MLflow run holds
each result as a table too (`tables/<model>.<set>.<method>.json`): one row per counterfactual,
with the original, the counterfactual and the change as images.
"""

import numpy as np

from pixelflip.stage import layout
from pixelflip.stage.console import progress
from pixelflip.stage.frame import run_stage
from pixelflip.tracking.runs import log_artifacts, log_metrics
from pixelflip.tracking.tables import log_counterfactual_table


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
        names = layout.model_names(params.attention.modules)
        for model_position, name in enumerate(names, 1):
            model = load_classifier(layout.model_path(name))
            image_sets = load_image_sets(layout.selected_dir(name))
            for set_position, image_set in enumerate(image_sets, 1):
                if not len(image_set.indices):
                    continue
                progress("counterfactuals", model=(model_position, len(names), name),
                         set=(set_position, len(image_sets), image_set.name))
                targets = image_set.targets(options.target, class_index)
                for method in methods:
                    result = method.explain(model, image_set.images, targets)
                    test_indices = image_set.indices[result.sources]
                    write_result(result, layout.explanation_path(out_dir, name, image_set.name,
                                                                 method.name),
                                 class_names=classes, test_indices=test_indices,
                                 true_labels=image_set.labels[result.sources])
                    key = f"{name}.{image_set.name}.{method.name}"
                    log_counterfactual_table(result, classes, key, test_indices=test_indices)
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
