"""The package's layout: no import circle among aha's modules, and no two modules named alike for different ideas."""

import ast
from collections import Counter
from pathlib import Path

import pytest


SOURCE = Path(__file__).resolve().parents[1] / "src"
#: module names that several packages use for the same idea (each command's argument dataclasses)
SHARED_NAMES = {"arguments"}


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (path, is a package)}`` of every module under ``src/aha``."""
    modules = {}
    for path in (SOURCE / "aha").rglob("*.py"):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if package else parts)] = (path, package)
    return modules


def _imports(module: str, path: Path, package: bool, modules, module_level_only: bool) -> set[str]:
    """The aha modules that ``module`` imports (``module_level_only``: leaving out imports inside functions and
    ``if TYPE_CHECKING:`` blocks), without its own parent packages (Python imports them before it anyway)."""
    found = set()

    def visit(node, deferred: bool):
        for child in ast.iter_child_nodes(node):
            inner = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            inner = inner or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, (ast.Import, ast.ImportFrom)) and not (module_level_only and inner):
                for name in _targets(module, package, child, modules):
                    while name and name not in modules:
                        name = name.rpartition(".")[0]
                    if name and name != module and not module.startswith(name + "."):
                        found.add(name)
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def _targets(module: str, package: bool, node, modules) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module.split(".") if package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target for alias in node.names]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("module_level_only", [True, False], ids=["module-level", "function-level-too"])
def test_no_import_circle(module_level_only):
    """Imports at module level, and also those inside functions (a circle deferred into a function is still a
    circle: ``modeling_aha -> saving -> hub -> pipeline -> modeling_aha`` was one)."""
    modules = _modules()
    graph = {name: _imports(name, *modules[name], modules, module_level_only) for name in modules}
    assert len(graph) > 50 and graph["aha.pipeline"] >= {"aha.modeling.modeling_aha"}  # the walk sees the imports
    circle = _cycle(graph)
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_two_modules_share_a_name():
    """Each file says what it holds: two modules (or a module and a package) never share a name, but for
    :data:`SHARED_NAMES`."""
    names = Counter(name.rpartition(".")[2] for name in _modules() if name != "aha")
    shared = {name: count for name, count in names.items() if count > 1 and name not in SHARED_NAMES}
    assert not shared, f"module names used more than once: {shared}"


#: the longest a function in ``src/`` may be, from its ``def`` line to the last line of its body
MAX_FUNCTION_LINES = 60


def _long_functions(limit: int) -> list[tuple[str, int]]:
    """``[("file.py Class.function", lines), ...]`` for every function under ``src/`` longer than ``limit`` lines,
    counted from the ``def`` line (decorators left out) to the last line of the body, docstring included."""
    found = []

    def visit(node, path: str, prefix: str):
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}."
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = child.end_lineno - child.lineno + 1
                if lines > limit:
                    found.append((f"{path} {name[:-1]}", lines))
            visit(child, path, name)

    for path in sorted(SOURCE.rglob("*.py")):
        visit(ast.parse(path.read_text(encoding="utf-8")), str(path.relative_to(SOURCE)), "")
    return found


def test_no_long_function():
    """Each function reads on one screen: none in ``src/`` runs over :data:`MAX_FUNCTION_LINES` lines."""
    assert _long_functions(limit=5), "the walk sees the functions"
    long = _long_functions(MAX_FUNCTION_LINES)
    assert not long, "functions over 60 lines: " + ", ".join(f"{name} ({lines})" for name, lines in long)


#: what sits at the top of ``aha``: the package's face (its exports, the ``aha`` command, the pipeline, registration
#: with transformers), small utilities every stage shares, and one package per stage of the data flow or per command
TOP_LEVEL = {
    "modules": {"__main__", "cli", "explain", "pipeline", "registration", "threads", "typed_options", "validation"},
    "packages": {
        "data",
        "modeling",
        "ranking",
        "metrics",
        "metrics_hub",
        "imaging",
        "baselines",
        "training",
        "evaluation",
        "demo",
        "persistence",
    },
}


def test_the_top_level_holds_the_face_and_one_folder_per_stage():
    """A new module finds its stage's folder (README, "Architecture") instead of joining the top level."""
    names = {name: package for name, (_, package) in _modules().items() if name != "aha"}
    modules = {name.split(".")[1] for name, package in names.items() if name.count(".") == 1 and not package}
    folders = {name.split(".")[1] for name, package in names.items() if name.count(".") > 1 or package}
    assert modules == TOP_LEVEL["modules"]
    assert folders == TOP_LEVEL["packages"]


def test_the_curves_never_import_the_explainer():
    """``ranking/`` and ``metrics/`` (the perturbation curves, for training and for evaluation) never import
    ``modeling/`` (the explainer), and ``ranking/`` never imports ``metrics/``: the dependency runs one way."""
    modules = _modules()
    graph = {name: _imports(name, *modules[name], modules, False) for name in modules}

    def reached(stage, forbidden):
        return {
            (name, target)
            for name, targets in graph.items()
            if name.startswith(f"aha.{stage}.")
            for target in targets
            if target == f"aha.{forbidden}" or target.startswith(f"aha.{forbidden}.")
        }

    assert graph["aha.metrics.protocol"] >= {"aha.ranking.sorting"}  # the walk sees the imports between stages
    assert not reached("ranking", "modeling") | reached("metrics", "modeling") | reached("ranking", "metrics")
