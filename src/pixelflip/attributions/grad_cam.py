"""Grad-CAM (Selvaraju et al. 2017) on tf-keras-vis."""

from __future__ import annotations

from tf_keras_vis.gradcam import Gradcam

from pixelflip.attributions.class_activation import ClassActivationMap, target_score


class GradCAM(ClassActivationMap):
    """Grad-CAM (Selvaraju et al. 2017): feature maps weighted by their mean gradient, ReLU'd.

    Parameters
    ----------
    layer_name : str or None, default None
        Layer whose activations (N, h, w, channels) are weighed; None takes the last feature block
        (``block{i}``). The map is resized to the image bilinearly.
    batch_size : int, default 64
        Images per forward and backward pass.
    random_state : int or None, default 0
        Accepted for the interface shared by all methods; Grad-CAM makes no random choices.
    """


    def __init__(
        self, *, layer_name: str | None = None, batch_size: int = 64, random_state: int | None = 0
    ) -> None:
        super().__init__(layer_name=layer_name, batch_size=batch_size, random_state=random_state)

    def _attribute(self, prepared, images, targets):
        return Gradcam(prepared[0], clone=False)(
            target_score(targets), images, **self._call_keywords(prepared)
        )
