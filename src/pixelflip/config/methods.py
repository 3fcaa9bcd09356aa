"""The registry of explanation methods: each one's name, family, class and settings, once.

Everything that names a method reads this module: the params sections
(``counterfactuals.methods``, one ``counterfactuals.<method>`` section per method with settings),
the factories :func:`pixelflip.counterfactuals.make_counterfactual` and
:func:`pixelflip.attributions.make_attribution`, each method's ``name`` and its constructor's
defaults, and the contract tests, which run every registered method. It imports no TensorFlow:
a method lives in the module named after it in its family's package
(``pixelflip.counterfactuals.elastic_net``), imported only when the method is built.

Registering a method is one :class:`MethodSpec` in :data:`METHODS` (and, when params.yaml should
set its options, a settings dataclass whose fields are the constructor's keyword arguments).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from pixelflip.config.knobs import knob, redefault

COUNTERFACTUALS = "counterfactuals"
ATTRIBUTIONS = "attributions"


@dataclass(frozen=True)
class ElasticNetSettings:
    """Options of :class:`~pixelflip.counterfactuals.elastic_net.ElasticNetCounterfactual`."""

    max_iterations: int = knob(50, minimum=1, maximum=100000, help="per binary-search round")
    learning_rate: float = knob(0.1, minimum=0.0, exclusive_minimum=True)
    l1_weight: float = knob(0.5, minimum=0.0,
                            help="L1 by proximal (shrinkage) steps: untouched pixels stay exact")
    l2_weight: float = knob(1.0, minimum=0.0)
    initial_prediction_weight: float = knob(3.0, minimum=0.0, exclusive_minimum=True,
                                            help="starting c of the per-image binary search")
    binary_search_steps: int = knob(3, minimum=1, maximum=50)
    confidence: float = knob(0.2, minimum=0.0, help="logit margin kappa to clear")
    early_stopping_patience: int | None = knob(5, minimum=1,
                                               help="iterations without improvement; null = off")
    perturbation_resolution: int | None = knob(None, minimum=1,
                                               help="coarse grid side of the change; null = pixels")
    tv_weight: float = knob(0.0, minimum=0.0,
                            help="total variation of the change: blobs, not salt-and-pepper")
    autoencoder_weight: float = knob(0.0, minimum=0.0,
                                     help="gamma: reconstruction error under an all-class "
                                          "autoencoder; 0 = off")
    prototype_weight: float = knob(0.0, minimum=0.0,
                                   help="theta: encoding's distance to the target class "
                                        "prototype; 0 = off")
    num_prototype_neighbours: int = knob(5, minimum=1, maximum=100000,
                                         help="K nearest training encodings a prototype averages")
    autoencoder_epochs: int = knob(5, minimum=1, maximum=10000,
                                   help="training epochs of that autoencoder")
    autoencoder_max_images: int | None = knob(None, minimum=1,
                                              help="seeded training subset; null = all")
    polish: bool = knob(True, help="reset every change the new prediction does not need")
    num_counterfactuals: int = knob(1, minimum=1, maximum=1000,
                                    help="per image, towards the k most probable other classes")


@dataclass(frozen=True)
class PrototypeGuidedSettings(ElasticNetSettings):
    """Options of
    :class:`~pixelflip.counterfactuals.prototype_guided.PrototypeGuidedCounterfactual`: those of
    the elastic-net search, the prototype term on."""

    learning_rate: float = knob(0.01, minimum=0.0, exclusive_minimum=True,
                                help="strong plausibility terms need small steps")
    autoencoder_weight: float = redefault(ElasticNetSettings, "autoencoder_weight", 3.0)
    prototype_weight: float = knob(30.0, minimum=0.0, exclusive_minimum=True,
                                   help="theta: encoding's distance to the target class "
                                        "prototype")
    num_prototype_neighbours: int = redefault(ElasticNetSettings, "num_prototype_neighbours", 10)
    polish: bool = knob(False, help="off: the changes that make it look real are not needed "
                                    "for the prediction, and polishing would remove them")


@dataclass(frozen=True)
class GrowingSpheresSettings:
    """Options of
    :class:`~pixelflip.counterfactuals.growing_spheres.GrowingSpheresCounterfactual`."""

    num_samples: int = knob(64, minimum=1, maximum=100000, help="points per ball or layer")
    sample_resolution: int | None = knob(7, minimum=1,
                                         help="grid side directions are drawn in; null = pixels")
    initial_radius: float = knob(0.5, minimum=0.0, exclusive_minimum=True)
    step: float = knob(0.25, minimum=0.0, exclusive_minimum=True)
    max_layers: int = knob(40, minimum=1, maximum=100000)
    sparsification_candidates: int = knob(16, minimum=1, maximum=100000)
    confidence: float = knob(0.0, minimum=0.0)


#: What a replaced region shows (:mod:`pixelflip.counterfactuals.regions`).
REGION_REPLACEMENTS = ("blur", "inpaint", "distractor")


@dataclass(frozen=True)
class RegionsSettings:
    """Options of :class:`~pixelflip.counterfactuals.regions.RegionCounterfactual`."""

    replacement: str = knob("distractor", choices=REGION_REPLACEMENTS,
                            help="a region becomes: blurred | inpainted | the nearest target-class "
                                 "training image's")
    num_segments: int = knob(25, minimum=2, maximum=10000, help="SLIC superpixels per image")
    compactness: float = knob(10.0, minimum=0.0, exclusive_minimum=True)
    max_regions: int = knob(8, minimum=1, maximum=10000,
                            help="most regions one counterfactual replaces")
    candidates: int | None = knob(8, minimum=1,
                                  help="regions scored per step, ranked by the gradient; "
                                       "null = all")
    num_references: int = knob(300, minimum=1, maximum=1000000,
                               help="training images per class distractors are drawn from")
    num_distractors: int = knob(3, minimum=1, maximum=1000,
                                help="nearest distractors tried per image; the fewest regions win")
    confidence: float = knob(0.0, minimum=0.0, help="log-probability margin to clear")


@dataclass(frozen=True)
class SmoothGradSettings:
    """Options of :class:`~pixelflip.attributions.smoothgrad.SmoothGrad`."""

    num_samples: int = knob(25, minimum=1, maximum=10000, help="noisy copies per image")
    noise_level: float = knob(0.2, minimum=0.0, exclusive_minimum=True,
                              help="noise standard deviation, fraction of the pixel range")


@dataclass(frozen=True)
class LimeSettings:
    """Options of :class:`~pixelflip.attributions.lime.Lime`."""

    num_samples: int = knob(500, minimum=2, maximum=100000, help="perturbed copies per image")
    num_segments: int = knob(50, minimum=2, maximum=10000, help="SLIC superpixels per image")
    compactness: float = knob(10.0, minimum=0.0, exclusive_minimum=True)


@dataclass(frozen=True)
class MethodSpec:
    """One registered method: ``class_name`` in module ``pixelflip.<family>.<name>``.

    ``settings`` is the dataclass of the options params.yaml sets for it (its section
    ``<family>.<name>``), or None when it has none.
    """

    name: str
    family: str
    class_name: str
    settings: type | None = None

    @property
    def module(self) -> str:
        return f"pixelflip.{self.family}.{self.name}"

    def load_class(self) -> type:
        """Import and return the method's class."""
        return getattr(importlib.import_module(self.module), self.class_name)


