"""params.yaml loads into typed objects; every kind of bad value is named in one line."""

import dataclasses
import re
import typing

import pytest
from support.project import ROOT
from support.shipped_files import assert_one_version_passes, default_params_text

from pixelflip.config.declared import declared_values
from pixelflip.config.knobs import ParamsError
from pixelflip.config.params import Params, load_params
from pixelflip.config.profiles import parse_overrides


def load_partial(path):
    """The params of a file that holds only the keys a test is about, the rest defaults."""
    return load_params(path, partial=True)


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


SECTIONS = [field.name for field in dataclasses.fields(Params)]


def knobs(params):
    """``{"train.epochs": 12, ...}``: every knob of ``params``, flattened."""
    return declared_values(params, SECTIONS)


def test_the_shipped_params_file_holds_the_defaults_in_code(tmp_path):
    # The defaults in code and the file users edit must not drift apart. `dvc exp run -S` writes
    # an experiment's values into the working copy and leaves the commit as it was, while
    # someone changing a default edits the working copy first: one of the two holds them.
    defaults = knobs(Params())

    def holds_the_defaults(path):
        differing = [f"{key} = {value!r} (in code: {defaults[key]!r})"
                     for key, value in knobs(load_params(path)).items() if value != defaults[key]]
        assert not differing, f"{path} differs from the defaults in code: {', '.join(differing)}"

    assert_one_version_passes(ROOT, "params.yaml", tmp_path, holds_the_defaults)


def test_the_working_params_file_loads_whatever_values_an_experiment_set():
    # What every stage reads: any valid value of an experiment is fine, a broken file is not.
    assert isinstance(load_params(ROOT / "params.yaml"), Params)


def test_a_complete_file_of_the_defaults_loads_to_the_defaults(tmp_path):
    # Every knob has a default the checks accept, with every other knob at its default too.
    assert load_params(write(tmp_path, default_params_text())) == Params()


# Experiment values as `dvc exp run -S` takes them: a number, a null where the file has a number,
# a list, and a quoted string that must stay a string.
EXPERIMENT = ["evaluate.deletion_steps=4", "autoencoders.max_images_per_class=null",
              "train.conv_filters=[16,32]", "counterfactuals.target=class",
              "counterfactuals.target_class='7'"]


def nulls(text):
    """The knobs ``text`` spells ``key: null`` (DVC writes ``key:`` instead)."""
    return re.findall(r"^ *([\w-]+): null\b", text, flags=re.M)


def test_params_as_dvc_exp_run_rewrites_them_load_with_the_values_it_set(tmp_path):
    # DVC applies -S with this very function (dvc.repo.experiments.queue.base._update_params),
    # which rewrites the whole file in its own layout, not only the lines it sets. The shipped
    # file is the one it rewrites: the working copy, or HEAD's after an experiment.
    from dvc.utils.hydra import apply_overrides

    def loads_as_dvc_rewrites_it(original):
        rewritten = tmp_path / "rewritten" / "params.yaml"
        rewritten.parent.mkdir(exist_ok=True)
        rewritten.write_text(original.read_text())
        apply_overrides(rewritten, EXPERIMENT)
        assert nulls(original.read_text()) and not nulls(rewritten.read_text()), \
            f"{original} is no params.yaml as shipped: it has no null for DVC to rewrite"
        params = load_params(rewritten)
        assert params == load_params(original, overrides=parse_overrides(EXPERIMENT))
        assert params.evaluate.deletion_steps == 4
        assert params.autoencoders.max_images_per_class is None
        assert params.train.conv_filters == [16, 32]
        assert params.counterfactuals.target_class == "7"
        # Every other null, which DVC left blank, reads back as None, as the loader reads null.
        set_keys = {assignment.split("=")[0] for assignment in EXPERIMENT}
        blanked = [key for key, value in knobs(load_params(original)).items()
                   if value is None and key not in set_keys]
        assert blanked and all(knobs(params)[key] is None for key in blanked)

    assert_one_version_passes(ROOT, "params.yaml", tmp_path, loads_as_dvc_rewrites_it)


