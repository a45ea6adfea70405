"""The package's shape (issue 12): layers point down the pipeline, no import circles,
no module over 450 lines and no function over 100 lines.

Every import counts, also those inside functions (a lazy upward import is still an
upward dependency). The compatibility modules that keep 0.1's import paths working
are thin re-exports: nothing inside the package may import them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sharpscope

ROOT = Path(sharpscope.__file__).parent
CLI = ROOT.parent / "cli"

# Pipeline order: a module may import its own layer (without circles) and those below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("sharpscope.errors", "sharpscope._version")),
    ("runtime", ("sharpscope.runtime",)),
    ("problem", ("sharpscope.problem",)),
    ("optim", ("sharpscope.optim",)),
    ("training", ("sharpscope.training",)),
    (
        "probes",
        (
            "sharpscope.hessian",
            "sharpscope.landscape",
            "sharpscope.sharpness",
            "sharpscope.reference",
        ),
    ),
    ("report", ("sharpscope.report",)),
    ("compare", ("sharpscope.compare",)),
    ("demo", ("sharpscope.demo",)),
    ("api", ("sharpscope", "sharpscope.__main__")),
]
# 0.1's import paths, kept as re-exports for users (README, notebooks).
COMPAT = {
    "sharpscope.utils",
    "sharpscope._func",
    "sharpscope.distributed",
    "sharpscope.data",
    "sharpscope.models",
    "sharpscope.losses",
    "sharpscope.checkpoint",
    "sharpscope.train",
    "sharpscope.plane",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every sharpscope module that ``module`` imports, at any depth of its code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != module and t.startswith("sharpscope"):
                found.add(t)
    # a name imported from a package that is also a submodule resolves to the submodule;
    # the package itself is then imported too, but that edge is the package's __init__
    return found


def _layer(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    assert rank is not None, f"{module} belongs to no layer: add it to LAYERS"
    return rank


MODULES = _modules()
GRAPH = {m: _imports(m, p, set(MODULES)) for m, p in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    for m in MODULES:
        if m not in COMPAT:
            _layer(m)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m not in COMPAT))
def test_imports_point_down_the_pipeline(module: str) -> None:
    own = _layer(module)
    for dep in sorted(GRAPH[module]):
        assert dep not in COMPAT, f"{module} imports the compatibility module {dep}"
        if module == "sharpscope" or dep == "sharpscope":
            continue  # the public API re-exports everything, lazily
        assert _layer(dep) <= own, (
            f"{module} ({LAYERS[own][0]}) imports {dep} ({LAYERS[_layer(dep)][0]}): upward"
        )


def test_no_import_cycles() -> None:
    graph = {
        m: {d for d in deps if d != "sharpscope"} for m, deps in GRAPH.items() if m != "sharpscope"
    }
    # a package's __init__ importing its own submodules is not a cycle with them when
    # they import siblings directly; count edges submodule -> own package as the package
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if m.startswith(d + ".") or d.startswith(m + "."):
                continue  # package <-> its own submodule
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if state.get(d) is None:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if state.get(m) is None:
            visit(m)


@pytest.mark.parametrize(
    "path",
    sorted([*ROOT.rglob("*.py"), *CLI.rglob("*.py")]),
    ids=lambda p: str(p.relative_to(ROOT.parent)),
)
def test_module_size(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 450, f"{path.relative_to(ROOT.parent)} has {lines} lines (limit 450)"


@pytest.mark.parametrize(
    "path", sorted([*ROOT.rglob("*.py"), *CLI.rglob("*.py")]), ids=lambda p: p.name
)
def test_function_size(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [
        f"{n.name} ({n.end_lineno - n.lineno + 1} lines)"
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        and n.end_lineno - n.lineno + 1 > 100
    ]
    assert not long, f"{path.name}: functions over 100 lines: {', '.join(long)}"
