"""The source tree's shape, checked statically with `ast` (nothing is imported):

(a) no import cycle between vaekit's first-level units (a module such as `vaekit.api`,
    or a sub-package such as `vaekit.training` with everything below it), imports
    inside functions included, `if TYPE_CHECKING:` blocks excluded (never executed);
(b) no source file over 400 lines (.js over 500);
(c) no function over 60 lines;
(d) no package attribute that shadows a submodule: no name bound in a package's
    `__init__.py` to anything but the submodule of the same name.

KNOWN_OFFENDERS lists what breaks them today, in files being rewritten. The list
may only shrink: a new offender fails its check, and so does a listed one that
is fixed (then delete its entry).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

# Entries: a file's path from the repository root (b); a function's qualified name,
# module.Class.function, nested functions under their parent's name (c); or "cycle: "
# and the units of one import cycle, sorted, joined by " <-> " (a).
KNOWN_OFFENDERS: frozenset[str] = frozenset(
    {
        # (c)
    }
)
CYCLE = "cycle: "

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "vaekit"
MAX_LINES = {".py": 400, ".js": 500}
MAX_FUNCTION_LINES = 60


def _python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _check_allow_list(kind: str, found: dict[str, str], listed: set[str]) -> None:
    """Fail on offenders not in KNOWN_OFFENDERS and on listed ones that no longer offend."""
    report = "\n".join(f"  {name}: {why}" for name, why in sorted(found.items()))
    print(f"{kind}: {len(found)} offender(s)\n{report}")
    new = sorted(set(found) - listed)
    fixed = sorted(listed - set(found))
    problems = []
    if new:
        problems.append("new offenders: " + ", ".join(f"{n} ({found[n]})" for n in new))
    if fixed:
        problems.append("fixed, so delete from KNOWN_OFFENDERS: " + ", ".join(fixed))
    assert not problems, f"{kind}:\n" + "\n".join(problems)


def test_the_allow_list_fails_on_a_new_offender_and_on_a_fixed_one():
    _check_allow_list("demo", {"a.py": "401 lines"}, {"a.py"})
    with pytest.raises(AssertionError, match=r"new offenders: b\.py \(450 lines\)"):
        _check_allow_list("demo", {"a.py": "401 lines", "b.py": "450 lines"}, {"a.py"})
    with pytest.raises(AssertionError, match=r"fixed, so delete from KNOWN_OFFENDERS: a\.py"):
        _check_allow_list("demo", {}, {"a.py"})


# ---------------------------------------------------------------- (a) import cycles


def _unit(module: str) -> str | None:
    """vaekit.training.loop -> training, vaekit.api -> api; None outside vaekit or for
    the package root itself."""
    parts = module.split(".")
    if parts[0] != "vaekit" or len(parts) < 2:
        return None
    return parts[1]


def _first_level_names() -> set[str]:
    return {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()
    }


def _root_exports() -> dict[str, str]:
    """Names that vaekit/__init__.py re-exports -> the module each comes from."""
    exports = {}
    for node in ast.walk(_parse(PACKAGE / "__init__.py")):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                exports[alias.asname or alias.name] = node.module
    return exports


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (functions too), but not under TYPE_CHECKING."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from _runtime_imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _runtime_imports(node)


def _imported_modules(node: ast.Import | ast.ImportFrom, module: str, is_package: bool):
    """The vaekit modules an import statement loads, as dotted names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: resolve against the importing module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1])
        target = f"{base}.{node.module}" if node.module else base
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def unit_graph() -> dict[str, dict[str, list[str]]]:
    """unit -> {imported unit: ["file:line", ...]} over every vaekit source file."""
    first_level, exports = _first_level_names(), _root_exports()
    graph: dict[str, dict[str, list[str]]] = {}
    for path in _python_files():
        module = _module_name(path)
        source = _unit(module)
        if source is None:  # the root __init__: the facade over everything, no unit
            continue
        graph.setdefault(source, {})
        for node in _runtime_imports(_parse(path)):
            for name in _imported_modules(node, module, path.name == "__init__.py"):
                parts = name.split(".")
                if parts[0] != "vaekit" or len(parts) < 2:
                    continue
                if parts[1] not in first_level:  # `from vaekit import train`: the facade
                    if len(parts) != 2 or parts[1] not in exports:
                        continue
                    parts = exports[parts[1]].split(".")
                target = parts[1]
                if target == source:  # imports within a unit are its own business
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                seen = graph[source].setdefault(target, [])
                if where not in seen:
                    seen.append(where)
    return graph


def strongly_connected(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components of more than one unit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles_and_only_cycles():
    graph = {"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}, "e": {}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b": []}, "b": {}}) == []


def test_the_unit_graph_sees_function_level_imports_and_skips_type_checking():
    graph = unit_graph()
    assert "training" in graph["api"] and "runfolder" in graph["training"]
    # api imports plots and report inside functions only
    assert "plots" in graph["api"] and "report" in graph["api"]
    # objectives imports models under TYPE_CHECKING alone: not a runtime edge
    assert "models" not in graph.get("objectives", {})
    assert all(source not in targets for source, targets in graph.items())