def test_values_are_typed(tmp_path):
    params = load_partial(write(tmp_path, "train:\n  epochs: 3\n  learning_rate: 1\n"))
    assert params.train.epochs == 3
    assert isinstance(params.train.learning_rate, float)
    assert params.attention.modules == ["se", "cbam", "pam", "gc"]


@pytest.mark.parametrize("text, expected", [
    ("train:\n  epoch: 3\n", "unknown key 'train.epoch' (did you mean 'train.epochs'?)"),
    ("bogus: 1\n", "unknown key 'bogus'"),
    ("train:\n  epochs: ten\n", "train.epochs has the wrong type: got 'ten'; allowed: an integer"),
    ("train:\n  epochs: 2.5\n", "train.epochs has the wrong type"),
    ("train:\n  epochs: 0\n", "train.epochs = 0 is out of range; allowed: an integer >= 1"),
    ("tracking:\n  enabled: yes please\n", "tracking.enabled has the wrong type"),
    ("data:\n  source: s3\n",
     "data.source = 's3' is not allowed; allowed: one of 'mnist', 'folder', 'kaggle'"),
    ("data:\n  classes: [Cat, Dog]\n",
     "data.classes must be a non-empty mapping, got ['Cat', 'Dog']; allowed: a mapping of names "
     "to a string, or null"),
    ("data:\n  classes: {Cat: 1}\n", "data.classes['Cat'] has the wrong type: got 1"),
    ("data:\n  kaggle:\n    dataset: cats-vs-dogs\n", "is not a Kaggle dataset slug"),
    ("data:\n  kaggle:\n    slug: a/b\n", "unknown key 'data.kaggle.slug'"),
    ("train:\n  augment:\n    rotation: 2\n", "train.augment.rotation = 2.0 is out of range"),
    ("validate:\n  max_class_ratio: 0.5\n", "validate.max_class_ratio = 0.5 is out of range"),
    ("attention:\n  modules: [se, nope]\n", "attention.modules[1] = 'nope' is not allowed"),
    ("attention:\n  modules: []\n", "attention.modules must be a non-empty list"),
    ("attention:\n  modules: [se, se]\n", "attention.modules lists a value twice"),
    ("train:\n  dropout_rate: 1.0\n", "train.dropout_rate = 1.0 is out of range; allowed: a number >= 0 and < 1"),
    ("train:\n  epochs: null\n", "train.epochs must not be empty"),
    ("train: 3\n", "train must be a mapping"),
    ("data:\n  source: folder\n", "data.path is required when data.source is 'folder'"),
    ("counterfactuals:\n  target: class\n", "counterfactuals.target_class is required"),
    ("validate:\n  val_fraction: 0.5\n  test_fraction: 0.45\n", "leaves too little to train on"),
    ("train: [\n", "is not valid YAML at line 2"),
    ("train:\n  backbone: resnet18\n", "train.backbone = 'resnet18' is not allowed; allowed: one "
     "of 'simple_cnn', 'separable_resnet', 'mobilenet_v2', 'efficientnet_b0', 'resnet50', "
     "'vgg16'"),
    ("train:\n  weights: resnet.pt\n", "train.weights = 'resnet.pt' is not allowed; allowed: "
     "'none', 'imagenet' or the path of a Keras weights file (.weights.h5 or .h5)"),
    ("train:\n  backbone: vgg16\n  input_size: 28\n", "too small for vgg16; allowed: >= 32"),
    ("train:\n  weights: imagenet\n", "simple_cnn has no ImageNet weights: set train.backbone "
     "to one of mobilenet_v2, efficientnet_b0, resnet50, vgg16"),
    ("train:\n  backbone: separable_resnet\n  weights: imagenet\n", "separable_resnet has no "
     "ImageNet weights: set train.backbone to one of mobilenet_v2, efficientnet_b0, resnet50, "
     "vgg16"),
    ("train:\n  backbone: separable_resnet\n  conv_filters: [32]\n",
     "train.conv_filters = [32] is too short for separable_resnet"),
    ("train:\n  input_size: 4\n", "train.input_size = 4 is out of range"),
    ("train:\n  class_weight: inverse\n", "train.class_weight = 'inverse' is not allowed"),
    ("train:\n  augment:\n    horizontal_flip: true\n", "a mirrored digit is another shape"),
    ("train:\n  augment:\n    elastic_strength: 2\n", "elastic_strength = 2.0 is out of range"),
    ("attention:\n  frozen_epochs: 5\n  epochs: 3\n", "attention.frozen_epochs = 5 is more than"),
    ("attention:\n  placement: block2\n", "attention.placement must be a non-empty list"),
    ("train:\n  epochs: 3\n  epochs: 4\n", "line 3: key 'epochs' appears twice (first at line 2)"),
    ("train:\n  epochs: 3\nseed: 1\ntrain:\n  batch_size: 8\n",
     "line 4: key 'train' appears twice (first at line 1)"),
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
    ("- a list\n", "must be a mapping of sections to values"),
])
def test_bad_values_name_the_key_and_what_is_allowed(tmp_path, text, expected):
    with pytest.raises(ParamsError) as caught:
        load_partial(write(tmp_path, text))
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "params.yaml"))
    assert expected in message
    assert "\n" not in message


