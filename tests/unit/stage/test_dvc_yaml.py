"""dvc.yaml is complete by construction: every module a stage runs lies under one of its deps,
every library folder it declares is run, and every params key its script reads is declared.

DVC reruns a stage only when a declared dep or param changes; a module or key missing from
dvc.yaml means silently stale results. These checks read the stage scripts' import graphs (see
tests/support/imports.py) and attribute chains, so they need no data and no TensorFlow.
"""

import ast
import dataclasses
import sys
import typing
from pathlib import Path

import networkx
import pytest
from support.imports import module_file, reached_modules
from support.project import ROOT

from pixelflip.config.declared import is_declared
from pixelflip.config.methods import METHODS
from pixelflip.config.params import Params
from pixelflip.stage.declarations import StageDeclaration, read_declarations

SOURCE_ROOT = ROOT / "src"
LIBRARY = "src/pixelflip"
DECLARATIONS = read_declarations(ROOT)


def stage_script(declaration: StageDeclaration) -> Path:
    words = declaration.command.split()
    if words[:1] != ["python"] or not words[1:2] or not words[1].startswith("stages/"):
        raise AssertionError(f"{declaration.name}: cmd {declaration.command!r} is not "
                             "`python stages/<stage>.py ...`")
    return ROOT / words[1]


def modules_run_by(declaration: StageDeclaration) -> dict[str, Path]:
    """The stage script's modules, plus the methods a reached family package builds by name."""
    reached = reached_modules(stage_script(declaration), SOURCE_ROOT)
    for spec in METHODS:
        if f"pixelflip.{spec.family}" in reached:
            for name, path in reached_modules(module_file(SOURCE_ROOT, spec.module),
                                              SOURCE_ROOT).items():
                reached.setdefault(name, path)
            reached.setdefault(spec.module, module_file(SOURCE_ROOT, spec.module))
    return reached


def undeclared_modules(declaration: StageDeclaration) -> list[str]:
    """Files of modules the stage runs that no dep of ``declaration`` covers."""
    deps = [ROOT / dep for dep in declaration.deps]
    return sorted(str(path.relative_to(ROOT)) for path in modules_run_by(declaration).values()
                  if not any(path == dep or dep in path.parents for dep in deps))


def unused_library_deps(declaration: StageDeclaration) -> list[str]:
    """Library deps of ``declaration`` that hold no module the stage runs."""
    run = list(modules_run_by(declaration).values())
    return [dep for dep in declaration.deps if dep.startswith(LIBRARY) and not any(
        path == ROOT / dep or ROOT / dep in path.parents for path in run)]


@pytest.mark.parametrize("stage", list(DECLARATIONS))
def test_every_module_a_stage_runs_is_among_its_deps(stage):
    declaration = DECLARATIONS[stage]
    assert stage_script(declaration).relative_to(ROOT).as_posix() in declaration.deps
    assert undeclared_modules(declaration) == []


@pytest.mark.parametrize("stage", list(DECLARATIONS))
def test_every_library_folder_a_stage_declares_is_run_by_it(stage):
    # A folder declared but never run would rerun the stage for changes it cannot see.
    assert unused_library_deps(DECLARATIONS[stage]) == []


@pytest.mark.parametrize("stage", list(DECLARATIONS))
def test_deleting_any_library_dep_line_of_a_stage_fails_the_check(stage):
    declaration = DECLARATIONS[stage]
    library_deps = [dep for dep in declaration.deps if dep.startswith(LIBRARY)]
    assert f"{LIBRARY}/__init__.py" in library_deps and len(library_deps) >= 3
    for dropped in library_deps:
        fewer = dataclasses.replace(declaration, deps=tuple(
            dep for dep in declaration.deps if dep != dropped))
        missing = undeclared_modules(fewer)
        assert missing and all(path.startswith(dropped) for path in missing), dropped


def test_the_declarations_are_those_dvc_itself_reads():
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        # The root dvc.yaml's; pipeline folders derive theirs from it (test_pipeline_folder.py).
        stages = {stage.addressing: stage for stage in repo.index.stages
                  if Path(stage.path).parent == ROOT}
        assert sorted(stages) == sorted(DECLARATIONS)
        for name, stage in stages.items():
            declaration = DECLARATIONS[name]
            params = [key for dep in stage.deps if isinstance(dep, ParamsDependency)
                      for key in dep.params]
            paths = [dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)]
            assert sorted(params) == sorted(declaration.params), name
            assert sorted(paths) == sorted(declaration.deps), name
            assert sorted(out.def_path for out in stage.outs) == sorted(declaration.outs), name
            assert stage.cmd == declaration.command, name


