"""Typed parameters loaded from ``params.yaml``.

Every knob of the pipeline lives in ``params.yaml``, one section per stage plus ``data`` and
``tracking``. Loading checks the whole file before any stage does work, so a typo in the last
section stops the first stage: an unknown key, a wrong type or an out-of-range value raises
:class:`ParamsError` with one line naming the key, the bad value and what is allowed.

Each field declares its constraints in ``field(metadata=...)`` through :func:`knob`, so the
rules sit next to the default they constrain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelflip.config.explanations import (
    AttributionsParams,
    AutoencodersParams,
    CounterfactualsParams,
    EvaluateParams,
    SelectParams,
    check_explanations,
)
from pixelflip.config.knobs import ParamsError, knob
from pixelflip.config.oracle import OracleParams, check_oracle
from pixelflip.config.typed import build_section, merge_overrides, require_every_knob
from pixelflip.config.yaml_file import read_yaml_mapping

# The same tuples as pixelflip.models.backbones.BACKBONES and ATTENTION_MODULES (a test keeps them
# equal); repeated here so that checking params does not import TensorFlow.
OWN_BACKBONES = ("simple_cnn", "separable_resnet")
BACKBONES = (*OWN_BACKBONES, "mobilenet_v2", "efficientnet_b0", "resnet50", "vgg16")
ATTENTION_MODULES = ("se", "cbam", "pam", "gc")


@dataclass(frozen=True)
class KaggleParams:
    dataset: str = knob("bhavikjikadara/dog-and-cat-classification-dataset",
                        help="Kaggle dataset slug, owner/name")


@dataclass(frozen=True)
class DataParams:
    source: str = knob("mnist", choices=("mnist", "folder", "kaggle"),
                       help="where images come from")
    path: str | None = knob(None, help="folder or zip of class folders, for source 'folder'")
    kaggle: KaggleParams = field(default_factory=KaggleParams)
    classes: dict[str, str] | None = knob(None, help="class folder name -> label; null = every "
                                          "folder is its own class")
    image_size: int = knob(28, minimum=8, maximum=1024, help="side of the square model input")
    color_mode: str = knob("grayscale", choices=("grayscale", "rgb"))
    max_images_per_class: int | None = knob(None, minimum=2,
                                            help="validate uses a seeded subset per class; null = all")


@dataclass(frozen=True)
class ValidateParams:
    val_fraction: float = knob(0.15, minimum=0.0, maximum=0.5, exclusive_minimum=True)
    test_fraction: float = knob(0.15, minimum=0.0, maximum=0.5, exclusive_minimum=True)
    min_side: int = knob(8, minimum=1, help="images with a smaller side are quarantined")
    max_pixels: int = knob(40_000_000, minimum=1,
                           help="larger images (decompression bombs) are quarantined undecoded")
    max_class_ratio: float = knob(10.0, minimum=1.0,
                                  help="largest / smallest class size the cleaned data may have")
    max_compression_ratio: float = knob(100.0, minimum=1.0,
                                        help="archives with a member compressed more are refused")
    max_uncompressed_gb: float = knob(20.0, minimum=0.0, exclusive_minimum=True,
                                      help="archives larger than this unpacked are refused")
    workers: int | None = knob(None, minimum=1, maximum=256,
                               help="processes inspecting images; null = every core")


@dataclass(frozen=True)
class AugmentParams:
    horizontal_flip: bool = knob(False, help="mirror left-right; for photos, never for digits")
    rotation: float = knob(0.0, minimum=0.0, maximum=0.5,
                           help="random rotation, fraction of a full turn")
    translation: float = knob(0.0, minimum=0.0, maximum=0.5,
                              help="random shift, fraction of the image side")
    elastic_strength: float = knob(0.0, minimum=0.0, maximum=1.0,
                                   help="elastic distortion: mean shift = strength x 10% of the "
                                        "side; 0 = off")
    elastic_smoothness: float = knob(0.15, minimum=0.0, maximum=0.5, exclusive_minimum=True,
                                     help="width of the distortion's smoothing, fraction of the side")


@dataclass(frozen=True)
class TrainParams:
    backbone: str = knob("simple_cnn", choices=BACKBONES,
                         help="simple_cnn (digits) | separable_resnet (photos, from scratch) | a "
                              "keras.applications network")
    weights: str = knob("none", help="none | imagenet | path to a backbone .weights.h5")
    input_size: int | None = knob(None, minimum=8, maximum=1024,
                                  help="side the backbone sees; null = image size (>= 32 for "
                                       "keras.applications backbones)")
    epochs: int = knob(12, minimum=1, maximum=1000)
    batch_size: int = knob(64, minimum=1, maximum=4096)
    learning_rate: float = knob(1e-3, minimum=0.0, maximum=1.0, exclusive_minimum=True)
    conv_filters: list[int] = knob([32, 64], minimum=1, maximum=1024)
    dense_units: int = knob(128, minimum=1, maximum=8192)
    dropout_rate: float = knob(0.3, minimum=0.0, maximum=1.0, exclusive_maximum=True)
    early_stopping_patience: int = knob(3, minimum=0)
    reduce_lr_factor: float = knob(0.5, minimum=0.0, maximum=1.0, exclusive_minimum=True,
                                   exclusive_maximum=True)
    reduce_lr_patience: int = knob(1, minimum=0)
    class_weight: str | None = knob(None, choices=("balanced",),
                                    help="balanced = weight classes by inverse frequency")
    mixed_precision: bool = knob(False, help="float16 on GPU, bfloat16 on CPU")
    augment: AugmentParams = field(default_factory=AugmentParams)


@dataclass(frozen=True)
class ModuleParams:
    reduction_ratio: int = knob(8, minimum=1, maximum=256,
                                help="channel reduction of the module's bottleneck")


@dataclass(frozen=True)
class AttentionParams:
    modules: list[str] = knob(["se", "cbam", "pam", "gc"], choices=ATTENTION_MODULES)
    placement: list[str] | None = knob(None, help="feature blocks after which a module goes; "
                                       "null = the last block")
    frozen_epochs: int = knob(1, minimum=0, maximum=1000,
                              help="first epochs train only the attention module")
    epochs: int = knob(4, minimum=1, maximum=1000, help="all fine-tuning epochs, frozen included")
    batch_size: int = knob(64, minimum=1, maximum=4096)
    learning_rate: float = knob(5e-4, minimum=0.0, maximum=1.0, exclusive_minimum=True)
    # One section per module: `attention@pam` depends on `attention.pam` only, so changing it
    # reruns that stage and no other.
    se: ModuleParams = field(default_factory=ModuleParams)
    cbam: ModuleParams = field(default_factory=ModuleParams)
    pam: ModuleParams = field(default_factory=ModuleParams)
    gc: ModuleParams = field(default_factory=ModuleParams)

    def module(self, name: str) -> ModuleParams:
        """The section of one attention module."""
        return getattr(self, name)


#: URI schemes MLflow stores answer to (its plugins add others, which can be set through
#: MLFLOW_TRACKING_URI, which is not checked here).
TRACKING_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql",
                    "databricks")


@dataclass(frozen=True)
class TrackingParams:
    enabled: bool = knob(True)
    uri: str | None = knob(None, help="MLflow tracking URI; null = sqlite:///<repo>/mlflow.db")
    experiment: str = knob("pixelflip")
    registered_model: str = knob("pixelflip-classifier",
                                 help="MLflow registered model; every trained model is a version")


@dataclass(frozen=True)
class Params:
    seed: int = knob(42, minimum=0, maximum=2**31 - 1)
    data: DataParams = field(default_factory=DataParams)
    validate: ValidateParams = field(default_factory=ValidateParams)
    train: TrainParams = field(default_factory=TrainParams)
    attention: AttentionParams = field(default_factory=AttentionParams)
    oracle: OracleParams = field(default_factory=OracleParams)
    select: SelectParams = field(default_factory=SelectParams)
    attributions: AttributionsParams = field(default_factory=AttributionsParams)
    counterfactuals: CounterfactualsParams = field(default_factory=CounterfactualsParams)
    autoencoders: AutoencodersParams = field(default_factory=AutoencodersParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    tracking: TrackingParams = field(default_factory=TrackingParams)


def check_tracking(tracking: TrackingParams) -> None:
    """Raise ParamsError unless the tracking section can reach a store and name its runs."""
    uri = tracking.uri
    if uri is not None:
        scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else "file"
        if scheme not in TRACKING_SCHEMES:
            raise ParamsError(f"tracking.uri = {uri!r} has no MLflow store scheme; allowed: "
                              f"{', '.join(name + '://' for name in TRACKING_SCHEMES)}, a folder "
                              "path, or null (the project's sqlite store)")
    for key in ("experiment", "registered_model"):
        if not getattr(tracking, key).strip():
            raise ParamsError(f"tracking.{key} is empty; give it a name (MLflow needs one)")


def load_params(path: str | Path = "params.yaml", *,
                overrides: Mapping[str, Any] | None = None, partial: bool = False) -> Params:
    """Read and check ``path``; raise :class:`ParamsError` naming the file and the first bad key.

    ``overrides`` (a nested mapping, as a profile file holds) replaces the values it names
    before anything is checked, so the result is checked exactly as if the file said so.

    Every knob must be in the file: a missing key or section is refused, not filled with its
    default, because DVC records and compares only what the file says (``dvc.lock``,
    ``dvc exp show``), so a default standing in for a deleted line would be invisible there.
    ``partial=True`` fills missing knobs with their defaults, for library callers and tests
    that write only the keys they care about.
    """
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run from the project root, where params.yaml lives")
    raw = read_yaml_mapping(path)
    if overrides:
        raw = merge_overrides(raw, overrides)
    try:
        # Unknown keys first: a misspelt section is also a missing one, and "did you mean"
        # says more than "missing".
        params = build_section(Params, raw, prefix="")
        if not partial:
            require_every_knob(Params, raw, prefix="")
        _check_cross_field(params)
    except ParamsError as error:
        raise ParamsError(f"{path}: {error}") from None
    return params


def _check_cross_field(params: Params) -> None:
    data = params.data
    if data.source == "folder" and not data.path:
        raise ParamsError("data.path is required when data.source is 'folder': "
                          "set it to a folder or zip of class folders")
    check_explanations(params.counterfactuals)
    if data.kaggle.dataset.count("/") != 1 or not all(data.kaggle.dataset.split("/")):
        raise ParamsError(f"data.kaggle.dataset = {data.kaggle.dataset!r} is not a Kaggle dataset "
                          "slug; allowed: 'owner/name' as in kaggle.com/datasets/owner/name")
    _check_training(params)
    check_oracle(params.oracle, seed=params.seed, train=params.train, backbones=BACKBONES,
                 own_backbones=OWN_BACKBONES)
    _check_classes(params)
    check_tracking(params.tracking)
    split = params.validate.val_fraction + params.validate.test_fraction
    if split >= 0.9:
        raise ParamsError(f"validate.val_fraction + validate.test_fraction = {split:g} leaves "
                          "too little to train on; allowed: a sum below 0.9")


def _check_classes(params: Params) -> None:
    """The class names that can be known before any data is read: the labels ``data.classes``
    gives, or the ten digits of the mnist source."""
    data, target_class = params.data, params.counterfactuals.target_class
    if data.source == "folder" and data.path and not Path(data.path).exists():
        raise ParamsError(f"data.path = {data.path!r} does not exist (paths are read from the "
                          "project root); give a folder or zip of class folders")
    if data.classes is not None:
        names = sorted(set(data.classes.values()))
        if len(names) < 2:
            raise ParamsError(f"data.classes = {data.classes} gives fewer than two class labels; "
                              "a classifier needs at least two")
    elif data.source == "mnist":
        names = [str(digit) for digit in range(10)]
    else:
        return
    if params.counterfactuals.target == "class" and target_class not in names:
        raise ParamsError(f"counterfactuals.target_class = {target_class!r} is not a class of "
                          f"this data; allowed: one of {', '.join(map(repr, names))}")


def _check_training(params: Params) -> None:
    train, attention = params.train, params.attention
    weights = train.weights
    if weights not in ("none", "imagenet") and not weights.endswith(".h5"):
        raise ParamsError(f"train.weights = {weights!r} is not allowed; allowed: 'none', "
                          "'imagenet' or the path of a Keras weights file (.weights.h5 or .h5)")
    if train.backbone not in OWN_BACKBONES and train.input_size is not None \
            and train.input_size < 32:
        raise ParamsError(f"train.input_size = {train.input_size} is too small for "
                          f"{train.backbone}; allowed: >= 32 (the keras.applications minimum), "
                          "or null")
    if train.backbone in OWN_BACKBONES and weights == "imagenet":
        raise ParamsError("train.weights = 'imagenet' needs a keras.applications backbone; "
                          f"{train.backbone} has no ImageNet weights: set train.backbone to one "
                          "of " + ", ".join(BACKBONES[len(OWN_BACKBONES):]))
    if params.data.source == "mnist" and train.augment.horizontal_flip:
        raise ParamsError("train.augment.horizontal_flip = true mirrors digits, and a mirrored "
                          "digit is another shape: keep it false for data.source 'mnist'")
    if weights not in ("none", "imagenet") and not Path(weights).is_file():
        raise ParamsError(f"train.weights = {weights!r} is not a file (paths are read from the "
                          "project root); give the path of a Keras weights file, or 'none'")
    if train.backbone == "separable_resnet" and len(train.conv_filters) < 2:
        raise ParamsError(f"train.conv_filters = {train.conv_filters} is too short for "
                          "separable_resnet: it lists the entry convolution's filters, then one "
                          "entry per residual block; allowed: at least two entries")
    if train.backbone in OWN_BACKBONES and attention.placement is not None:
        # separable_resnet's first entry is its entry convolution, not a block.
        block_count = len(train.conv_filters) - OWN_BACKBONES.index(train.backbone)
        blocks = [f"block{index}" for index in range(1, block_count + 1)]
        unknown = [block for block in attention.placement if block not in blocks]
        if unknown:
            raise ParamsError(f"attention.placement names {unknown}, not feature blocks of "
                              f"{train.backbone} with train.conv_filters = "
                              f"{train.conv_filters}; allowed: {', '.join(blocks)}")
    if attention.frozen_epochs > attention.epochs:
        raise ParamsError(f"attention.frozen_epochs = {attention.frozen_epochs} is more than "
                          f"attention.epochs = {attention.epochs}, which counts every "
                          "fine-tuning epoch; allowed: at most attention.epochs")
