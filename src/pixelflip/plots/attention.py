"""Where the model looks: attention maps laid over the images they were computed on.

An attention map here is one value in [0, 1] per pixel, already at the image's resolution (for
example a CBAM spatial-attention map upsampled to the input). Colours use a fixed 0-to-1 scale,
never one stretched per map, so maps of different layers, and of an image and its counterfactual,
can be compared by eye.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure

from pixelflip.config.checks import check_integer
from pixelflip.plots.common import _check_image, _draw_image, _new_figure

ATTENTION_COLORMAP = "inferno"
ATTENTION_OPACITY = 0.5


def attention_overlay(
    image,
    attention_map,
    *,
    colormap: str | Colormap = ATTENTION_COLORMAP,
    opacity: float = ATTENTION_OPACITY,
) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1]: ``attention_map`` in ``colormap`` laid over ``image``.

    Parameters
    ----------
    image : array of shape (H, W, C), C in {1, 3}, pixels in [0, 1]
        Greyscale images show through in grey, RGB in colour.
    attention_map : array of shape (H, W), values in [0, 1]
        Values outside [0, 1] are clipped; 0 takes the colormap's first colour, 1 its last.
    colormap : str or Colormap, default "inferno"
    opacity : float in [0, 1], default 0.5
        Weight of the map's colour: 0 gives the image back, 1 the map alone.

    Raises
    ------
    ValueError
        If ``image`` is not (H, W, 1) or (H, W, 3), ``attention_map`` is not (H, W), either holds
        NaN or infinite values, ``opacity`` is outside [0, 1] or ``colormap`` is unknown.
    """
    image = _check_image("image", image)
    attention_map = np.asarray(attention_map, dtype=np.float32)
    if attention_map.shape != image.shape[:2]:
        raise ValueError(
            f"attention_map has shape {attention_map.shape}; expected {image.shape[:2]}, the "
            "image's height and width."
        )
    _check_finite("image", image)
    _check_finite("attention_map", attention_map)
    if isinstance(opacity, bool) or not isinstance(opacity, numbers.Real) or not (
        0.0 <= opacity <= 1.0
    ):
        raise ValueError(f"opacity={opacity!r} is invalid; expected a number in [0, 1].")
    background = np.broadcast_to(np.clip(image, 0.0, 1.0), (*image.shape[:2], 3))
    heat = _colormap(colormap)(np.clip(attention_map, 0.0, 1.0))[..., :3]
    return ((1.0 - opacity) * background + opacity * heat).astype(np.float32)


