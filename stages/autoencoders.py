"""DVC stage `autoencoders`: one small autoencoder per class, trained on that class's training
images, and one on every class; `evaluate` scores how plausible each counterfactual is with them
(IM1, IM2)."""

from pixelflip.stage import layout
from pixelflip.stage.files import atomic_path
from pixelflip.stage.frame import run_stage


def main(params):
    import tensorflow as tf

    from pixelflip.data.loaders import load_classes, load_split
    from pixelflip.evaluation.autoencoders import (
        save_class_autoencoders,
        save_shared_autoencoder,
        train_class_autoencoders,
        train_shared_autoencoder,
    )

    # Each class's model is new, so Keras traces its train step anew and TensorFlow warns about
    # "retracing" once per class; that is expected here, not a mistake to chase.
    tf.get_logger().setLevel("ERROR")

    options = params.autoencoders
    classes = load_classes(layout.PREPARED_DIR)
    train_images, train_labels = load_split(layout.PREPARED_DIR, "train")
    print(f"[autoencoders] training {len(classes)} autoencoders, {options.epochs} epochs each, "
          f"on at most {options.max_images_per_class or 'all'} images per class", flush=True)
    training = dict(epochs=options.epochs, batch_size=options.batch_size,
                    learning_rate=options.learning_rate,
                    max_images_per_class=options.max_images_per_class, random_state=params.seed)
    autoencoders = train_class_autoencoders(train_images, train_labels, **training)
    print("[autoencoders] training the shared one, on every class", flush=True)
    shared = train_shared_autoencoder(train_images, train_labels, **training)
    with atomic_path(layout.AUTOENCODERS_DIR) as out_dir:
        save_class_autoencoders(autoencoders, out_dir)
        save_shared_autoencoder(shared, out_dir)
    print(f"[autoencoders] saved one per class ({', '.join(classes)}) and the shared one",
          flush=True)


if __name__ == "__main__":
    run_stage("autoencoders", main)
