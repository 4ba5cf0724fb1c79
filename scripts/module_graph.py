"""Print calmail's module graph in numbers: which app imports which, loops between
modules, imports against the layering of docs/architecture.md, and imports inside
functions. `make graph` runs it; `--edges` also lists every app-to-app edge.

The layers, bottom first: an app may import from its own layer's shared base and from
the layers below it, never from a layer above (LAYERS below mirrors the import-linter
contract in pyproject.toml).
"""

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "accounts",
    "actions",
    "calmail",
    "calserver",
    "compose",
    "inventory",
    "mailbox",
    "maillog",
    "smtpconfig",
    "templates_app",
)
# Bottom first; apps on one line share a level.
LAYERS = (
    ("calmail.common",),
    ("maillog",),
    ("smtpconfig",),
    ("inventory",),
    ("calserver",),
    ("mailbox", "templates_app"),
    ("actions", "compose"),
    ("accounts",),
    ("calmail",),
)
LEVEL = {app: number for number, apps in enumerate(LAYERS) for app in apps}


def app_of(module: str) -> str:
    if module == "calmail.common" or module.startswith("calmail.common."):
        return "calmail.common"
    return module.split(".", 1)[0]


def is_code(module: str) -> bool:
    # Migrations are generated and tests are not the application.
    return ".migrations" not in module


def strongly_connected(nodes, edges) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that import each other."""
    index, low, on_stack, stack, result, counter = {}, {}, set(), [], [], [0]
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    result.append(sorted(group))
    return result


def _first_party(node) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] in PACKAGES
    return any(alias.name.split(".")[0] in PACKAGES for alias in node.names)


def inline_imports() -> list[tuple[str, int]]:
    """Imports of our own modules inside functions of application code: (file, line)."""
    found = set()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            for function in ast.walk(tree):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.Import | ast.ImportFrom) and _first_party(node):
                        found.add((str(path.relative_to(ROOT)), node.lineno))
    return sorted(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", action="store_true", help="list every app-to-app edge")
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    # As import-linter: an import only for type annotations is no dependency at run time.
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    modules = sorted(m for m in graph.modules if is_code(m))
    edges: dict[str, set[str]] = defaultdict(set)
    app_edges: dict[tuple[str, str], int] = defaultdict(int)
    upward = []
    for importer in modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if not is_code(imported):
                continue
            edges[importer].add(imported)
            source, target = app_of(importer), app_of(imported)
            if source != target:
                app_edges[(source, target)] += 1
                if LEVEL.get(target, -1) > LEVEL.get(source, -1) or (
                    LEVEL.get(target) == LEVEL.get(source)
                ):
                    upward.append((importer, imported))
    loops = strongly_connected(modules, edges)
    app_graph: dict[str, set[str]] = defaultdict(set)
    for source, target in app_edges:
        app_graph[source].add(target)
    app_loops = strongly_connected(sorted({app for pair in app_edges for app in pair}), app_graph)
    inline = inline_imports()

    print(
        f"modules: {len(modules)} in {len(PACKAGES)} packages; app-to-app edges: {len(app_edges)}"
    )
    print("levels (bottom first):")
    for number, apps in enumerate(LAYERS):
        print(f"  {number}: {', '.join(apps)}")
    print(f"loops between modules: {len(loops)}")
    for group in loops:
        print("  " + " <-> ".join(group))
    print(f"loops between apps: {len(app_loops)}")
    for group in app_loops:
        print("  " + " <-> ".join(group))
    print(f"imports against the layers (upward or sideways): {len(upward)}")
    for importer, imported in sorted(upward):
        print(f"  {importer} -> {imported}")
    print(f"imports of our own modules inside functions: {len(inline)}")
    for path, line in inline:
        print(f"  {path}:{line}")
    if options.edges:
        print("app edges (imports):")
        for (source, target), count in sorted(app_edges.items()):
            print(f"  {source} -> {target}: {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
