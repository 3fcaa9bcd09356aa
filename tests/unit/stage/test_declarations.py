"""Reading dvc.yaml: params, deps and outs per stage, foreach stages expanded as DVC does."""

import pytest

from pixelflip.stage.declarations import read_declarations, stage_declaration

DVC_YAML = """
stages:
  train:
    cmd: python stages/train.py
    deps: [stages/train.py, src/pixelflip/training]
    params: [seed, train]
    outs:
      - models/base.keras
      - plots/train:
          cache: false
    metrics:
      - metrics/train.json:
          cache: false
  attention:
    foreach: ${attention.modules}
    do:
      cmd: python stages/attention.py ${item}
      deps: [stages/attention.py]
      params:
        - seed
        - attention.${item}
      outs:
        - models/attention/${item}.keras
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "params.yaml").write_text("attention:\n  modules: [se, pam]\n")
    return tmp_path


def test_plain_stages_keep_their_params_deps_and_every_output(project):
    train = read_declarations(project)["train"]
    assert train.command == "python stages/train.py"
    assert train.params == ("seed", "train")
    assert train.deps == ("stages/train.py", "src/pixelflip/training")
    assert train.outs == ("models/base.keras", "plots/train", "metrics/train.json")


def test_foreach_stages_expand_over_the_params_list(project):
    declarations = read_declarations(project)
    assert list(declarations) == ["train", "attention@se", "attention@pam"]
    pam = declarations["attention@pam"]
    assert pam.command == "python stages/attention.py pam"
    assert pam.params == ("seed", "attention.pam")
    assert pam.outs == ("models/attention/pam.keras",)


def test_an_unknown_stage_names_the_stages_there_are(project):
    with pytest.raises(ValueError, match="no stage 'compare'; its stages are: train, "
                                         "attention@se, attention@pam"):
        stage_declaration("compare", project)


@pytest.mark.parametrize("text, message", [
    ("stages:\n  a:\n    cmd: x ${seed}\n", r"uses \$\{seed\}"),
    ("stages:\n  a:\n    foreach: ${nothing.here}\n    do: {cmd: x}\n", "names 'nothing.here'"),
    ("stages:\n  a:\n    cmd: x\n    params:\n      - other.yaml: [k]\n", "declares params"),
])
def test_syntax_this_reader_does_not_understand_is_refused_not_misread(tmp_path, text, message):
    (tmp_path / "dvc.yaml").write_text(text)
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    with pytest.raises(ValueError, match=message):
        read_declarations(tmp_path)
