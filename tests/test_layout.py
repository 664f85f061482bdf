"""The package's layout: dependencies point one way (nn <- integration <- data, tools), with no import circle, and
every benchmark lives in the package (runs_scripts/ holds thin wrappers)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "yolo_revcol"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module of the package that ``path`` imports, at module level or inside functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}  # "from . import resolve" names a module
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name and not name.startswith(m + ".") and m != "yolo_revcol"}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_no_import_circle():
    graph, state, path = _graph(), {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for dep in sorted(graph.get(module, ())):
            assert state.get(dep) != "open", "import circle: " + " -> ".join(path[path.index(dep) :] + [dep])
            if dep not in state:
                visit(dep)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_nn_is_pure_pytorch_and_integration_does_not_reach_up():
    for path in (PACKAGE / "nn").rglob("*.py"):
        text = path.read_text()
        assert "ultralytics" not in {a.split(".")[0] for a in _all_imports(text)}, path
        assert not {m for m in _imports(path) if not m.startswith("yolo_revcol.nn")}, path
    for path in (PACKAGE / "integration").rglob("*.py"):
        assert not {m for m in _imports(path) if m.startswith(("yolo_revcol.tools", "yolo_revcol.data"))}, path


def _all_imports(text: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_runs_scripts_are_thin_wrappers_of_package_commands():
    for path in sorted((ROOT / "runs_scripts").glob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) <= 20, f"{path.name}: a benchmark belongs in yolo_revcol/tools"
        assert "from yolo_revcol.tools." in text and "import main" in text, path.name


def test_readme_lists_exactly_the_cli_commands():
    from yolo_revcol.cli import COMMANDS

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("The `yolo-revcol` commands") :].split("\n## ", 1)[0]
    listed = [line.split("`")[1].split()[1] for line in table.splitlines() if line.startswith("| `yolo-revcol ")]
    assert sorted(listed) == sorted(COMMANDS)


@pytest.mark.parametrize(
    "argv0, expected",
    [
        ("/venv/bin/yolo-revcol", "yolo-revcol memory --quick"),
        ("{package}/tools/bench_memory.py", "python -m yolo_revcol.tools.bench_memory memory --quick"),
        ("{package}/tools/bench_speed.py", "python -m yolo_revcol.tools.bench_speed memory --quick"),
    ],
)
def test_reports_name_the_command_as_it_was_typed(argv0, expected, monkeypatch):
    """Result headers say `Measured by <command>`: a console script by its name, `python -m` by its module."""
    import yolo_revcol
    from yolo_revcol.tools.toolbox import command_line

    package = Path(yolo_revcol.__file__).resolve().parent
    monkeypatch.setattr("sys.argv", [argv0.format(package=package), "memory", "--quick"])
    assert command_line() == expected


def test_tools_share_the_toolbox_and_never_import_each_other():
    """A tool (a module of yolo_revcol/tools with a ``main``) reaches other tools' code only through the toolbox."""
    tools_dir = PACKAGE / "tools"
    allowed = {"yolo_revcol.tools.toolbox"}
    tools = [p for p in sorted(tools_dir.glob("*.py")) if "\ndef main(" in p.read_text()]
    assert {p.stem for p in tools} >= {"bench_accuracy", "bench_memory", "bench_speed", "compare", "recipe"}
    for path in tools:
        reached = {m for m in _imports(path) if m.startswith("yolo_revcol.tools.")}
        assert reached <= allowed, (path.name, reached - allowed)
    for shared in allowed:
        path = tools_dir / (shared.rsplit(".", 1)[1] + ".py")
        assert not {m for m in _imports(path) if m.startswith("yolo_revcol.tools.") and m not in allowed}, path.name
        assert "\ndef main(" not in path.read_text(), path.name


def docstring_lines(path: Path) -> tuple[int, int]:
    """Lines inside docstrings (module, class, function) and code lines (non-blank, not comments, not docstrings)."""
    text = path.read_text()
    docs = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                docs |= set(range(first.lineno, first.end_lineno + 1))
    lines = enumerate(text.splitlines(), 1)
    code = [line for n, line in lines if n not in docs and line.strip() and not line.lstrip().startswith("#")]
    return len(docs), len(code)


@pytest.mark.parametrize("path", sorted((PACKAGE / "nn").glob("*.py")), ids=lambda p: p.name)
def test_model_docstrings_state_contracts_and_leave_narratives_to_the_docs(path):
    """nn/ docstrings say what, arguments, returns and invariants; measurements and history go to docs/design.md."""
    docs, code = docstring_lines(path)
    assert docs <= 0.6 * code, f"{path.name}: {docs} docstring lines for {code} code lines ({docs / code:.2f} > 0.6)"