METHODS = (
    MethodSpec("elastic_net", COUNTERFACTUALS, "ElasticNetCounterfactual", ElasticNetSettings),
    MethodSpec("prototype_guided", COUNTERFACTUALS, "PrototypeGuidedCounterfactual",
               PrototypeGuidedSettings),
    MethodSpec("growing_spheres", COUNTERFACTUALS, "GrowingSpheresCounterfactual",
               GrowingSpheresSettings),
    MethodSpec("regions", COUNTERFACTUALS, "RegionCounterfactual", RegionsSettings),
    MethodSpec("grad_cam", ATTRIBUTIONS, "GradCAM"),
    MethodSpec("score_cam", ATTRIBUTIONS, "ScoreCAM"),
    MethodSpec("smoothgrad", ATTRIBUTIONS, "SmoothGrad", SmoothGradSettings),
    MethodSpec("lime", ATTRIBUTIONS, "Lime", LimeSettings),
)


def methods_of(family: str) -> tuple[MethodSpec, ...]:
    """The registered methods of ``family``, in registry order."""
    return tuple(spec for spec in METHODS if spec.family == family)


def method_names(family: str) -> tuple[str, ...]:
    """Names of the registered methods of ``family``, in registry order."""
    return tuple(spec.name for spec in methods_of(family))


def method_spec(family: str, name: str) -> MethodSpec:
    """The spec of method ``name`` of ``family``; ValueError naming the allowed ones if none."""
    for spec in methods_of(family):
        if spec.name == name:
            return spec
    singular = family.removesuffix("s")
    raise ValueError(f"{singular} method {name!r} is unknown; allowed: "
                     f"{list(method_names(family))}.")


def name_of(method_class: type) -> str:
    """The registered name of ``method_class`` (or of the registered class it derives from)."""
    for cls in method_class.__mro__:
        for spec in METHODS:
            if (spec.module, spec.class_name) == (cls.__module__, cls.__qualname__):
                return spec.name
    raise ValueError(f"{method_class.__qualname__} is not a registered method; register it in "
                     "pixelflip.config.methods.METHODS.")


def make_method(family: str, name: str, **options: Any) -> Any:
    """Build method ``name`` of ``family`` with ``options`` (its constructor's keywords).

    Raises ValueError for an unknown name or an option the method does not take.
    """
    method_class = method_spec(family, name).load_class()
    try:
        return method_class(**options)
    except TypeError as error:
        raise ValueError(f"bad options for {family.removesuffix('s')} method {name!r}: {error}; "
                         f"see {method_class.__name__}.") from None


def constructor_settings(method: Any) -> dict[str, Any]:
    """``{keyword: value}`` of every argument of ``type(method).__init__``, read back from the
    attribute of the same name, in signature order (what ``repr`` shows)."""
    parameters = inspect.signature(type(method).__init__).parameters
    return {name: getattr(method, name) for name, parameter in parameters.items()
            if name != "self" and parameter.kind in (parameter.KEYWORD_ONLY,
                                                     parameter.POSITIONAL_OR_KEYWORD)}


def method_repr(method: Any) -> str:
    """``ClassName(keyword=value, ...)`` with every constructor argument, sklearn-style."""
    settings = ", ".join(f"{key}={value!r}" for key, value in constructor_settings(method).items())
    return f"{type(method).__name__}({settings})"
