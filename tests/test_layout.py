"""The package's shape stays as DESIGN.md draws it: no import cycles, no imports hidden inside functions, and the
shared basics imported from their own modules, never from one feature's services."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "uscmail"
BASICS = {"InvalidInput", "normalise_email", "clean_name", "address_hmac", "suppress", "is_suppressed"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """The uscmail modules an ImportFrom names (a submodule when `from package import submodule`)."""
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    found = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        found.append(candidate if candidate in MODULES else base)
    return [name for name in found if name in MODULES and name != module]


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """Top-level imports between uscmail modules, and every import of a uscmail module made inside a function."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    hidden = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                targets = imported(module, path, node)
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names if alias.name in MODULES]
            else:
                continue
            if id(node) in top:
                graph[module].update(targets)
            elif targets:
                hidden.append(f"{module}:{node.lineno}")
    return graph, hidden


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_no_module_imports_itself_round_a_cycle():
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_no_uscmail_module_is_imported_inside_a_function():
    _, hidden = import_graph()
    assert hidden == []


def test_the_shared_basics_come_from_their_own_modules():
    offenders = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("services"):
                names = {alias.name for alias in node.names} & BASICS
                if names:
                    offenders.append(f"{module}: {sorted(names)} from {node.module}")
    assert offenders == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
