"""Score-CAM (Wang et al. 2020) on tf-keras-vis."""

from __future__ import annotations

from tf_keras_vis.scorecam import Scorecam

from pixelflip.attributions.class_activation import ClassActivationMap, target_score


class ScoreCAM(ClassActivationMap):
    """Score-CAM (Wang et al. 2020): each channel weighted by the target probability of the
    image masked by that channel's upsampled, normalised activation map.

    It costs one forward pass per image and channel of ``layer_name``; all channels are used
    (tf-keras-vis's ``max_N`` shortcut picks channels across the whole batch, which would make
    an image's map depend on the other images in its batch).

    Parameters
    ----------
    layer_name : str or None, default None
        As for :class:`GradCAM`.
    batch_size : int, default 128
        Masked images per forward pass; each call takes ``max(1, batch_size // channels)`` images.
    random_state : int or None, default 0
        Accepted for the shared interface; Score-CAM makes no random choices.
    """


    def __init__(
        self, *, layer_name: str | None = None, batch_size: int = 128, random_state: int | None = 0
    ) -> None:
        super().__init__(layer_name=layer_name, batch_size=batch_size, random_state=random_state)

    def _images_per_call(self, prepared) -> int:
        return max(1, self.batch_size // prepared[2])

    def _attribute(self, prepared, images, targets):
        return Scorecam(prepared[0], clone=False)(
            target_score(targets), images, batch_size=self.batch_size,
            **self._call_keywords(prepared),
        )