def test_no_import_cycle_between_first_level_units():
    graph = unit_graph()
    found = {}
    for component in strongly_connected(graph):
        edges = [
            f"{source} -> {target} at {where}"
            for source in component
            for target in component
            for where in graph[source].get(target, [])
        ]
        found[CYCLE + " <-> ".join(component)] = "\n    " + "\n    ".join(edges)
    listed = {entry for entry in KNOWN_OFFENDERS if entry.startswith(CYCLE)}
    _check_allow_list("import cycles", found, listed)


# ---------------------------------------------------------------- (b) file length


def test_no_source_file_is_too_long():
    found = {}
    for path in sorted(PACKAGE.rglob("*")):
        limit = MAX_LINES.get(path.suffix)
        if limit is None or not path.is_file():
            continue
        lines = len(path.read_text().splitlines())
        if lines > limit:
            found[str(path.relative_to(ROOT))] = f"{lines} lines > {limit}"
    listed = {e for e in KNOWN_OFFENDERS if not e.startswith(CYCLE) and Path(e).suffix in MAX_LINES}
    _check_allow_list("files too long", found, listed)


# ---------------------------------------------------------------- (c) function length


def _functions(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.AST]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}.{child.name}"
            if not isinstance(child, ast.ClassDef):
                yield name, child
            yield from _functions(child, name)
        else:
            yield from _functions(child, prefix)


def test_no_function_is_too_long():
    found = {}
    for path in _python_files():
        for name, node in _functions(_parse(path), _module_name(path)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found[name] = f"{lines} lines > {MAX_FUNCTION_LINES}"
    listed = {e for e in KNOWN_OFFENDERS if not e.startswith(CYCLE) and "/" not in e}
    _check_allow_list("functions too long", found, listed)


# ---------------------------------------------------------------- (d) shadowed submodules


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run at import: the body, with if/try/with blocks opened."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try | ast.With):
            for block in ("body", "orelse", "finalbody"):
                yield from _module_level(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                yield from _module_level(handler.body)


def _bindings(tree: ast.Module, package: str) -> Iterator[tuple[str, bool, int]]:
    """(name, binds the submodule of that name itself, line) for the module-level names an
    __init__.py binds; `from <package> import x` and `from . import x` bind submodule x."""
    for node in _module_level(tree.body):
        if isinstance(node, ast.ImportFrom):
            own = (node.level == 1 and not node.module) or node.module == package
            for alias in node.names:
                name = alias.asname or alias.name
                yield name, own and name == alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                yield name, alias.name == f"{package}.{name}", node.lineno
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name, False, node.lineno
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        yield name.id, False, node.lineno


def shadowed_submodules(package_dir: Path = PACKAGE) -> dict[str, str]:
    """package.name -> where __init__.py binds it, for each name that is also a submodule's."""
    found = {}
    src = package_dir.parent
    for init in sorted(package_dir.rglob("__init__.py")):
        folder = init.parent
        package = ".".join(folder.relative_to(src).parts)
        submodules = {p.stem for p in folder.glob("*.py") if p.name != "__init__.py"}
        submodules |= {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
        for name, is_submodule, line in _bindings(_parse(init), package):
            if name in submodules and not is_submodule:
                found[f"{package}.{name}"] = f"bound at {init.relative_to(src)}:{line}"
    return found


def test_the_shadow_finder_tells_a_submodule_from_another_object():
    tree = ast.parse(
        "from pkg import loop\nfrom . import state\nfrom pkg.api import train\n"
        "import pkg.step as step\ndef resume():\n    inner = 1\nif True:\n    count = 1\n"
    )
    bound = {name: own for name, own, _ in _bindings(tree, "pkg")}
    assert bound == {
        "loop": True,
        "state": True,
        "train": False,
        "step": True,
        "resume": False,
        "count": False,
    }


def test_the_shadow_finder_finds_a_function_named_like_its_module(tmp_path):
    """The shape the training/ and evaluation/ packages replaced: `pkg.train` the API
    function hiding `pkg/train.py`; `pkg.models` importing its own submodule is fine."""
    package = tmp_path / "pkg"
    (package / "models").mkdir(parents=True)
    (package / "models" / "__init__.py").write_text("from pkg.models import conv\n")
    (package / "models" / "conv.py").write_text("")
    (package / "train.py").write_text("")
    (package / "api.py").write_text("def train(): pass\n")
    (package / "__init__.py").write_text("from pkg.api import train\nfrom pkg import api\n")
    assert shadowed_submodules(package) == {"pkg.train": "bound at pkg/__init__.py:1"}


def test_no_package_attribute_shadows_a_submodule():
    found = shadowed_submodules()
    print("\n".join(f"{name}: {why}" for name, why in sorted(found.items())) or "none")
    assert not found, f"package attributes that shadow a submodule: {found}"
