"""The package's import layering (README, "Architecture"): each subpackage imports only from
itself and from the layers below it, and no two modules import each other, even through others.

Imports are read from the source (``ast``), function-level ones included: a lazy import is still
a dependency.  Imports under ``if TYPE_CHECKING:`` are annotations only and are not counted.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "neurodyn"

# Lowest first.  Packages on one line are peers: they may not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("neurons",),                    # the math of each neuron, defined once
    ("kernels", "solvers"),          # generated Numba/CUDA kernels; ODE solvers
    ("core",),                       # the event-driven network on arrays: no torch modules
    ("nn",),                         # torch modules, and lifting them into the core (nn.convert)
    ("data",),                       # readers, transforms, loaders
    ("train",),                      # trainer, losses, recipes
    ("delays", "inference", "export"),
    ("cli",),
]


def _modules(root: Path) -> dict[str, Path]:
    pkg = root.name
    out = {}
    for path in root.rglob("*.py"):
        parts = (pkg, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports (``a.b.c`` resolved to the longest existing module)."""
    mods = _modules(root)
    pkg = root.name
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = _type_checking_nodes(tree)
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    head = ".".join(base + ([node.module] if node.module else []))
                else:
                    head = node.module or ""
                names = [f"{head}.{a.name}" for a in node.names] or [head]
            for name in names:
                while name not in mods and "." in name:
                    name = name.rsplit(".", 1)[0]
                if name in mods and name != mod and name.split(".")[0] == pkg:
                    targets.add(name)
        graph[mod] = targets
    return graph


def _subpackage(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else None


def layering_violations(root: Path, layers: list[tuple[str, ...]] = LAYERS) -> list[str]:
    """Each import that goes up or sideways in ``layers``, as 'importer -> imported'."""
    rank = {p: i for i, line in enumerate(layers) for p in line}
    bad = []
    for mod, targets in sorted(import_graph(root).items()):
        a = _subpackage(mod)
        if a is None:  # the top-level neurodyn/__init__ may gather anything
            continue
        if a not in rank:
            bad.append(f"{mod}: subpackage '{a}' has no layer")
            continue
        for t in sorted(targets):
            b = _subpackage(t)
            if b is None:
                bad.append(f"{mod} -> {t} (imports the top-level package)")
            elif b != a and rank.get(b, len(layers)) >= rank[a]:
                bad.append(f"{mod} -> {t}")
    return bad


def import_cycles(root: Path) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan), each sorted."""
    graph = import_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the module count (~100)
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_subpackage_has_a_layer():
    subpackages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    subpackages |= {p.stem for p in ROOT.glob("*.py") if p.stem not in ("__init__", "__main__")}
    placed = {p for line in LAYERS for p in line}
    assert subpackages <= placed, f"place {sorted(subpackages - placed)} in LAYERS (and in the README)"


def test_imports_follow_the_layers():
    bad = layering_violations(ROOT)
    assert not bad, "imports against the layering (README, Architecture):\n  " + "\n  ".join(bad)


def test_no_import_cycles():
    cycles = import_cycles(ROOT)
    assert not cycles, "modules importing each other:\n  " + "\n  ".join(" <-> ".join(c) for c in cycles)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_checker_flags_an_upward_import_and_a_cycle(tmp_path):
    # The checks above would pass vacuously if the graph were empty: a package with one upward
    # (core -> nn), one lazy sideways import and one circle must be caught, a TYPE_CHECKING one not.
    pkg = _write(tmp_path / "neurodyn", {
        "__init__.py": "",
        "errors.py": "",
        "core/__init__.py": "from .network import Network\n",
        "core/network.py": "def f():\n    from ..nn.convert import to_network\n",
        "core/engine.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..nn import x\n",
        "nn/__init__.py": "",
        "nn/convert.py": "from ..core.network import Network\nfrom ..errors import E\n",
        "delays/__init__.py": "def g():\n    import neurodyn.export.a\n",
        "export/__init__.py": "",
        "export/a.py": "from .b import y\n",
        "export/b.py": "from . import a\n",
    })
    assert layering_violations(pkg) == ["neurodyn.core.network -> neurodyn.nn.convert",
                                        "neurodyn.delays -> neurodyn.export.a"]
    assert ["neurodyn.core.network", "neurodyn.nn.convert"] in import_cycles(pkg)
    assert ["neurodyn.export.a", "neurodyn.export.b"] in import_cycles(pkg)
    assert not any("engine" in m for c in import_cycles(pkg) for m in c)


@pytest.mark.parametrize("layers", [[("core",), ("errors",)]])
def test_checker_reads_the_order(tmp_path, layers):
    pkg = _write(tmp_path / "neurodyn", {"__init__.py": "", "errors.py": "", "core/__init__.py": "from .. import errors\n"})
    assert layering_violations(pkg, layers) == ["neurodyn.core -> neurodyn.errors"]
    assert layering_violations(pkg) == []
