"""A stage reads only the params its dvc.yaml entry declares; its run logs exactly those."""

import pytest

from pixelflip.config.declared import DeclaredParams, UndeclaredParamError, declared_values
from pixelflip.config.knobs import ParamsError
from pixelflip.config.params import Params

PARAMS = Params()


def view(*declared, stage="counterfactuals"):
    return DeclaredParams(PARAMS, declared, stage=stage)


def test_a_declared_key_and_everything_under_a_declared_section_can_be_read():
    params = view("seed", "counterfactuals", "select.num_images")
    assert params.seed == 42
    assert params.counterfactuals == PARAMS.counterfactuals
    assert params.counterfactuals.elastic_net.l1_weight == 0.5
    assert params.select.num_images == 32


def test_an_undeclared_key_stops_the_stage_naming_the_key_and_the_line_to_add():
    params = view("seed", "select.num_images", stage="attention@pam")
    with pytest.raises(UndeclaredParamError) as raised:
        params.select.misclassified
    message = str(raised.value)
    assert "stage 'attention@pam' reads 'select.misclassified'" in message
    assert "add 'select.misclassified' to stages.attention.params in dvc.yaml" in message
    with pytest.raises(UndeclaredParamError, match="reads 'train'"):
        params.train
    # It is a ParamsError, so the stage frame turns it into one line and exit status 2.
    assert issubclass(UndeclaredParamError, ParamsError)


def test_section_methods_are_checked_too():
    params = view("attributions.methods", "attention.pam", stage="attributions")
    assert params.attention.module("pam") == PARAMS.attention.pam
    with pytest.raises(UndeclaredParamError, match="reads 'attention.se'"):
        params.attention.module("se")
    with pytest.raises(UndeclaredParamError, match="reads 'attributions.lime'"):
        params.attributions.options("lime")


def test_tracking_is_readable_without_being_declared():
    # Where results are logged does not change them: no stage declares it, every stage reads it.
    assert view("seed").tracking.registered_model == "pixelflip-classifier"


def test_a_key_params_do_not_have_is_an_attribute_error_not_a_declaration_problem():
    with pytest.raises(AttributeError, match="no key 'select.rows'"):
        view("select.num_images").select.rows


def test_the_view_is_read_only():
    with pytest.raises(AttributeError, match="read-only"):
        view("seed").seed = 3


def test_declared_values_flatten_exactly_the_declared_keys():
    values = declared_values(PARAMS, ("seed", "attention.pam", "select.num_images", "evaluate"))
    assert values == {"seed": 42, "attention.pam.reduction_ratio": 8, "select.num_images": 32,
                      "evaluate.batch_size": 256, "evaluate.deletion_steps": 20,
                      "evaluate.change_tolerance": 0.05}
    assert view("seed", "attention.pam").declared_values() == {
        "seed": 42, "attention.pam.reduction_ratio": 8}


def test_declaring_a_key_params_yaml_lacks_is_an_error_naming_it():
    with pytest.raises(ParamsError, match="declares the param 'select.rows'"):
        declared_values(PARAMS, ("select.rows",))
    # A section's method is not a param, though the section has an attribute of that name.
    with pytest.raises(ParamsError, match="declares the param 'attention.module'"):
        declared_values(PARAMS, ("attention.module",))
