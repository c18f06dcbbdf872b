"""The apps stack in one direction (docs/architecture.md, "The stack"): an app imports only the apps on
the floors below it, never one beside or above. Read from the source (every import, function-local ones
included), so a new import against the stack fails here before review."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Floor by floor, ground first. Apps on one floor do not import each other.
FLOORS = [
    ("config_base", "accounts"),  # config's shared pieces (filters, fields, schema, embedded services...)
    ("jobs",),
    ("catalog",),
    ("quantizer",),
    ("audit", "baskets"),
    ("pipeline",),  # flows and pages that cross apps
]
# config's project-level modules sit on top of everything: they name every app's views and settings.
CONFIG_TOP = {"config.urls", "config.api_urls", "config.settings", "config.wsgi", "config.celery"}
PURE_CORES = ["quantizer/core", "audit/core", "baskets/core"]
PURE_FILES = ["catalog/rows.py", "catalog/encoder.py", "catalog/demo.py"]


def _layer_of(module: str) -> str | None:
    top = module.split(".")[0]
    if top == "config":
        return None if any(module == m or module.startswith(m + ".") for m in CONFIG_TOP) else "config_base"
    return top if any(top in floor for floor in FLOORS) else None


def _floor(layer: str) -> int:
    return next(i for i, floor in enumerate(FLOORS) if layer in floor)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _app_files():
    for layer in (name for floor in FLOORS for name in floor):
        folder = ROOT / ("config" if layer == "config_base" else layer)
        for path in sorted(folder.rglob("*.py")):
            if _layer_of(_module_name(path)) == layer:
                yield layer, path


def violations() -> list[str]:
    found = []
    for layer, path in _app_files():
        for line, module in _imports(path):
            target = _layer_of(module)
            if target is None or target == layer:
                continue
            if _floor(target) >= _floor(layer):
                found.append(f"{path.relative_to(ROOT)}:{line} ({layer}) imports {module} ({target})")
    return found


def test_every_import_runs_down_the_stack():
    assert violations() == []


def test_the_check_sees_an_import_against_the_stack(tmp_path):
    """The check is not vacuous: catalog importing audit, or config's filters importing an app, is caught."""
    assert _floor(_layer_of("audit.models")) > _floor(_layer_of("catalog.views"))
    assert _layer_of("config.filters") == "config_base" and _layer_of("config.urls") is None
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from audit.models import Flag\n")
    assert _imports(sample) == [(2, "audit.models.Flag")]


def test_the_pure_cores_import_neither_django_nor_an_app():
    """quantizer/core, audit/core, baskets/core and the catalog's file readers run without Django (on the
    GPU machine, in benchmarks)."""
    paths = [p for core in PURE_CORES if (ROOT / core).exists() for p in (ROOT / core).rglob("*.py")]
    paths += [ROOT / f for f in PURE_FILES] + sorted((ROOT / "catalog" / "text").rglob("*.py"))
    found = []
    for path in paths:
        for line, module in _imports(path):
            top = module.split(".")[0]
            own = _module_name(path).split(".")[0]
            allowed_app_modules = ("catalog.rows", "catalog.text", "catalog.vocab", "quantizer.core", "audit.core")
            if top == "django" or (_layer_of(module) and not module.startswith(allowed_app_modules)
                                    and not module.startswith(f"{own}.core")):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert found == []
