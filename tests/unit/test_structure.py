"""The code's shape, as a reviewer checks it (issue 13): in pipeline/ and flows/ no function over 60 lines or
over 7 parameters, no module importing another module's private names, no import cycle between modules, and
pipeline/ free of Prefect. Run as a script to list what is left: `python tests/unit/test_structure.py [PATH ...]`.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "flows")
MAX_LINES = 60
MAX_PARAMS = 7


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The dotted name an ImportFrom refers to, relative imports resolved against `module`."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path, known: dict[str, Path]) -> tuple[set[str], list[str]]:
    """(project modules `module` imports anywhere in its file, private names it imports from them)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    targets, private = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node, path.name == "__init__.py")
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in known:                 # `from . import loudness`
                    targets.add(sub)
                elif source in known:
                    targets.add(source)
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append(f"{module} imports {source}.{alias.name}")
    return targets - {module}, private


def _functions(module: str, path: Path) -> list[str]:
    """Functions (and methods) over MAX_LINES lines or over MAX_PARAMS parameters (self/cls not counted)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        a = node.args
        params = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs] + [p.arg for p in (a.vararg, a.kwarg) if p]
        params = [p for p in params if p not in ("self", "cls")]
        lines = node.end_lineno - node.lineno + 1
        where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
        if lines > MAX_LINES:
            found.append(f"{where}: {lines} lines")
        if len(params) > MAX_PARAMS:
            found.append(f"{where}: {len(params)} parameters")
    return found


def _imports_prefect(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        if any(n.split(".")[0] == "prefect" for n in names):
            return True
    return False


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    """Each import cycle once, as 'a -> b -> a' (Tarjan's strongly connected components)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(" <-> ".join(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without edges from a package's __init__ to its own submodules (re-exports are not cycles)."""
    return {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}


def violations(paths: list[str] | None = None) -> list[str]:
    known = _modules()
    graph, found = {}, []
    for module, path in known.items():
        graph[module], private = _imports(module, path, known)
        found += private + _functions(module, path)
        if module.startswith("pipeline") and _imports_prefect(path):
            found.append(f"{module} imports prefect")
    found += [f"import cycle: {c}" for c in _cycles(_package_edges(graph))]
    if paths:
        found = [f for f in found if any(p in f or p.replace("/", ".").removesuffix(".py") in f for p in paths)]
    return found


def test_functions_imports_and_cycles():
    found = violations()
    assert not found, f"{len(found)} structure violations:\n" + "\n".join(found)


if __name__ == "__main__":
    result = violations(sys.argv[1:])
    print("\n".join(result) or "no violations")
    print(f"{len(result)} violations")
