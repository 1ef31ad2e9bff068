"""The shape of the code, as contracts that fail when it drifts: no import cycle (imports inside functions
count), no source file over 400 lines, stages/ holds only stages, every stage and runtime the registries
name exists, and the layers (import-linter, `make contracts`) include every module."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

from optismith import catalog, lazy
from optismith.pipeline.registry import STAGES
from optismith.runs.stage import Stage
from optismith.runtimes import RUNTIMES, Runtime

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "optismith"
MAX_LINES = 400


def strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """Import cycles: strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def test_no_import_cycles_lazy_imports_included() -> None:
    graph = grimp.build_graph("optismith")  # grimp reads every import statement, also inside functions
    assert strongly_connected(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.y", imported="a.z")
    assert strongly_connected(graph) == [{"a.x", "a.y"}]


def test_no_source_file_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by concept: {long}"


def test_stages_holds_only_the_registered_stages() -> None:
    registered = {path.split(":")[0] for path in STAGES.values()}
    found = set()
    for path in (PACKAGE / "stages").iterdir():
        if path.name in ("__init__.py", "__pycache__"):
            continue
        module = f"optismith.stages.{path.stem if path.is_file() else path.name}"
        found.add(module)
    assert found == registered, "stages/ holds stage modules (or a package per stage) and nothing else"
    for path in (PACKAGE / "stages").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("optismith.stages."):
                own = f"optismith.stages.{path.relative_to(PACKAGE / 'stages').parts[0].removesuffix('.py')}"
                assert node.module.startswith(own), f"{path.name} imports another stage: {node.module}"


@pytest.mark.parametrize("name", list(STAGES))
def test_every_registered_stage_loads_and_says_its_name(name: str) -> None:
    stage = lazy.load(STAGES[name])
    assert issubclass(stage, Stage) and stage.name == name
    assert all(required in STAGES for required in stage.requires)


@pytest.mark.parametrize("name", list(RUNTIMES))
def test_every_registered_runtime_loads_and_says_its_name(name: str) -> None:
    runtime = lazy.load(RUNTIMES[name])
    assert issubclass(runtime, Runtime) and runtime.name == name


@pytest.mark.parametrize("variant", catalog.names())
def test_every_catalog_entry_names_a_runtime_a_stage_and_a_builder_that_exist(variant: str) -> None:
    entry = catalog.get(variant)
    assert entry.runtime in RUNTIMES
    assert entry.stage in STAGES
    assert entry.stage in catalog.building_stages()
    if entry.builder:
        assert callable(lazy.load(entry.builder))


def test_every_module_is_in_a_layer() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    layered = {part.strip().strip('"') for line in text.split("layers = [", 1)[1].split("]", 1)[0].splitlines()
               for part in line.strip().rstrip(",").split("|") if part.strip()}
    top_level = {f"optismith.{p.stem if p.is_file() else p.name}" for p in PACKAGE.iterdir()
                 if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").exists())}
    assert top_level <= layered, f"add to a layer in pyproject.toml: {sorted(top_level - layered)}"


def test_the_harness_uses_only_kmocks_public_api() -> None:
    """import-linter cannot forbid an external package's submodule, so this reads the harness's imports."""
    private = []
    for path in (ROOT / "tests" / "harness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            private += [f"{path.name}: {name}" for name in names if name.startswith("kmock.")]
    assert not private, private