def test_nested_sections_and_mappings_are_typed(tmp_path):
    params = load_partial(write(tmp_path, (
        "data:\n  source: kaggle\n  classes: {Cat: cat, Dog: dog}\n"
        "  kaggle:\n    dataset: owner/pets\n"
        "train:\n  augment:\n    horizontal_flip: true\n")))
    assert params.data.classes == {"Cat": "cat", "Dog": "dog"}
    assert params.data.kaggle.dataset == "owner/pets"
    assert params.train.augment.horizontal_flip is True
    assert params.train.augment.rotation == 0.0


def test_missing_file_says_where_to_run(tmp_path):
    with pytest.raises(ParamsError, match="run from the project root"):
        load_params(tmp_path / "params.yaml")


def test_backbone_weights_and_placement_are_typed(tmp_path):
    params = load_partial(write(tmp_path, (
        "train:\n  backbone: mobilenet_v2\n  weights: imagenet\n  input_size: 64\n"
        "  class_weight: balanced\n  mixed_precision: true\n"
        "attention:\n  placement: [block_6_expand_relu, out_relu]\n  frozen_epochs: 4\n")))
    assert params.train.backbone == "mobilenet_v2" and params.train.weights == "imagenet"
    assert params.train.input_size == 64 and params.train.class_weight == "balanced"
    assert params.train.mixed_precision is True
    assert params.attention.placement == ["block_6_expand_relu", "out_relu"]
    assert params.attention.frozen_epochs == params.attention.epochs == 4


def test_each_attention_module_has_its_own_section(tmp_path):
    params = load_partial(write(tmp_path, "attention:\n  pam:\n    reduction_ratio: 4\n"))
    assert params.attention.module("pam").reduction_ratio == 4
    assert params.attention.module("se").reduction_ratio == 8
    with pytest.raises(ParamsError, match="attention.gc.reduction_ratio = 0 is out of range"):
        load_partial(write(tmp_path, "attention:\n  gc:\n    reduction_ratio: 0\n"))


def test_backbone_and_module_choices_match_the_model_registries():
    from pixelflip.config.params import ATTENTION_MODULES as MODULE_CHOICES
    from pixelflip.config.params import BACKBONES as BACKBONE_CHOICES
    from pixelflip.models.attention import ATTENTION_MODULES
    from pixelflip.models.backbones import BACKBONES

    assert BACKBONE_CHOICES == tuple(BACKBONES)
    assert set(MODULE_CHOICES) == set(ATTENTION_MODULES)