def plot_attention_maps(
    images,
    maps: Mapping[str, np.ndarray],
    *,
    titles: Sequence[str] | None = None,
    counterfactuals: np.ndarray | None = None,
    counterfactual_maps: Mapping[str, np.ndarray] | None = None,
    max_images: int = 8,
) -> Figure:
    """One row per image: the image, then each attention layer's map laid over it.

    Parameters
    ----------
    images : array of shape (N, H, W, C), C in {1, 3}, float pixels in [0, 1]
    maps : mapping of attention layer name -> array of shape (N, H, W), values in [0, 1]
        One map per image, already at the image's resolution ((N, H, W, 1) is accepted too).
        Panels are titled with the layer name, in the mapping's order.
    titles : sequence of N str, optional
        Titles of the image panels, for example the true and predicted class; default
        "image #<index>".
    counterfactuals : array of the shape of ``images``, optional
        The counterfactual of each image. Given together with ``counterfactual_maps`` (the
        same layers, the same shapes), each row goes on with the counterfactual and its maps,
        titled with the mean absolute change of attention, so one sees whether attention moved
        when the prediction flipped.
    counterfactual_maps : mapping of layer name -> array of shape (N, H, W), optional
    max_images : int >= 1, default 8
        Rows drawn: the first ``max_images`` images.

    Each map is drawn with :func:`attention_overlay` (inferno at half opacity, fixed 0-to-1
    scale) and one colour bar serves all of them. Axes carry the labels ``image``,
    ``attention``, ``counterfactual`` and ``counterfactual attention`` for callers and tests.

    Raises
    ------
    ValueError
        If an argument has the wrong shape (the message names it), ``maps`` is empty, only one of
        ``counterfactuals`` and ``counterfactual_maps`` is given, their layers differ from those
        of ``maps``, or ``max_images`` is not a positive integer.
    """
    images = _check_batch("images", images)
    maps = _check_maps("maps", maps, images.shape[:3])
    if (counterfactuals is None) != (counterfactual_maps is None):
        raise ValueError(
            "counterfactuals and counterfactual_maps go together; pass both to draw the "
            "counterfactuals' attention, or neither."
        )
    if counterfactuals is not None:
        counterfactuals = _check_batch("counterfactuals", counterfactuals)
        if counterfactuals.shape != images.shape:
            raise ValueError(
                f"counterfactuals has shape {counterfactuals.shape}; expected {images.shape}, "
                "the shape of images."
            )
        counterfactual_maps = _check_maps(
            "counterfactual_maps", counterfactual_maps, images.shape[:3]
        )
        if set(counterfactual_maps) != set(maps):
            raise ValueError(
                f"counterfactual_maps has layers {sorted(counterfactual_maps)}; expected the "
                f"layers of maps, {sorted(maps)}."
            )
    if titles is not None:
        titles = [str(title) for title in titles]
        if len(titles) != len(images):
            raise ValueError(
                f"titles has {len(titles)} entries; expected {len(images)}, one per image."
            )
    rows = min(len(images), check_integer("max_images", max_images, minimum=1))

    columns_per_image = 1 + len(maps)
    columns = columns_per_image * (1 if counterfactuals is None else 2)
    figure = _new_figure(figsize=(2.3 * columns + 0.8, 2.5 * rows + 0.5))
    axes = np.asarray(figure.subplots(rows, columns)).reshape(rows, columns)
    for row in range(rows):
        title = titles[row] if titles is not None else f"image #{row}"
        _draw_image_and_maps(axes[row, :columns_per_image], images[row], maps, row, title)
        if counterfactuals is not None:
            _draw_image_and_maps(
                axes[row, columns_per_image:], counterfactuals[row], counterfactual_maps, row,
                "counterfactual", compare_to=maps,
            )
    attention_axes = [axis for axis in axes.ravel() if axis.get_label().endswith("attention")]
    figure.colorbar(
        ScalarMappable(norm=Normalize(vmin=0.0, vmax=1.0), cmap=_colormap(ATTENTION_COLORMAP)),
        ax=attention_axes, label="attention", shrink=min(1.0, 0.9 / rows + 0.1),
    )
    figure.suptitle(
        "attention: image and counterfactual" if counterfactuals is not None else "attention"
    )
    return figure


def _draw_image_and_maps(axes, image, maps, row: int, title: str, *, compare_to=None) -> None:
    """The image in ``axes[0]``, then one overlay per layer of ``maps``, for image ``row``."""
    prefix = "" if compare_to is None else "counterfactual "
    _draw_image(axes[0], image, title, label=prefix.strip() or "image")
    for axis, (layer, layer_maps) in zip(axes[1:], maps.items()):
        panel_title = layer
        if compare_to is not None:
            change = float(np.abs(layer_maps[row] - compare_to[layer][row]).mean())
            panel_title = f"{layer} (counterfactual)\nmean change {change:.2f}"
        _draw_image(axis, attention_overlay(image, layer_maps[row]), panel_title,
                    label=f"{prefix}attention")


def _check_batch(name: str, images) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise ValueError(
            f"{name} has shape {images.shape}; expected (N, H, W, C) with N >= 1 and 1 or 3 "
            "channels."
        )
    _check_finite(name, images)
    return images


def _check_maps(name: str, maps, expected_shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    if not isinstance(maps, Mapping) or not maps:
        description = f"an empty {type(maps).__name__}" if isinstance(maps, Mapping) else (
            f"a {type(maps).__name__}"
        )
        raise ValueError(
            f"{name} is {description}; expected a mapping of attention layer name to maps of "
            f"shape {tuple(expected_shape)}, with at least one layer."
        )
    checked = {}
    for layer, layer_maps in maps.items():
        layer_maps = np.asarray(layer_maps, dtype=np.float32)
        if layer_maps.ndim == 4 and layer_maps.shape[-1] == 1:
            layer_maps = layer_maps[..., 0]
        if layer_maps.shape != tuple(expected_shape):
            raise ValueError(
                f"{name}[{layer!r}] has shape {layer_maps.shape}; expected {tuple(expected_shape)}"
                ", one map per image at the image's resolution."
            )
        _check_finite(f"{name}[{layer!r}]", layer_maps)
        checked[str(layer)] = layer_maps
    return checked


def _check_finite(name: str, array: np.ndarray) -> None:
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values; expected finite numbers.")


def _colormap(colormap: str | Colormap) -> Colormap:
    if isinstance(colormap, Colormap):
        return colormap
    try:
        return matplotlib.colormaps[colormap]
    except KeyError:
        raise ValueError(
            f"colormap={colormap!r} is not a matplotlib colormap; expected a name such as "
            f"{ATTENTION_COLORMAP!r} or 'jet'."
        ) from None
