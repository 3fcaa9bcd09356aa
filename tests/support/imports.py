"""The pixelflip modules a script runs: its import graph inside the package, read from the source.

Every ``import`` and ``from ... import`` counts, those inside functions included (the stages
import TensorFlow-heavy modules lazily), and so does a string naming a module
(``"pixelflip.counterfactuals.elastic_net:ElasticNetCounterfactual"``: the method registry
imports classes by name). Importing a module runs its packages' ``__init__.py`` too, so those are
reached as well. Imports under ``if TYPE_CHECKING:`` do not run, so they do not count.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = "pixelflip"
_MODULE_STRING = re.compile(rf"^({PACKAGE}(?:\.\w+)+)(?::\w+)?$")


def module_file(source_root: Path, module: str) -> Path | None:
    """The file of ``module`` (``pixelflip.config.params``) under ``source_root``, or None."""
    base = source_root.joinpath(*module.split("."))
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None


def imported_modules(path: Path, source_root: Path) -> set[str]:
    """The pixelflip modules ``path`` imports directly (anywhere in the file)."""
    found: set[str] = set()
    for node in _running_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from pixelflip.stage import layout` imports the module pixelflip.stage.layout.
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if module_file(source_root, f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _MODULE_STRING.match(node.value)
            if match and module_file(source_root, match.group(1)):
                found.add(match.group(1))
    return {name for name in found if name == PACKAGE or name.startswith(f"{PACKAGE}.")}


def _running_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                pending.extend(child.orelse)
            else:
                pending.append(child)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def reached_modules(script: Path, source_root: Path) -> dict[str, Path]:
    """Every pixelflip module ``script`` runs, directly or through other modules, by file."""
    reached: dict[str, Path] = {}
    pending = list(imported_modules(script, source_root))
    while pending:
        module = pending.pop()
        parts = module.split(".")
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name in reached:
                continue
            path = module_file(source_root, name)
            if path is None:
                raise ValueError(f"{script} imports {module}, which has no file under "
                                 f"{source_root}")
            reached[name] = path
            pending.extend(imported_modules(path, source_root))
    return reached
