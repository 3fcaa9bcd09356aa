"""The params sections of the explanation stages: attributions, autoencoders, counterfactuals,
evaluate.

Each method has its own section (``counterfactuals.elastic_net``, ``attributions.lime``, ...)
whose keys are the keyword arguments of its class, so a section reads like the constructor call
the stage makes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pixelflip.knobs import ParamsError, knob

# The same tuples as pixelflip.explain's method registries (a test keeps them equal); repeated
# here so that checking params does not import TensorFlow.
COUNTERFACTUAL_METHODS = ("elastic_net", "growing_spheres")
ATTRIBUTION_METHODS = ("grad_cam", "score_cam", "smoothgrad", "lime")


@dataclass(frozen=True)
class ElasticNetParams:
    max_iterations: int = knob(100, minimum=1, maximum=100000, help="per binary-search round")
    learning_rate: float = knob(0.1, minimum=0.0, exclusive_minimum=True)
    l1_weight: float = knob(0.5, minimum=0.0,
                            help="L1 by proximal (shrinkage) steps: untouched pixels stay exact")
    l2_weight: float = knob(1.0, minimum=0.0)
    initial_prediction_weight: float = knob(1.0, minimum=0.0, exclusive_minimum=True,
                                            help="starting c of the per-image binary search")
    binary_search_steps: int = knob(4, minimum=1, maximum=50)
    confidence: float = knob(0.2, minimum=0.0, help="logit margin kappa to clear")
    early_stopping_patience: int | None = knob(20, minimum=1,
                                               help="iterations without improvement; null = off")


@dataclass(frozen=True)
class GrowingSpheresParams:
    num_samples: int = knob(64, minimum=1, maximum=100000, help="points per ball or layer")
    sample_resolution: int | None = knob(7, minimum=1,
                                         help="grid side directions are drawn in; null = pixels")
    initial_radius: float = knob(0.5, minimum=0.0, exclusive_minimum=True)
    step: float = knob(0.25, minimum=0.0, exclusive_minimum=True)
    max_layers: int = knob(40, minimum=1, maximum=100000)
    sparsification_candidates: int = knob(16, minimum=1, maximum=100000)
    confidence: float = knob(0.0, minimum=0.0)


@dataclass(frozen=True)
class CounterfactualsParams:
    methods: list[str] = knob(list(COUNTERFACTUAL_METHODS), choices=COUNTERFACTUAL_METHODS)
    num_images: int = knob(32, minimum=1, maximum=100000,
                           help="test images explained per model, chosen by the seed")
    target: str = knob("other", choices=("other", "runner_up", "class", "true_label"))
    target_class: str | None = knob(None, help="class name, for target 'class'")
    misclassified: int = knob(32, minimum=0, maximum=100000,
                              help="misclassified test images per model, explained separately "
                                   "with target true_label; 0 = none")
    batch_size: int = knob(128, minimum=1, maximum=4096)
    change_tolerance: float = knob(0.05, minimum=0.0, maximum=1.0,
                                   help="a pixel changed by more than this counts in L0")
    figure_images: int = knob(8, minimum=1, maximum=64, help="rows in the grid figures")
    elastic_net: ElasticNetParams = field(default_factory=ElasticNetParams)
    growing_spheres: GrowingSpheresParams = field(default_factory=GrowingSpheresParams)

    def method(self, name: str) -> ElasticNetParams | GrowingSpheresParams:
        """The section of one counterfactual method."""
        return getattr(self, name)


@dataclass(frozen=True)
class SmoothGradParams:
    num_samples: int = knob(25, minimum=1, maximum=10000, help="noisy copies per image")
    noise_level: float = knob(0.2, minimum=0.0, exclusive_minimum=True,
                              help="noise standard deviation, fraction of the pixel range")


@dataclass(frozen=True)
class LimeParams:
    num_samples: int = knob(500, minimum=2, maximum=100000, help="perturbed copies per image")
    num_segments: int = knob(50, minimum=2, maximum=10000, help="SLIC superpixels per image")
    compactness: float = knob(10.0, minimum=0.0, exclusive_minimum=True)


@dataclass(frozen=True)
class AttributionsParams:
    methods: list[str] = knob(list(ATTRIBUTION_METHODS), choices=ATTRIBUTION_METHODS)
    batch_size: int = knob(64, minimum=1, maximum=4096)
    smoothgrad: SmoothGradParams = field(default_factory=SmoothGradParams)
    lime: LimeParams = field(default_factory=LimeParams)

    def options(self, name: str) -> dict:
        """Keyword arguments of one attribution method beyond batch size and seed."""
        section = getattr(self, name, None)
        return dict(vars(section)) if section is not None else {}


@dataclass(frozen=True)
class AutoencodersParams:
    epochs: int = knob(5, minimum=1, maximum=1000)
    batch_size: int = knob(32, minimum=1, maximum=4096)
    learning_rate: float = knob(3e-3, minimum=0.0, exclusive_minimum=True)
    max_images_per_class: int | None = knob(500, minimum=1,
                                            help="seeded subset per class; null = all")


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = knob(256, minimum=1, maximum=65536)
    deletion_steps: int = knob(20, minimum=1, maximum=1000,
                               help="points of the deletion and insertion curves")


def check_explanations(counterfactuals: CounterfactualsParams) -> None:
    """Rules across keys of the explanation sections; raises ParamsError."""
    if counterfactuals.target == "class" and not counterfactuals.target_class:
        raise ParamsError("counterfactuals.target_class is required when counterfactuals.target "
                          "is 'class': set it to one of the class names")
