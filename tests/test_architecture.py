"""The import contract: layers, no private imports across modules, no pymc where fits are read.

The layers, lowest first, are ``data -> model -> inference -> analysis -> report -> cli``
(ARCHITECTURE.md). A module may import its own layer and those below it; nothing imports
``cli``. The modules that only read saved fits never import pymc, not even transitively:
this is checked in a fresh interpreter, so an import chain that pulls pymc in through a
lower layer fails too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "models" / "safetywash"
LAYERS = ("data", "model", "inference", "analysis", "report", "cli")
#: Modules of the layers below ``report`` that read saved fits (or hold what those need)
#: and so must not import pymc. Every module of ``data`` and ``report`` is added below.
PYMC_FREE = (
    "safetywash",
    "safetywash.model.config",
    "safetywash.model.transform",
    "safetywash.model.likelihood",
    "safetywash.model.axes",
    "safetywash.model.marginal",
    "safetywash.inference.fitfile",
    "safetywash.inference.netcdf",
    "safetywash.inference.diagnostics",
    "safetywash.analysis.baseline",
    "safetywash.analysis.separability",
    "safetywash.analysis.troubles",
    "safetywash.analysis.designs",
    "safetywash.analysis.structures",
    "safetywash.analysis.structure_verdicts",
    "safetywash.analysis.ppc",
    "safetywash.analysis.loo",
    "safetywash.analysis.fits",
    "safetywash.analysis.latent",
    "safetywash.analysis.predictive",
    "safetywash.analysis.newscores",
    "safetywash.analysis.adjusted",
    "safetywash.analysis.newllm",
    "safetywash.analysis.intervals",
    "safetywash.analysis.cutposterior",
    "safetywash.analysis.newbenchmark",
    "safetywash.analysis.plan",
    "safetywash.analysis.dims_choice",
    "safetywash.analysis.design_text",
    "safetywash.analysis.cellsplit",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    """Index of a module's layer, or None for the package root (the public API)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def imports_of(path: Path) -> list[tuple[int, str, list[str]]]:
    """Every ``safetywash`` import in a file (also inside functions): line, module, names."""
    module = module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "safetywash":
                    found.append((node.lineno, alias.name, []))
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, target] if target else base)
            if target.split(".")[0] == "safetywash":
                found.append((node.lineno, target, [a.name for a in node.names]))
    return found


def test_every_module_sits_in_a_layer():
    root = ("safetywash", "safetywash.__main__")
    stray = [m for m in package_modules() if layer_of(m) is None and m not in root]
    assert stray == [], f"modules outside the layers {LAYERS}: {stray}"


def test_layers_import_only_downwards():
    problems = []
    for module, path in package_modules().items():
        own = layer_of(module)
        for line, target, _names in imports_of(path):
            other = layer_of(target)
            if other is None:
                continue
            if own is None:  # the package root may expose any layer but the commands
                if other == LAYERS.index("cli") and module != "safetywash.__main__":
                    problems.append(f"{path.name}:{line} imports {target}")
                continue
            if other > own or (other == LAYERS.index("cli") and own != other):
                problems.append(f"{module} (line {line}) imports {target}")
    assert problems == [], "imports against the layers:\n" + "\n".join(problems)


def test_no_private_names_across_modules():
    problems = []
    for module, path in package_modules().items():
        for line, target, names in imports_of(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            hidden = [p for p in target.split(".") if p.startswith("_") and p != "__init__"]
            if (private or hidden) and target != module:
                problems.append(f"{module} (line {line}): {target} {private}")
    assert problems == [], "private names imported across modules:\n" + "\n".join(problems)


def pymc_free_modules() -> list[str]:
    modules = package_modules()
    extra = [m for m in modules if layer_of(m) in (LAYERS.index("data"), LAYERS.index("report"))]
    missing = [m for m in PYMC_FREE if m not in modules]
    assert missing == [], f"PYMC_FREE names modules that do not exist: {missing}"
    return sorted(set(PYMC_FREE) | set(extra))


def first_import_of_pymc(modules: list[str]) -> str | None:
    """Import ``modules`` in order in a fresh interpreter; the first that loads pymc."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    if any(m in sys.modules for m in ('pymc', 'pytensor', 'nutpie')):\n"
        "        print(name)\n"
        "        break\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    return out or None


def test_fit_readers_do_not_import_pymc():
    modules = pymc_free_modules()
    assert len(modules) > 20
    assert first_import_of_pymc(modules) is None


def test_the_pymc_check_sees_pymc():
    assert first_import_of_pymc(["safetywash.data.study", "safetywash.model.build"]) == (
        "safetywash.model.build"
    )


@pytest.mark.parametrize("layer", ["data", "model"])
def test_lower_layers_do_not_import_pymc_outside_builders(layer):
    """``data`` never touches pymc; in ``model`` only the builder (with its pooled groups)
    and simulation may."""
    allowed = {"safetywash.model.build", "safetywash.model.hierarchy", "safetywash.model.simulate"}
    problems = []
    for module, path in package_modules().items():
        if layer_of(module) != LAYERS.index(layer) or module in allowed:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] in ("pymc", "pytensor", "nutpie") for n in names):
                problems.append(f"{module} (line {node.lineno})")
    assert problems == []


def test_top_level_api_resolves_to_the_owners():
    import importlib

    import safetywash as sw

    for name, owner in sw.API.items():
        assert getattr(sw, name) is getattr(importlib.import_module(owner), name), name
    assert set(sw.API) <= set(dir(sw))
    with pytest.raises(AttributeError):
        _ = sw.no_such_name


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def test_modules_and_functions_stay_small():
    """One job per module (under 400 lines), functions under 80 lines."""
    problems = []
    for module, path in package_modules().items():
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            problems.append(f"{module}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"{module}.{node.name}: {length} lines")
    assert problems == []
