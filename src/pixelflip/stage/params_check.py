"""The ``check`` stage: the whole params file is checked before DVC removes any output.

DVC deletes a stage's outputs *before* it runs the stage's command, so a stage that checks its
own params has already lost its outputs when it refuses a bad value. The check stage reads every
key of params.yaml (``- params.yaml:`` in dvc.yaml), every other stage descends from it, and
``dvc repro`` stops at the first failing stage: a bad value stops the pipeline while every
output is still there, and fixing the value leaves ``dvc status`` clean.

Its one output, :data:`~pixelflip.stage.layout.PARAMS_CHECKED`, holds the same text whatever
the params, so after a good edit DVC sees it unchanged and reruns only the stages whose own
params changed. It is declared ``persist`` so that DVC does not delete it before a failing
check either.
"""

from __future__ import annotations

from pathlib import Path

from pixelflip.config.knobs import ParamsError
from pixelflip.config.params import Params, load_params
from pixelflip.stage import layout
from pixelflip.stage.console import answer_help, fail, require_project_root

STAGE = "check"
MARK = "params.yaml passed every check of pixelflip.config.params.load_params\n"


def params_file(root: Path) -> Path:
    """``<root>/params.yaml``, relative when ``root`` is the working folder, so that messages
    say ``params.yaml: train.epochs ...``."""
    return Path("params.yaml") if root.resolve() == Path.cwd().resolve() else root / "params.yaml"


def check_params_file(root: Path) -> Params:
    """Check ``<root>/params.yaml`` whole and write the mark; ParamsError naming the first bad key."""
    params = load_params(params_file(root))
    mark = root / layout.PARAMS_CHECKED
    # Rewriting the same text would still change the file's mtime; leave it alone when equal.
    if not mark.is_file() or mark.read_text() != MARK:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text(MARK)
    return params


def run_check() -> None:
    """The check stage's command line: one error line and exit 2 on a bad params file."""
    answer_help(STAGE, ())
    require_project_root(STAGE)
    try:
        check_params_file(Path.cwd())
    except ParamsError as error:
        fail(STAGE, str(error))
    print(f"[{STAGE}] params.yaml is valid", flush=True)
