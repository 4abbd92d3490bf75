"""The package's layers import one way (docs/architecture.md), checked on every import statement, including those
inside functions:

    foundation (errors, registry, utils) <- ops <- layers <- modules <- models <- data <- export <- bench
        <- compress <- engine <- workflows <- cli

A package may import its own modules and any lower layer, never a higher one; an import inside a function is
for an optional third-party dependency, never for a litevision module (that would only hide a cycle); other
packages import a package's public namespace, not its ``_private`` modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "litevision"

LAYERS = ["foundation", "ops", "layers", "modules", "models", "data", "export", "bench", "compress", "engine",
          "workflows", "cli"]
FOUNDATION = {"errors", "registry", "utils", "version"}
CORE = {"ops", "layers", "modules", "models"}
FACADES = {"__init__", "__main__"}  # the public API module and ``python -m litevision`` sit above everything
# litevision modules that may be imported inside a function, with the reason
LAZY = {"litevision.ops._ska_triton": "imports Triton (GPU kernels) at module level: only when a CUDA tensor arrives"}


def _layer(parts: list[str]) -> str:
    head = parts[0] if parts else "__init__"
    return "foundation" if head in FOUNDATION else head


def _module_parts(path: Path) -> list[str]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, absolute module name, inside a function) of every litevision import in ``path``."""
    tree = ast.parse(path.read_text())
    own = ["litevision", *_module_parts(path)]
    package = own if path.name == "__init__.py" else own[:-1]
    found: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names if a.name.startswith("litevision")]
                found.extend((child.lineno, name, in_function) for name in names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - child.level + 1]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                if module == "litevision.ops" and any(a.name == "_ska_triton" for a in child.names):
                    module = "litevision.ops._ska_triton"
                if module.startswith("litevision"):
                    found.append((child.lineno, module, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def _all_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.stem for p in SRC.glob("*.py")}
    assert packages | (modules - FACADES) <= set(LAYERS) | FOUNDATION


@pytest.mark.parametrize("path", _all_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    parts = _module_parts(path)
    if path.stem in FACADES and len(parts) <= 1:
        return
    mine = _layer(parts)
    problems = []
    for line, module, in_function in _imports(path):
        target = module.split(".")[1:]
        theirs = _layer(target)
        where = f"{path.relative_to(SRC)}:{line} imports {module}"
        if in_function and module not in LAZY:
            problems.append(f"{where} inside a function (import it at the top; a litevision module is not optional)")
        if theirs not in LAYERS or LAYERS.index(theirs) > LAYERS.index(mine):
            problems.append(f"{where}: {mine} must not depend on {theirs}")
        if mine in CORE and theirs in {"data", "export", "bench", "engine", "workflows", "cli"}:
            problems.append(f"{where}: a core package never imports {theirs}")
        same_package = target[:1] == parts[:1]
        if not same_package and any(p.startswith("_") for p in target[1:]):
            problems.append(f"{where}: a private module of another package (import its public namespace)")
    assert not problems, "\n".join(problems)


def test_module_tests_are_named_after_the_module_file() -> None:
    """Reference tests of a plug-in module live in tests/modules/test_<file>.py, next to nothing else."""
    module_files = {p.stem.lstrip("_") for p in (SRC / "modules").glob("*.py")}
    tests = sorted((Path(__file__).parent / "modules").glob("test_*.py"))
    assert tests
    assert [t.name for t in tests if t.stem.removeprefix("test_") not in module_files] == []
