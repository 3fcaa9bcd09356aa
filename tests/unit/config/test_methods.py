"""The registry of explanation methods: names, classes, settings, params sections and repr agree.

Every default a method's settings dataclass declares is the default of its constructor, every
settings field is a keyword of the constructor, and params has one section per method with
settings, so a method is described once and its descriptions cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys

import pytest
from support.project import ROOT

from pixelflip.config.methods import (
    ATTRIBUTIONS,
    COUNTERFACTUALS,
    METHODS,
    constructor_settings,
    make_method,
    method_names,
    method_repr,
    method_spec,
    methods_of,
    name_of,
)
from pixelflip.config.params import Params

FAMILIES = (COUNTERFACTUALS, ATTRIBUTIONS)
WITH_SETTINGS = [spec for spec in METHODS if spec.settings is not None]


def keyword_parameters(method_class: type) -> dict[str, inspect.Parameter]:
    """The arguments of ``method_class.__init__`` that can be passed by keyword, in order."""
    return {name: parameter
            for name, parameter in inspect.signature(method_class.__init__).parameters.items()
            if name != "self" and parameter.kind in (parameter.KEYWORD_ONLY,
                                                     parameter.POSITIONAL_OR_KEYWORD)}


def test_every_method_belongs_to_a_family_and_has_a_unique_name():
    assert {spec.family for spec in METHODS} == set(FAMILIES)
    names = [spec.name for spec in METHODS]
    assert len(set(names)) == len(names)
    assert [spec.name for family in FAMILIES for spec in methods_of(family)] == names
    assert method_names(COUNTERFACTUALS) == ("elastic_net", "prototype_guided",
                                             "growing_spheres", "regions")
    assert method_names(ATTRIBUTIONS) == ("grad_cam", "score_cam", "smoothgrad", "lime")


def test_the_registry_imports_no_tensorflow():
    # The params checks run before any stage loads TensorFlow; importing the registry must not.
    code = ("import sys, pixelflip.config.methods, pixelflip.config.params; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env={"PYTHONPATH": str(ROOT / "src")}, timeout=120, check=True)
    assert completed.stdout.strip() == "[]"


@pytest.mark.parametrize("family", FAMILIES)
def test_an_unknown_name_raises_value_error_naming_the_allowed_ones(family):
    allowed = list(method_names(family))
    message = re.escape(f"method 'wachter' is unknown; allowed: {allowed}")
    with pytest.raises(ValueError, match=message):
        method_spec(family, "wachter")
    with pytest.raises(ValueError, match=message):
        make_method(family, "wachter")


def test_the_family_factories_name_the_allowed_methods_of_their_family_only():
    from pixelflip.attributions import make_attribution
    from pixelflip.counterfactuals import make_counterfactual

    with pytest.raises(ValueError, match=re.escape(str(list(method_names(COUNTERFACTUALS))))):
        make_counterfactual("grad_cam")
    with pytest.raises(ValueError, match=re.escape(str(list(method_names(ATTRIBUTIONS))))):
        make_attribution("elastic_net")


def test_an_option_the_constructor_does_not_take_raises_value_error():
    with pytest.raises(ValueError, match="bad options for attribution method 'grad_cam'.*GradCAM"):
        make_method(ATTRIBUTIONS, "grad_cam", num_samples=3)


@pytest.mark.parametrize("spec", METHODS, ids=lambda spec: spec.name)
def test_every_class_loads_is_of_its_family_and_is_named_by_its_spec(spec):
    from pixelflip.attributions.method import AttributionMethod
    from pixelflip.counterfactuals.method import CounterfactualMethod

    method_class = spec.load_class()
    # The class is defined in the module named after the method, not merely imported there.
    assert (method_class.__module__, method_class.__qualname__) == (spec.module, spec.class_name)
    base = {COUNTERFACTUALS: CounterfactualMethod, ATTRIBUTIONS: AttributionMethod}[spec.family]
    assert issubclass(method_class, base)
    assert name_of(method_class) == spec.name
    method = make_method(spec.family, spec.name)
    assert type(method) is method_class
    assert method.name == spec.name


def test_a_subclass_takes_the_name_of_the_registered_class_and_others_have_none():
    from pixelflip.attributions.grad_cam import GradCAM

    class TunedGradCAM(GradCAM):
        pass

    assert name_of(TunedGradCAM) == "grad_cam"
    assert TunedGradCAM().name == "grad_cam"

    class Unregistered:
        pass

    with pytest.raises(ValueError, match="Unregistered is not a registered method"):
        name_of(Unregistered)


@pytest.mark.parametrize("spec", WITH_SETTINGS, ids=lambda spec: spec.name)
def test_settings_defaults_are_the_constructor_defaults(spec):
    parameters = keyword_parameters(spec.load_class())
    defaults = spec.settings()
    for name in [field.name for field in dataclasses.fields(spec.settings)]:
        assert parameters[name].default == getattr(defaults, name), name


@pytest.mark.parametrize("spec", WITH_SETTINGS, ids=lambda spec: spec.name)
def test_every_settings_field_is_a_keyword_of_the_constructor(spec):
    parameters = keyword_parameters(spec.load_class())
    missing = [name for name in [field.name for field in dataclasses.fields(spec.settings)] if name not in parameters]
    assert missing == []
    # So the settings object itself builds the method.
    method = make_method(spec.family, spec.name, **dataclasses.asdict(spec.settings()))
    assert method.name == spec.name


@pytest.mark.parametrize("family", FAMILIES)
def test_params_have_exactly_one_section_per_method_with_settings(family):
    section = getattr(Params(), family)
    method_sections = {field.name: field.type for field in dataclasses.fields(section)
                       if dataclasses.is_dataclass(getattr(section, field.name))}
    expected = {spec.name: spec.settings for spec in methods_of(family)
                if spec.settings is not None}
    assert set(method_sections) == set(expected)
    for name, settings in expected.items():
        assert type(getattr(section, name)) is settings
        assert section.options(name) == dataclasses.asdict(settings())
    for spec in methods_of(family):
        if spec.settings is None:
            assert section.options(spec.name) == {}


@pytest.mark.parametrize("spec", METHODS, ids=lambda spec: spec.name)
def test_repr_shows_every_constructor_argument_in_signature_order(spec):
    method = make_method(spec.family, spec.name, batch_size=3, random_state=7)
    text = repr(method)
    assert text == method_repr(method)
    class_name = spec.load_class().__name__
    assert text.startswith(f"{class_name}(") and text.endswith(")")
    shown = re.findall(r"(\w+)=", text[len(class_name) + 1:-1])
    assert shown == list(keyword_parameters(type(method)))
    assert list(constructor_settings(method)) == shown
    assert "batch_size=3" in text and "random_state=7" in text


def test_method_repr_reads_each_argument_back_from_its_attribute():
    class Toy:
        def __init__(self, *, size: int = 2, label: str | None = None) -> None:
            self.size = size
            self.label = label

    toy = Toy(size=5, label="x")
    assert constructor_settings(toy) == {"size": 5, "label": "x"}
    assert method_repr(toy) == "Toy(size=5, label='x')"
