"""Smoke run of the builder and renderer under a real `blender -b` (Debian's 3.4 here).

Blender's own Python reads our code and the add-on's dependencies through PYTHONPATH with
`--python-use-system-env`: the venv's site-packages when the binary embeds the venv's Python,
else the dependencies installed for the binary's Python (`_build_extension.py --vendor`, the
way scripts/farm_node sets up such nodes).
"""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.package_index import fail_unless_offline

from .helpers import count_pixels, load_rgb

pytestmark = [pytest.mark.blender_binary]

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r'''
import json, sys
from pathlib import Path
from slack_ai_addon.blender import headless
from slack_ai_addon.blender.renderer import BlenderSceneRenderer
from slack_ai_addon.core.scene_spec import SceneSpec
import bpy
headless.prepare_module_mode()
out = Path(sys.argv[-1])
before = {k: len(getattr(bpy.data, k)) for k in ("objects", "meshes", "materials", "scenes", "images", "actions",
                                                 "worlds", "lights", "cameras", "curves", "fonts")}
results = {}
for fmt, anim in (("png", "none"), ("mp4", "turntable"), ("gif", "spin")):
    spec = SceneSpec.model_validate({
        "objects": [{"primitive": "cube", "location": {"z": 0.5}, "material": {"base_color": "#ff0000"}},
                    {"primitive": "text", "text": "3.4", "location": {"x": 1.2, "z": 0.5}}],
        "floor": {"kind": "checkered"}, "world": {"kind": "sky"},
        "animation": {"kind": anim, "frames": 4},
        "output": {"engine": "cycles", "width": 64, "height": 48, "samples": 4, "format": fmt}})
    r = BlenderSceneRenderer().render(spec, out / fmt, job_id=fmt, progress=lambda p: None,
                                      should_stop=lambda: "")
    results[fmt] = {"outputs": {o.role: o.path for o in r.outputs}, "frames": r.frames, "stopped": r.stopped}
after = {k: len(getattr(bpy.data, k)) for k in before}
print("RESULT " + json.dumps({"version": bpy.app.version_string, "results": results, "leaked":
      {k: after[k] - before[k] for k in before if after[k] != before[k]}}))
'''


def _dependencies_for(blender: str, env: dict[str, str]) -> str:
    """A folder with the add-on's dependencies built for the Python that `blender` embeds."""
    # A clean environment: the imported bpy module sets OCIO to its own (newer) config.
    proc = subprocess.run([blender, "-b", "--factory-startup", "--python-expr",
                           'import sys; print("SLACKAI_PY=%d.%d" % sys.version_info[:2])'],
                          capture_output=True, text=True, timeout=120, env=env)
    pyver = next((ln.split("=", 1)[1] for ln in proc.stdout.splitlines() if ln.startswith("SLACKAI_PY=")), "")
    assert pyver, proc.stdout[-1000:] + proc.stderr[-1000:]
    if pyver == f"{sys.version_info[0]}.{sys.version_info[1]}":
        return site.getsitepackages()[0]
    vendor = ROOT / "build" / f"vendor-py{pyver.replace('.', '')}"
    if not (vendor / ".stamp").is_file():
        built = subprocess.run([sys.executable, str(ROOT / "scripts" / "_build_extension.py"), "--vendor",
                                str(vendor), "--python-version", pyver], capture_output=True, text=True,
                               timeout=900)
        if built.returncode != 0:
            fail_unless_offline(f"installing the dependencies for Python {pyver}", built)
    return str(vendor)


def test_renders_under_blender_binary(tmp_path: Path) -> None:
    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("no `blender` executable on PATH (Debian: apt-get install blender)")
    script = tmp_path / "smoke.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    env["PYTHONPATH"] = f"{ROOT}:{_dependencies_for(blender, env)}"
    proc = subprocess.run([blender, "-b", "--factory-startup", "--python-use-system-env", "--python",
                           str(script), "--", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=180, env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(line[len("RESULT "):])
    assert data["leaked"] == {}
    res = data["results"]
    pixels = load_rgb(res["png"]["outputs"]["image"])
    assert count_pixels(pixels, "r") > 0.03 * len(pixels)
    mp4 = Path(res["mp4"]["outputs"]["video"]).read_bytes()
    i = mp4.find(b"stsz")
    assert mp4[4:8] == b"ftyp" and int.from_bytes(mp4[i + 12:i + 16], "big") == 4
    from PIL import Image

    with Image.open(res["gif"]["outputs"]["video"]) as gif:
        assert gif.n_frames == 4
    assert Path(res["png"]["outputs"]["blend"]).stat().st_size > 1000
