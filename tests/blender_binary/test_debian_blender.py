"""The legacy add-on on a real `blender -b` binary (Debian's 3.4: no extensions, no
--command): it registers with `--addons slack_ai_addon`, and renders tiny jobs through the
headless runner, both as a render-only worker draining a shared SQLite job table and as a
one-shot `render` (scripts/farm_node picks the --python-expr entry point on Blender < 4.2).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.package_index import fail_unless_offline

pytestmark = [pytest.mark.blender_binary, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BLENDER = shutil.which("blender")

if BLENDER is None:
    pytest.skip("no `blender` binary on PATH (Debian: apt-get install blender)", allow_module_level=True)


def _blender_env() -> dict[str, str]:
    """This process's environment minus what an imported `bpy` module put there: it sets OCIO
    to its own colour configuration, which an older Blender binary cannot read."""
    return {k: v for k, v in os.environ.items() if k != "OCIO"}


def blender_python() -> str:
    """X.Y of the Python the binary embeds (3.11 on Debian 12's 3.4, 3.13 on Debian 13's 4.x)."""
    proc = subprocess.run([str(BLENDER), "-b", "--factory-startup", "--python-expr",
                           'import sys; print("SLACKAI_PY=%d.%d" % sys.version_info[:2])'],
                          capture_output=True, text=True, timeout=120, env=_blender_env())
    for line in proc.stdout.splitlines():
        if line.startswith("SLACKAI_PY="):
            return line.split("=", 1)[1]
    pytest.fail(f"could not ask blender for its Python version: {proc.stderr[-500:]}")


@pytest.fixture(scope="module")
def vendor_dir() -> Path:
    """The add-on's dependencies for Blender's own Python (pip install --target, its cpXY)."""
    pyver = blender_python()
    vendor = REPO / "build" / f"vendor-py{pyver.replace('.', '')}"
    # Always asked: the vendor step is a no-op while its stamp matches the requirements, and
    # brings a folder vendored before a dependency was added up to date.
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "_build_extension.py"), "--vendor",
                           str(vendor), "--python-version", pyver], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        fail_unless_offline(f"installing the dependencies for Python {pyver}", proc)
    return vendor


@pytest.fixture
def node_env(tmp_path: Path, vendor_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in _blender_env().items() if not k.startswith(("BLENDER_", "SLACK_"))}
    env.update({
        "BLENDER": str(BLENDER),
        "SLACK_AI_VENDOR_DIR": str(vendor_dir),
        "SLACK_AI_FARM_SCRIPTS": str(tmp_path / "scripts"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
        "SLACK_AI_OUTPUT_DIR": str(tmp_path / "out"),
        "SLACK_AI_NODE_ID": "debian-node",
    })
    return env


def _farm_node(env: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "scripts" / "farm_node"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def test_registers_with_addons_flag(tmp_path: Path, node_env: dict[str, str]) -> None:
    scripts = tmp_path / "scripts"
    (scripts / "addons").mkdir(parents=True)
    os.symlink(REPO / "slack_ai_addon", scripts / "addons" / "slack_ai_addon")
    env = dict(node_env, BLENDER_USER_SCRIPTS=str(scripts))
    # --addons loads the module without touching the (factory) preferences: ask addon_utils.
    expr = ("import bpy, json, addon_utils; from slack_ai_addon.blender import timer_driver; "
            "print('STATE:' + json.dumps({'enabled': addon_utils.check('slack_ai_addon')[1], "
            "'panel': hasattr(bpy.types, 'SLACKAI_PT_main'), 'timer': bpy.app.timers.is_registered("
            "timer_driver.tick), 'version': bpy.app.version_string, 'pydantic': __import__('pydantic').VERSION}))")
    proc = subprocess.run([str(BLENDER), "-b", "--factory-startup", "--python-exit-code", "1", "--addons",
                           "slack_ai_addon", "--python-expr", expr], capture_output=True, text=True, timeout=120,
                          env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("STATE:")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    state = json.loads(line[len("STATE:"):])
    assert state["enabled"] and state["panel"] and state["timer"], state
    assert state["pydantic"].startswith("2.")  # from the vendor folder, not Debian's python3-pydantic


def test_worker_drains_a_queued_job(node_env: dict[str, str]) -> None:
    from PIL import Image

    queue = subprocess.run([sys.executable, "-c", (
        "from slack_ai_addon.core.config import load_settings\n"
        "from slack_ai_addon.storage import open_job_store\n"
        "from slack_ai_addon.core.jobs import Job, JobKind, Requester\n"
        "spec = {'objects': [{'primitive': 'cube', 'material': {'base_color': '#ff0000'}}],"
        " 'output': {'engine': 'workbench', 'width': 64, 'height': 48, 'samples': 1}}\n"
        "print(open_job_store(load_settings()).add(Job(kind=JobKind.RENDER, request_text='', spec=spec,"
        " requester=Requester(source='farm'))).id)\n")], capture_output=True, text=True, env=node_env, cwd=REPO,
        timeout=60)
    assert queue.returncode == 0, queue.stderr
    job_id = queue.stdout.strip()

    proc = _farm_node(node_env, "worker", "--idle-exit", "1")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "worker: 1 job(s)" in proc.stderr

    image = Path(node_env["SLACK_AI_OUTPUT_DIR"]) / job_id / "image.png"
    with Image.open(image) as im:
        assert im.size == (64, 48)
        r, g, b = im.convert("RGB").getpixel((32, 24))[:3]
    assert r > 2 * max(g, b), (r, g, b)
    check = subprocess.run([sys.executable, "-c", (
        "from slack_ai_addon.core.config import load_settings\n"
        "from slack_ai_addon.storage import open_job_store\n"
        f"j = open_job_store(load_settings()).get('{job_id}')\n"
        "print(j.status.value, j.lease_owner or '-', j.attempts)\n")], capture_output=True, text=True,
        env=node_env, cwd=REPO, timeout=60)
    # The finished row names the node that rendered it (the lease it finished under).
    assert check.stdout.split() == ["done", "debian-node", "1"], check.stdout + check.stderr


def test_one_shot_render_through_the_headless_runner(node_env: dict[str, str]) -> None:
    proc = _farm_node(node_env, "render", "a red cube", "--engine", "workbench", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("{")))
    assert result["status"] == "done"
    images = [p for p in result["outputs"] if p.endswith("image.png")]
    assert images and Path(images[0]).stat().st_size > 0