def params_keys_read(script: Path) -> set[str]:
    """Dotted params keys a stage script reads: attribute chains from its ``params`` argument
    that end at a params field, followed through plain aliases (``options =
    params.counterfactuals``). What a section's method reads (``attention.module(name)``) or a
    function handed a whole view reads is known only at run time, where the stage frame's
    view checks it (tests/unit/config/test_declared.py)."""
    tree = ast.parse(script.read_text())
    aliases: dict[str, tuple[str, ...]] = {"params": ()}
    keys: set[str] = set()

    def chain_of(node: ast.AST) -> tuple[str, ...] | None:
        names = []
        while isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in aliases:
            return (*aliases[node.id], *reversed(names))
        return None

    alias_values = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        pairs = [(target, value)]
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            pairs = list(zip(target.elts, value.elts))  # data, validate = params.data, ...
        for name, expression in pairs:
            if isinstance(name, ast.Name) and (chain := chain_of(expression)) is not None:
                aliases[name.id] = chain
                alias_values.add(id(expression))
    # Only the outermost attribute of a chain is a read (params.a.b reads a.b, not a), and
    # making an alias is not a read: using it is.
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    for node in ast.walk(tree):
        if id(node) in inner or id(node) in alias_values:
            continue
        if isinstance(node, ast.Attribute) and (chain := chain_of(node)) is not None:
            key = params_key(chain)
            if key and key.count(".") + 1 == len(chain):  # not a method call
                keys.add(key)
        elif isinstance(node, ast.Name) and node.id in aliases and isinstance(node.ctx, ast.Load):
            key = params_key(aliases[node.id])  # `seed = params.seed` ... `f(seed)`
            if key and key.count(".") + 1 == len(aliases[node.id]) and not is_section(key):
                keys.add(key)
    return keys


def is_section(key: str) -> bool:
    section: typing.Any = Params
    for name in key.split("."):
        section = typing.get_type_hints(section)[name]
    return dataclasses.is_dataclass(section)


def params_key(chain: tuple[str, ...]) -> str:
    """The longest prefix of ``chain`` that names params fields (the rest is a method)."""
    section: typing.Any = Params
    taken = []
    for name in chain:
        if not (dataclasses.is_dataclass(section) and name in {
                field.name for field in dataclasses.fields(section)}):
            break
        taken.append(name)
        section = typing.get_type_hints(section)[name]
    return ".".join(taken)


@pytest.mark.parametrize("stage", [name for name, declaration in DECLARATIONS.items()
                                   if not declaration.all_params])
def test_every_params_key_a_stage_script_reads_is_declared(stage):
    declaration = DECLARATIONS[stage]
    read = params_keys_read(stage_script(declaration))
    assert read, f"{stage} reads no params at all, which the scan should have seen"
    assert sorted(key for key in read if not is_declared(key, declaration.params)) == []


def test_the_check_stage_reads_the_whole_file_and_every_stage_descends_from_it():
    # DVC deletes a stage's outputs before its command runs; only a stage upstream of all the
    # others can refuse a bad value while every output is still there.
    from dvc.repo import Repo

    (checking,) = [name for name, declaration in DECLARATIONS.items() if declaration.all_params]
    assert checking == "check"
    with Repo(str(ROOT)) as repo:
        graph = repo.index.graph
        # Every pipeline of the repository, the root's and each pipeline folder's, by folder.
        pipelines: dict[Path, dict] = {}
        for stage in repo.index.stages:
            pipelines.setdefault(Path(stage.path).parent, {})[stage.name] = stage
        # DVC's graph points from a stage to the stages it depends on.
        upstream_of = {(folder, name): {s.name for s in networkx.descendants(graph, stage)
                                        if Path(s.path).parent == folder}
                       for folder, stages in pipelines.items() for name, stage in stages.items()}
    assert ROOT in pipelines
    for folder, stages in pipelines.items():
        assert all(checking in upstream_of[folder, name] for name in stages if name != checking)
        (check_out,) = stages[checking].outs
        assert check_out.persist and not check_out.use_cache


def test_the_params_scan_sees_aliases_and_method_calls(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(
        "def main(params):\n"
        "    options = params.counterfactuals\n"
        "    kwargs = options.options('elastic_net')\n"
        "    return params.select.num_images, options.batch_size, params.seed\n")
    assert params_keys_read(script) == {"counterfactuals.batch_size", "select.num_images", "seed"}
    script.write_text(
        "def main(params):\n"
        "    data, seed = params.data, params.seed\n"
        "    return data.source, data.kaggle.dataset, seed\n")
    assert params_keys_read(script) == {"data.source", "data.kaggle.dataset", "seed"}


def test_the_params_scan_finds_a_key_a_stage_forgot_to_declare(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text("def main(params):\n    return params.train.epochs, params.seed\n")
    read = params_keys_read(script)
    assert [key for key in read if not is_declared(key, ("seed",))] == ["train.epochs"]


@pytest.mark.parametrize("stage", list(DECLARATIONS))
def test_no_stage_script_stands_in_for_a_standard_library_module(stage):
    # `python stages/x.py` puts stages/ first on sys.path: a stages/select.py would be imported
    # by socket, selectors, subprocess ... in place of the real `select`.
    assert stage_script(DECLARATIONS[stage]).stem not in sys.stdlib_module_names
