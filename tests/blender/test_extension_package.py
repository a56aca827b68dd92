"""The built Linux extension zip: validates with Blender's own tool, installs with Blender's
own installer into a temporary extensions repository (the running bpy), enables as
`bl_ext.user_default.slack_ai_addon`, imports its dependencies from the bundled wheels,
renders a tiny job, and runs the `slack_ai` CLI command (the add-on's own `cli` package).
The zip carries neither the local Slack stand-in (headless_runner/sandbox) nor aiohttp.

Slow (about 30 s plus a one-time wheel download into build/wheel-cache); skipped, naming the
package indexes, only when the wheels are not cached and no index answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from tests.package_index import fail_unless_offline

pytest.importorskip("bpy", reason="bpy is not installed (pip install -e .[blender])")

pytestmark = [pytest.mark.blender, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "scripts" / "_build_extension.py"
WHEELS_TO_IMPORT = ["slack_sdk", "websocket", "openai", "pydantic", "pydantic_core", "requests", "boto3",
                    "botocore", "pymssql", "vaderSentiment", "PIL"]

CHILD = textwrap.dedent("""
    import importlib, json, sys, os
    from pathlib import Path
    import bpy, addon_utils
    zip_path, out_dir, wheels = sys.argv[1], Path(sys.argv[2]), sys.argv[3].split(",")
    res = {}
    # Modules Blender itself imported at startup (5.2's bpy imports its bundled requests):
    # those stay Blender's, whatever the extension bundles.
    res["preloaded"] = sorted(m for m in wheels if m in sys.modules)
    root = os.environ["BLENDER_USER_RESOURCES"]
    # The venv has the same packages as the wheels: put the extensions' site-packages (where
    # Blender 5.0 installs wheels) first, before the add-on imports anything, so the imports
    # below prove the bundled wheels work.
    ext_site = os.path.join(root, "extensions", ".local", "lib", "python%d.%d" % sys.version_info[:2],
                            "site-packages")
    os.makedirs(ext_site, exist_ok=True)  # a path entry that exists gets a real finder
    sys.path.insert(0, ext_site)
    ret = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                   enable_on_install=True)
    res["install"] = sorted(ret)
    name = "bl_ext.user_default.slack_ai_addon"
    res["enabled"] = name in bpy.context.preferences.addons
    importlib.invalidate_caches()
    res["from_wheels"] = {}
    for mod in wheels:
        m = importlib.import_module(mod)
        res["from_wheels"][mod] = str(Path(m.__file__).resolve()).startswith(str(Path(root).resolve()))
    pkg = importlib.import_module(name)
    res["pkg_file"] = pkg.__file__
    res["has_bl_info"] = hasattr(pkg, "bl_info")
    from bl_ext.user_default.slack_ai_addon.core.scene_spec import parse_scene_spec
    from bl_ext.user_default.slack_ai_addon.blender.renderer import BlenderSceneRenderer
    spec, _ = parse_scene_spec({"objects": [{"primitive": "cube", "material": {"base_color": "#ff0000"}}],
                                "output": {"engine": "workbench", "width": 64, "height": 48, "samples": 1}})
    result = BlenderSceneRenderer().render(spec, out_dir / "direct", job_id="ext-test",
                                           progress=lambda p: None, should_stop=lambda: "")
    res["direct_outputs"] = [(o.role, o.path) for o in result.outputs]
    from bl_ext.user_default.slack_ai_addon.blender import cli_command
    bpy.context.preferences.system.use_online_access = False
    code = cli_command.run_cli(["render", "a red cube", "--engine", "workbench", "--out",
                                str(out_dir / "cli"), "--json"])
    res["cli_code"] = code
    # The command ran the extension's own modules, with no import hook and no alias.
    res["cli_modules"] = sorted(m for m in sys.modules if m.endswith("slack_ai_addon.cli.oneshot"))
    res["meta_path_hooks"] = [type(f).__module__ + "." + type(f).__name__ for f in sys.meta_path
                              if "slack_ai" in type(f).__module__]
    # Nothing reached for the repository's copy under the public names (the venv has it).
    res["public_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("slack_ai_addon", "headless_runner"))
    addon_utils.disable(name, default_set=True)
    res["disabled"] = name not in bpy.context.preferences.addons
    print("RESULT:" + json.dumps(res), flush=True)
""")


@pytest.fixture(scope="module")
def linux_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Two steps, so that only the download (the network) can skip: building is our code.
    download = subprocess.run([sys.executable, str(BUILD), "--platforms", "linux-x64", "--download-only"],
                              capture_output=True, text=True, timeout=900, cwd=REPO)
    if download.returncode != 0:
        fail_unless_offline("downloading the linux-x64 wheels", download)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, str(BUILD), "--platforms", "linux-x64", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, "build_extension failed:\n" + proc.stderr[-3000:]
    zips = sorted(out.glob("slack_ai_addon-*-linux_x64.zip"))
    assert len(zips) == 1, proc.stdout
    return zips[0]


def _blender_ext() -> Path:
    site = Path(sysconfig.get_paths()["purelib"])
    return sorted(site.glob("bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))[-1]


def test_zip_validates_and_holds_only_linux_wheels(linux_zip: Path) -> None:
    import zipfile

    proc = subprocess.run([sys.executable, str(_blender_ext()), "validate", str(linux_zip)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = zipfile.ZipFile(linux_zip).namelist()
    wheels = [n for n in names if n.endswith(".whl")]
    # Compiled wheels for both Pythons Blender embeds: cp311 (4.2-5.0) and cp313 (5.1+).
    for abi in ("cp311", "cp313"):
        for dist in ("pymssql", "pydantic_core", "pillow", "jiter"):
            assert any(n.startswith(f"wheels/{dist}-") and f"-{abi}-" in n and "manylinux" in n for n in wheels), \
                (dist, abi, wheels)
    assert not [n for n in wheels if "win_amd64" in n or "macosx" in n]
    assert "cli/__init__.py" in names and "cli/worker.py" in names and "__init__.py" in names
    # The local Slack stand-in is a development tool: no sandbox, no aiohttp, no runner copy.
    assert not [n for n in names if "sandbox" in n.split("/") or n.startswith("headless_runner/")]
    assert not [n for n in wheels if n.startswith(("wheels/aiohttp-", "wheels/aiosignal-", "wheels/yarl-",
                                                   "wheels/multidict-", "wheels/frozenlist-"))]
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]


def test_installs_enables_imports_wheels_and_renders(linux_zip: Path, tmp_path: Path) -> None:
    from PIL import Image

    env = dict(os.environ)
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "res")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env.pop("BLENDER_USER_SCRIPTS", None)
    env.pop("BLENDER_USER_CONFIG", None)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(script), str(linux_zip), str(out), ",".join(WHEELS_TO_IMPORT)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT:")]
    assert lines, f"child failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    res = json.loads(lines[-1][len("RESULT:"):])
    assert res["install"] == ["FINISHED"]
    assert res["enabled"]
    assert str(tmp_path / "res") in res["pkg_file"]
    assert not res["has_bl_info"]  # Blender drops bl_info for extensions
    assert set(res["preloaded"]) <= {"requests"}, res["preloaded"]
    assert all(v for k, v in res["from_wheels"].items() if k not in res["preloaded"]), res["from_wheels"]
    image = dict(res["direct_outputs"])["image"]
    with Image.open(image) as im:
        assert im.size == (64, 48)
        r, g, b = im.convert("RGB").getpixel((32, 24))[:3]
    assert r > 2 * max(g, b), (r, g, b)
    assert res["cli_code"] == 0, proc.stderr[-3000:]
    assert res["cli_modules"] == ["bl_ext.user_default.slack_ai_addon.cli.oneshot"]
    assert res["meta_path_hooks"] == []
    assert res["public_modules"] == []
    cli_images = list((out / "cli").glob("*/image.png"))
    assert len(cli_images) == 1
    assert res["disabled"]
