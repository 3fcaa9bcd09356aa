"""The params sections of the explanation stages: select, attributions, counterfactuals,
autoencoders, evaluate.

Each registered method with settings has its own section (``counterfactuals.elastic_net``,
``attributions.lime``, ...), built from :mod:`pixelflip.config.methods`: its keys are the keyword
arguments of the method's class, so a section reads like the constructor call the stage makes,
and registering a method adds its section here without another line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pixelflip.config.knobs import ParamsError, knob
from pixelflip.config.methods import ATTRIBUTIONS, COUNTERFACTUALS, method_names, methods_of

COUNTERFACTUAL_METHODS = method_names(COUNTERFACTUALS)
ATTRIBUTION_METHODS = method_names(ATTRIBUTIONS)
#: Target strategies of counterfactuals (:func:`pixelflip.explanation.targets.resolve_targets`).
TARGETS = ("other", "runner_up", "class", "true_label")


@dataclass(frozen=True)
class SelectParams:
    num_images: int = knob(32, minimum=1, maximum=100000,
                           help="test images explained per model, chosen by the seed")
    misclassified: int = knob(32, minimum=0, maximum=100000,
                              help="misclassified test images per model, explained separately "
                                   "with target true_label; 0 = none")
    figure_images: int = knob(8, minimum=1, maximum=64, help="rows in the grid figures")
    batch_size: int = knob(128, minimum=1, maximum=4096,
                           help="test images per prediction while choosing")


class _MethodSections:
    """Access to the per-method sections of a family's params section."""

    def options(self, name: str) -> dict[str, Any]:
        """Keyword arguments params.yaml sets for method ``name`` ({} if it has no section)."""
        section = getattr(self, name, None)
        return dataclasses.asdict(section) if dataclasses.is_dataclass(section) else {}


def _with_method_sections(name: str, base: type, family: str) -> type:
    """Dataclass ``name``: ``base`` plus one field per registered method of ``family`` that has
    settings."""
    fields = [(spec.name, spec.settings, field(default_factory=spec.settings))
              for spec in methods_of(family) if spec.settings is not None]
    return dataclasses.make_dataclass(name, fields, bases=(base, _MethodSections),
                                      frozen=True, namespace={"__module__": __name__,
                                                              "__doc__": base.__doc__})


@dataclass(frozen=True)
class _Counterfactuals:
    """The ``counterfactuals`` section: methods, targets, batch size, one section per method."""

    methods: list[str] = knob(list(COUNTERFACTUAL_METHODS), choices=COUNTERFACTUAL_METHODS)
    target: str = knob("other", choices=TARGETS)
    target_class: str | None = knob(None, help="class name, for target 'class'")
    batch_size: int = knob(128, minimum=1, maximum=4096)


@dataclass(frozen=True)
class _Attributions:
    """The ``attributions`` section: methods, batch size, one section per method."""

    methods: list[str] = knob(list(ATTRIBUTION_METHODS), choices=ATTRIBUTION_METHODS)
    batch_size: int = knob(64, minimum=1, maximum=4096)


CounterfactualsParams = _with_method_sections("CounterfactualsParams", _Counterfactuals,
                                              COUNTERFACTUALS)
AttributionsParams = _with_method_sections("AttributionsParams", _Attributions, ATTRIBUTIONS)


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
    change_tolerance: float = knob(0.05, minimum=0.0, maximum=1.0,
                                   help="a pixel changed by more than this counts in L0")


def check_explanations(counterfactuals: Any) -> None:
    """Rules across keys of the explanation sections; raises ParamsError."""
    if counterfactuals.target == "class" and not counterfactuals.target_class:
        raise ParamsError("counterfactuals.target_class is required when counterfactuals.target "
                          "is 'class': set it to one of the class names")