def test_each_explanation_method_has_its_own_section(tmp_path):
    params = load_partial(write(tmp_path, (
        "counterfactuals:\n  methods: [growing_spheres]\n  growing_spheres:\n    max_layers: 5\n"
        "attributions:\n  lime:\n    num_samples: 50\n")))
    assert params.counterfactuals.methods == ["growing_spheres"]
    assert params.counterfactuals.growing_spheres.max_layers == 5
    assert params.counterfactuals.options("growing_spheres")["max_layers"] == 5
    assert params.counterfactuals.elastic_net.max_iterations == 50
    assert params.counterfactuals.options("elastic_net")["max_iterations"] == 50
    assert params.attributions.options("lime") == {"num_samples": 50, "num_segments": 50,
                                                   "compactness": 10.0}
    assert params.attributions.options("grad_cam") == {}
    for text, message in [
        ("counterfactuals:\n  methods: [wachter]\n", "counterfactuals.methods[0] = 'wachter'"),
        ("counterfactuals:\n  elastic_net:\n    max_iteration: 5\n",
         "unknown key 'counterfactuals.elastic_net.max_iteration' (did you mean "
         "'counterfactuals.elastic_net.max_iterations'?)"),
        ("select:\n  misclassified: -1\n", "select.misclassified = -1"),
        ("attributions:\n  methods: [grad_cam, grad_cam]\n", "lists a value twice"),
        ("attributions:\n  smoothgrad:\n    noise_level: 0\n", "noise_level = 0.0 is out of range"),
    ]:
        with pytest.raises(ParamsError, match=re.escape(message)):
            load_partial(write(tmp_path, text))


def test_explanation_sections_build_the_methods_they_name():
    # Every key of a method's section is a keyword of its class: the stage passes them as they are.
    from pixelflip.attributions import ATTRIBUTION_METHODS, make_attribution
    from pixelflip.config.explanations import ATTRIBUTION_METHODS as ATTRIBUTION_CHOICES
    from pixelflip.config.explanations import COUNTERFACTUAL_METHODS as COUNTERFACTUAL_CHOICES
    from pixelflip.counterfactuals import COUNTERFACTUAL_METHODS, make_counterfactual

    assert COUNTERFACTUAL_CHOICES == tuple(COUNTERFACTUAL_METHODS)
    assert ATTRIBUTION_CHOICES == tuple(ATTRIBUTION_METHODS)
    params = Params()
    for name in COUNTERFACTUAL_METHODS:
        method = make_counterfactual(name, **params.counterfactuals.options(name), batch_size=8,
                                     random_state=1)
        assert method.name == name
    for name in ATTRIBUTION_METHODS:
        method = make_attribution(name, **params.attributions.options(name), batch_size=8,
                                  random_state=1)
        assert method.name == name


def test_image_choice_and_change_tolerance_live_in_select_and_evaluate(tmp_path):
    # num_images, misclassified and figure_images moved from counterfactuals to select (every
    # explanation stage explains the same images); change_tolerance to evaluate.
    params = load_partial(write(tmp_path, (
        "select:\n  num_images: 5\n  misclassified: 0\n  figure_images: 3\n"
        "evaluate:\n  change_tolerance: 0.1\n")))
    assert (params.select.num_images, params.select.misclassified,
            params.select.figure_images) == (5, 0, 3)
    assert params.evaluate.change_tolerance == 0.1
    for key in ("num_images", "misclassified", "figure_images", "change_tolerance"):
        with pytest.raises(ParamsError, match=re.escape(f"unknown key 'counterfactuals.{key}'")):
            load_partial(write(tmp_path, f"counterfactuals:\n  {key}: 1\n"))
    with pytest.raises(ParamsError, match=re.escape("evaluate.change_tolerance = 2.0 is out of")):
        load_partial(write(tmp_path, "evaluate:\n  change_tolerance: 2\n"))



def full_params_text(**replacements):
    """A complete params.yaml of the defaults with some ``"old line": "new line"`` replacements
    (not the working copy, which an experiment may have set to other values)."""
    text = default_params_text()
    for old, new in replacements.items():
        if old not in text:
            raise ValueError(f"{old!r} is not in the defaults' params.yaml")
        text = text.replace(old, new)
    return text


