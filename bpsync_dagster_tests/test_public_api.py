"""The package uses Dagster's public API, and its domain packages use no Dagster at all.

What Dagster does not export is reached through `bpsync_dagster.dagster_internals` only, so that an
upgrade that moves it breaks in one place; the domain packages (configuration, keys, storage, the
SDA database, the broker, the remote API) stay plain Python that Dagster glue calls.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bpsync_dagster

PACKAGE = Path(bpsync_dagster.__file__).parent
INTERNALS = PACKAGE / "dagster_internals.py"
DOMAIN_PACKAGES = ["configuration", "c4gh", "storage", "sda_database", "broker", "remote_api"]


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_only_the_internals_module_imports_private_dagster_modules() -> None:
    private = {
        str(path.relative_to(PACKAGE)): sorted(module for module in _imported_modules(path) if "._" in module)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != INTERNALS
    }
    assert {path: modules for path, modules in private.items() if modules} == {}
    assert any(module.startswith("dagster._") for module in _imported_modules(INTERNALS))


@pytest.mark.parametrize("package", DOMAIN_PACKAGES)
def test_a_domain_package_loads_no_dagster(package: str) -> None:
    """Imported on its own in a fresh interpreter, the package brings in no Dagster module."""
    probe = (
        f"import sys, bpsync_dagster.{package}; "
        "print(sorted(name for name in sys.modules if name.split('.')[0].startswith('dagster')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


# The Dagster layer from the bottom up; a module imports from its own layer or the ones below it.
LAYERS = [
    ["configuration", "c4gh", "storage", "sda_database", "broker", "remote_api", "errors", "dataset_ids", "trust"],
    ["dagster_internals", "resources", "inventory", "jobs"],
    ["runs"],
    ["sensors"],
    ["metrics"],
    ["definitions", "cli", "daemon"],
]


def _layer_of(module: str) -> int:
    top = module.removeprefix("bpsync_dagster.").split(".")[0]
    return next(index for index, names in enumerate(LAYERS) if top in names)


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = {
        f"{path.relative_to(PACKAGE)} → {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.parent != PACKAGE or path.stem not in ("__init__", "__main__")
        for module in _imported_modules(path)
        if module.startswith("bpsync_dagster.")
        and _layer_of(module) > _layer_of(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    }
    assert upward == set()
