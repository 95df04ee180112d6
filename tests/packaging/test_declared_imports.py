"""Every third-party import is a declared dependency, of the part of the package that imports it.

Walks the syntax tree of every module (imports anywhere in a module count,
lazy ones included), maps each top-level import to the distribution that
provides it in this environment (``importlib.metadata.packages_distributions``)
and checks that distribution is declared in pyproject.toml where that code
ships: the product's core (``dependencies``) for ``signal_export`` and the
strategy, core + ``ingest`` for the ingest API, core + ``research`` for
``research``, anything (core + every extra) for the dev servers, scripts and
tests. An undeclared import, or one declared only in an extra the code's
users do not install, fails here instead of on a trader's machine.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"signal_export", "research", "devservers", "scripts", "tests", "bench"}
#: (files, extras they may use besides the core); first match wins.
AREAS: list[tuple[str, tuple[str, ...]]] = [
    ("signal_export/ingest/**/*.py", ("ingest",)),
    ("signal_export/reconcile/**/*.py", ("reconcile",)),
    ("signal_export/**/*.py", ()),
    ("user_data/strategies/*.py", ()),
    ("docker/*.py", ()),
    ("research/**/*.py", ("research", "cluster")),
    ("devservers/**/*.py", ("research", "ingest", "dev")),
    ("scripts/*.py", ("research", "ingest", "dev")),
    ("tests/**/*.py", ("research", "ingest", "cluster", "dev")),
]


@cache
def declared() -> dict[str, set[str]]:
    """``{"core" | extra: canonical distribution names}`` from pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    return {group: {canonicalize_name(Requirement(r).name) for r in reqs}
            for group, reqs in groups.items()}


@cache
def providers() -> dict[str, set[str]]:
    """``{top-level module: canonical names of the installed distributions providing it}``."""
    return {top: {canonicalize_name(d) for d in dists}
            for top, dists in metadata.packages_distributions().items()}


@cache
def local_test_modules() -> frozenset[str]:
    """Helper modules the tests import by bare name (their folders are on sys.path)."""
    tests = REPO / "tests"
    return frozenset({p.stem for p in tests.rglob("*.py")} | {p.name for p in tests.rglob("*")
                                                              if p.is_dir()})


def top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def third_party(path: Path) -> set[str]:
    names = top_level_imports(path) - set(sys.stdlib_module_names) - FIRST_PARTY
    if path.is_relative_to(REPO / "tests"):
        names -= local_test_modules()
    return names


def area_files() -> list[tuple[Path, tuple[str, ...]]]:
    seen: set[Path] = set()
    out = []
    for pattern, extras in AREAS:
        for path in sorted(REPO.glob(pattern)):
            if path not in seen and ".venv" not in path.parts:
                seen.add(path)
                out.append((path, extras))
    return out


def undeclared(path: Path, extras: tuple[str, ...]) -> list[str]:
    allowed = declared()["core"].union(*(declared()[e] for e in extras))
    problems = []
    for name in sorted(third_party(path)):
        dists = providers().get(name)
        if not dists:
            problems.append(f"{name} (no installed distribution provides it)")
        elif not dists & allowed:
            where = sorted(g for g, names in declared().items() if dists & names)
            problems.append(f"{name} ({'/'.join(sorted(dists))}: "
                            + (f"declared only in {where}" if where else "not declared") + ")")
    return problems


def test_every_import_of_every_module_is_declared_where_the_module_ships():
    files = area_files()
    assert len(files) > 100, "the walk found too few modules"
    problems = {str(path.relative_to(REPO)): bad for path, extras in files
                if (bad := undeclared(path, extras))}
    assert not problems, f"undeclared imports (add them to pyproject.toml): {problems}"


def test_the_check_fails_for_an_undeclared_or_misplaced_import(tmp_path):
    core_module = tmp_path / "core_module.py"
    core_module.write_text("import torch\nimport pymongo\nfrom yaml import safe_load\n")
    assert undeclared(core_module, ()) == ["torch (torch: declared only in ['research'])"]
    assert undeclared(core_module, ("research",)) == []
    dev_tool = tmp_path / "tool.py"
    dev_tool.write_text("def f():\n    import pytest\n    import no_such_module_xyz\n")
    assert undeclared(dev_tool, ("dev",)) == ["no_such_module_xyz (no installed distribution "
                                              "provides it)"]
    assert undeclared(dev_tool, ())[1].startswith("pytest (pytest: declared only in ['dev']")


@pytest.mark.parametrize("group", ["core", "research", "ingest", "dev"])
def test_every_declared_distribution_is_installed_by_make_setup(group):
    lock = {canonicalize_name(Requirement(line).name)
            for line in (REPO / "requirements.lock").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    assert declared()[group] <= lock, sorted(declared()[group] - lock)