def numeric_knobs():
    """``(dotted key, type)`` of every int and float knob of every section, nested included."""
    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for spec in dataclasses.fields(cls):
            kind = hints[spec.name]
            if dataclasses.is_dataclass(kind):
                yield from walk(kind, f"{prefix}{spec.name}.")
                continue
            if typing.get_origin(kind) is list:
                (item,) = typing.get_args(kind)
                if item in (int, float):
                    yield f"{prefix}{spec.name}", list[item]
                continue
            base = [arg for arg in typing.get_args(kind) if arg is not type(None)] or [kind]
            if base[0] in (int, float):
                yield f"{prefix}{spec.name}", base[0]

    return list(walk(Params, ""))


def nested(key, value):
    *sections, name = key.split(".")
    text = f"{name}: {value}\n"
    for depth, section in reversed(list(enumerate(sections))):
        text = f"{section}:\n" + "".join("  " + line + "\n" for line in text.splitlines())
    return text


@pytest.mark.parametrize("key, kind", numeric_knobs(), ids=lambda value: str(value))
@pytest.mark.parametrize("bad", [".nan", ".inf", "-.inf"])
def test_no_numeric_knob_accepts_nan_or_infinity(tmp_path, key, kind, bad):
    value = f"[{bad}]" if typing.get_origin(kind) is list else bad
    with pytest.raises(ParamsError) as caught:
        load_partial(write(tmp_path, nested(key, value)))
    message = str(caught.value)
    assert key in message
    # Floats: "is not a finite number"; integers: ".nan" is not an integer at all.
    item = typing.get_args(kind)[0] if typing.get_origin(kind) is list else kind
    assert ("not a finite number" if item is float else "wrong type") in message


@pytest.mark.parametrize("key, kind", [pair for pair in numeric_knobs() if pair[1] in (int, list[int])],
                         ids=lambda value: str(value))
def test_every_integer_knob_stops_within_int32(tmp_path, key, kind):
    # TensorFlow takes counts as int32; 10**30 used to end in an OverflowError traceback.
    value = f"[{10**30}]" if kind is not int else 10**30
    with pytest.raises(ParamsError, match=re.escape(key) + r"(\[0\])? = 10{30} is out of range"):
        load_partial(write(tmp_path, nested(key, value)))


def test_exponent_floats_read_as_numbers_as_dvc_reads_them(tmp_path):
    params = load_partial(write(tmp_path, "train:\n  learning_rate: 1e-3\n"
                                          "attention:\n  learning_rate: 5E-4\n"))
    assert params.train.learning_rate == pytest.approx(0.001)
    assert params.attention.learning_rate == pytest.approx(0.0005)


@pytest.mark.parametrize("old, new, expected", [
    ("  epochs: 12\n", "", "'train.epochs' is missing; every knob must be in the file, so that "
                           "DVC records it: add 'epochs: 12' (the default) under train:"),
    ("seed: 42\n", "# seed: 42\n", "'seed' is missing"),
    ("autoencoders:", "autoencoders_gone:", "unknown key 'autoencoders_gone'"),
])
def test_a_missing_knob_is_refused_with_the_line_to_add(tmp_path, old, new, expected):
    with pytest.raises(ParamsError) as caught:
        load_params(write(tmp_path, full_params_text(**{old: new})))
    assert expected in str(caught.value)


def test_a_missing_section_is_refused(tmp_path):
    text = full_params_text()
    start = text.index("\nautoencoders:")
    end = text.index("\nevaluate:")
    with pytest.raises(ParamsError, match="section 'autoencoders' is missing"):
        load_params(write(tmp_path, text[:start] + text[end:]))


