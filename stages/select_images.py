"""DVC stage `select`: per model, the test images every explanation stage explains.

`select.num_images` drawn by the seed (the `sampled` set) and up to `select.misclassified` of
the model's mistakes (the `misclassified` set), written once so that attributions and
counterfactuals explain exactly the same images.
"""

from pixelflip.stage import layout
from pixelflip.stage.console import progress
from pixelflip.stage.frame import run_stage


def main(params):
    from pixelflip.data.loaders import load_split
    from pixelflip.explanation.image_sets import save_image_sets, select_test_images
    from pixelflip.models.loading import load_classifier
    from pixelflip.stage.files import atomic_path

    select = params.select
    test_images, test_labels = load_split(layout.PREPARED_DIR, "test")
    with atomic_path(layout.SELECTED_DIR) as out_dir:
        names = layout.model_names(params.attention.modules)
        for position, name in enumerate(names, 1):
            progress("select", model=(position, len(names), name))
            image_sets = select_test_images(
                load_classifier(layout.model_path(name)), test_images, test_labels,
                num_images=select.num_images, misclassified=select.misclassified,
                seed=params.seed, batch_size=select.batch_size)
            save_image_sets(image_sets, out_dir / name)
            print(f"[select] {name}: " + ", ".join(
                f"{len(image_set.indices)} {image_set.name}" for image_set in image_sets),
                flush=True)


if __name__ == "__main__":
    run_stage("select", main)
