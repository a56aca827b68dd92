"""The parts without Blender never import bpy: checked statically (ast) and at run time."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_PACKAGES = ["slack_ai_addon/core", "slack_ai_addon/agent", "slack_ai_addon/providers",
                 "slack_ai_addon/storage", "headless_runner"]
BLENDER_MODULES = ("bpy", "bmesh", "mathutils", "gpu", "bgl", "blf", "aud", "bl_math", "idprop", "addon_utils")
# Pure packages may reach Blender code only lazily, inside a function (the CLI starting a render).
BLENDER_PACKAGES = ("slack_ai_addon.blender", "slack_ai_addon.ui")


def pure_files() -> list[Path]:
    files: list[Path] = []
    for package in PURE_PACKAGES:
        files.extend(sorted((ROOT / package).rglob("*.py")))
    return files


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _resolve(node: ast.ImportFrom, path: Path) -> str:
    if node.level == 0:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def blender_imports(path: Path, source: str | None = None) -> list[str]:
    """Imports of Blender modules at any level, and of Blender packages at module level."""
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, filename=str(path))
    found: list[str] = []
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function.update(id(child) for child in ast.walk(node) if child is not node)
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node, path)
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names = [str(node.args[0].value)]
        for name in names:
            top = name.split(".")[0]
            if top in BLENDER_MODULES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")  # type: ignore[attr-defined]
            elif name.startswith(BLENDER_PACKAGES) and id(node) not in in_function:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name} at module level")  # type: ignore[attr-defined]
    return found


def test_there_are_files_to_check() -> None:
    assert len(pure_files()) >= 10


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_blender_imports(path: Path) -> None:
    assert blender_imports(path) == []


def test_the_checker_finds_them() -> None:
    sample = ("import os\nfrom ..blender import builder\n\ndef later():\n    import bpy\n"
              "    from ..blender import renderer\n")
    # Relative imports resolve as if the sample lived in core/.
    found = blender_imports(ROOT / "slack_ai_addon" / "core" / "probe.py", sample)
    assert any("imports bpy" in f for f in found)
    assert any("slack_ai_addon.blender.builder at module level" in f for f in found)
    assert not any("renderer" in f for f in found)  # lazy, inside a function: allowed


def pure_modules() -> list[str]:
    # `__main__` modules run the CLI when imported; everything else must import quietly.
    return [_module_name(p) for p in pure_files() if p.name != "__main__.py"]


@pytest.fixture(scope="module")
def fresh_import() -> dict[str, Any]:
    """Import every pure module in a fresh interpreter in which importing a Blender module
    fails loudly, and note each attempt: proves nothing even tries."""
    script = (
        "import importlib, json, sys, traceback\n"
        "tried = []\n"
        "class Guard:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {BLENDER_MODULES!r}:\n"
        "            tried.append(name)\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Guard())\n"
        "failed = {}\n"
        f"for name in {pure_modules()!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except BaseException:\n"
        "        failed[name] = traceback.format_exc(limit=-3)\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {BLENDER_MODULES!r})\n"
        "print(json.dumps({'failed': failed, 'loaded': loaded, 'tried': tried}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_import_list_covers_subpackages() -> None:
    names = pure_modules()
    assert "slack_ai_addon.storage.db.store" in names and "headless_runner.sandbox.slack_server" in names
    assert "headless_runner.__main__" not in names


def test_every_pure_module_imports(fresh_import: dict[str, Any]) -> None:
    # Any error (a missing dependency, a syntax error, an import cycle) is a failure, not a pass.
    failures = {name: tb for name, tb in fresh_import["failed"].items() if "blocked: " not in tb}
    assert failures == {}, "\n\n".join(f"{name}:\n{tb}" for name, tb in failures.items())


def test_importing_the_pure_packages_loads_no_bpy(fresh_import: dict[str, Any]) -> None:
    assert fresh_import["tried"] == []
    assert fresh_import["loaded"] == []
