"""The package's shape: which module may import which (read from the source, every import
counted, also those inside functions and under TYPE_CHECKING)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "memocli"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The memocli modules that module ``name`` imports anywhere in its source."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            submodules = {f"{source}.{alias.name}" for alias in node.names} & MODULES.keys()
            found |= submodules or {source}
    return (found & MODULES.keys()) - {name}


def test_imports_are_read_from_the_source():
    assert "memocli.cache" in imports_of("memocli.score")
    assert "memocli.ensemble" in imports_of("memocli.score")  # imported inside a function
    assert "memocli.cli.score_cmds" in imports_of("memocli.cli.main")  # from . import x


def test_ranking_and_score_do_not_import_each_other():
    assert not ({"memocli.score"} <= imports_of("memocli.ranking")
                and {"memocli.ranking"} <= imports_of("memocli.score"))


def test_cli_options_and_progress_do_not_import_each_other():
    assert not ({"memocli.cli.progress"} <= imports_of("memocli.cli.options")
                and {"memocli.cli.options"} <= imports_of("memocli.cli.progress"))


def test_data_and_formats_do_not_import_each_other():
    """formats (which files are photos, how each opens) is below decode and data."""
    assert not {"memocli.data", "memocli.decode"} & imports_of("memocli.formats")
    assert "memocli.data" not in imports_of("memocli.decode")


def test_no_two_modules_import_each_other():
    circles = sorted((a, b) for a in MODULES for b in imports_of(a)
                     if a < b and a in imports_of(b))
    assert circles == []
