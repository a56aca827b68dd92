"""The one-shot CLI as a user meets it: exit codes, messages, and the --json contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, tmp_path: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "ABACUS_"))}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    return subprocess.run([sys.executable, "-m", "headless_runner", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("prompt, expected", [
    ("", "empty prompt"),
    ("   ", "empty prompt"),
    ("a cube at resolution 999999", "output.width"),
    ("blah " * 2000, "could not find anything to render"),
    ("x" * 10240, "could not find anything to render"),  # one 10 kB word: still a short message
    ("a cube with 5000 samples and 99999 frames rotating", "output"),
])
def test_bad_prompts_exit_2_with_a_clear_message(prompt: str, expected: str, tmp_path: Path) -> None:
    res = _run("render", prompt, "--out", str(tmp_path / "out"), tmp_path=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.startswith("error:") and expected in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert len(res.stderr) < 2000  # a message, not a dump


def test_unknown_engine_is_a_usage_error(tmp_path: Path) -> None:
    res = _run("render", "a cube", "--engine", "povray", tmp_path=tmp_path)
    assert res.returncode == 2 and "invalid choice" in res.stderr


@pytest.mark.blender
def test_render_json_contract_and_pixels(tmp_path: Path) -> None:
    pytest.importorskip("bpy")
    res = _run("render", "a red cube, 96x72, 4 samples", "--engine", "workbench", "--json",
               "--out", str(tmp_path / "out"), tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(res.stdout)  # stdout is exactly one JSON object: Blender's prints go to stderr
    assert data["status"] == "done" and data["job_id"]
    assert data["spec"]["objects"][0]["primitive"] == "cube"
    assert data["spec"]["output"]["engine"] == "workbench"
    image = next(p for p in data["outputs"] if p.endswith("image.png"))
    assert Path(image).parent.parent == tmp_path / "out"
    img = Image.open(image).convert("RGB")
    assert img.size == (96, 72)
    px = img.load()
    red = sum(1 for x in range(96) for y in range(72)
              if px[x, y][0] > 120 and px[x, y][1] < 60 and px[x, y][2] < 60)
    assert red > 0.05 * 96 * 72, red
    assert {Path(p).name for p in data["outputs"]} >= {"image.png", "spec.json", "scene.blend"}
    # Our progress on stderr; Blender's own render prints kept in a log beside the outputs.
    assert f"rendering job {data['job_id']}" in res.stderr and "Saved:" not in res.stderr
    assert "Saved:" in (tmp_path / "out" / "blender.log").read_text()


def test_analyze_exit_codes(tmp_path: Path) -> None:
    res = _run("analyze", "", tmp_path=tmp_path)
    assert res.returncode == 2 and res.stderr.startswith("error:")
    res = _run("analyze", "This is awful and I hate it.", tmp_path=tmp_path)
    assert res.returncode == 0 and "sentiment: negative" in res.stdout