@pytest.mark.parametrize("text, expected", [
    ("tracking:\n  uri: 'nonsense://x'\n", "tracking.uri = 'nonsense://x' has no MLflow store scheme"),
    ("tracking:\n  experiment: ''\n", "tracking.experiment is empty"),
    ("tracking:\n  registered_model: ' '\n", "tracking.registered_model is empty"),
    ("counterfactuals:\n  target: class\n  target_class: cat\n",
     "counterfactuals.target_class = 'cat' is not a class of this data; allowed: one of '0'"),
    ("data:\n  source: kaggle\n  classes: {Cat: cat, Dog: dog}\n"
     "counterfactuals:\n  target: class\n  target_class: Dog\n",
     "allowed: one of 'cat', 'dog'"),
    ("data:\n  classes: {Cat: pet, Dog: pet}\n", "fewer than two class labels"),
    ("data:\n  source: folder\n  path: /no/such/folder\n", "data.path = '/no/such/folder' does not exist"),
    ("train:\n  weights: /no/such.weights.h5\n  backbone: vgg16\n", "is not a file"),
    ("attention:\n  placement: [block3]\n", "attention.placement names ['block3'], not feature "
                                            "blocks of simple_cnn with train.conv_filters = [32, 64]"),
    # separable_resnet's first filters are its entry convolution's: one block fewer.
    ("train:\n  backbone: separable_resnet\nattention:\n  placement: [block2]\n",
     "attention.placement names ['block2'], not feature blocks of separable_resnet with "
     "train.conv_filters = [32, 64]; allowed: block1"),
    ("train:\n  backbone: separable_resnet\n  conv_filters: [32, 64, 128, 256]\n"
     "attention:\n  placement: [block1, block4]\n",
     "attention.placement names ['block4'], not feature blocks of separable_resnet with "
     "train.conv_filters = [32, 64, 128, 256]; allowed: block1, block2, block3"),
    # The oracle must be another network with another seed, or agreement proves nothing.
    ("oracle:\n  seed: 42\n", "oracle.seed = 42 is the pipeline's seed"),
    ("oracle:\n  backbone: simple_cnn\n  conv_filters: [32, 64]\n",
     "build the same network as train (simple_cnn, None, [32, 64])"),
    ("oracle:\n  backbone: resnet18\n", "oracle.backbone = 'resnet18' is unknown"),
    ("oracle:\n  backbone: vgg16\n  input_size: 16\n", "oracle.input_size = 16 is too small"),
    ("oracle:\n  conv_filters: [16]\n", "oracle.conv_filters = [16] is too short"),
    ("counterfactuals:\n  regions:\n    replacement: noise\n",
     "counterfactuals.regions.replacement"),
])
def test_checks_that_need_no_data_run_before_any_stage(tmp_path, text, expected):
    # These used to surface only in the stage that reads them, after training.
    with pytest.raises(ParamsError) as caught:
        load_partial(write(tmp_path, text))
    assert expected in str(caught.value)


@pytest.mark.parametrize("text, expected", [
    ("tracking:\n  uri: 'postgresql+psycopg2://u@h/db'\n"
     "counterfactuals:\n  target: class\n  target_class: '7'\n"
     "attention:\n  placement: [block1, block2]\n",
     {"counterfactuals.target_class": "7", "attention.placement": ["block1", "block2"]}),
    # separable_resnet is built here like simple_cnn: no keras.applications minimum side of 32.
    ("train:\n  backbone: separable_resnet\n  conv_filters: [32, 64, 128, 256]\n"
     "  input_size: 16\nattention:\n  placement: [block1, block3]\n",
     {"train.backbone": "separable_resnet", "train.input_size": 16,
      "attention.placement": ["block1", "block3"]}),
])
def test_values_the_cross_key_checks_allow_pass(tmp_path, text, expected):
    params = load_partial(write(tmp_path, text))
    for key, value in expected.items():
        section, name = key.split(".")
        assert getattr(getattr(params, section), name) == value


def test_a_small_side_is_refused_for_keras_applications_only(tmp_path):
    with pytest.raises(ParamsError, match="too small for vgg16"):
        load_partial(write(tmp_path, "train:\n  backbone: vgg16\n  input_size: 16\n"))


def test_own_backbones_match_the_model_registry():
    from pixelflip.config.params import OWN_BACKBONES as OWN_CHOICES
    from pixelflip.models.backbones import OWN_BACKBONES

    assert OWN_CHOICES == tuple(OWN_BACKBONES) == ("simple_cnn", "separable_resnet")
