"""The Slack path with real Blender: the real agent over Socket Mode against the local Slack,
the offline interpreter and BlenderSceneRenderer, drained on this (main) thread as `serve`
does. A turntable is uploaded as a GIF with the asked frame count, and a thread follow-up
re-renders the scene in the same thread, now blue (pixels)."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from test_agent_harness import close_harness, make_harness  # noqa: E402

from slack_ai_addon.blender.renderer import BlenderSceneRenderer  # noqa: E402
from slack_ai_addon.providers.offline import OfflineInterpreter  # noqa: E402

from .helpers import gif_frame_count  # noqa: E402

pytestmark = pytest.mark.blender
C = "C0RENDERS"


def _drain_until(h: Any, condition: Any, timeout: float, what: str) -> Any:
    dispatcher = h.runtime.dispatcher()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dispatcher.drain(0.05)  # bpy only on this thread
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _centre_colour(data: bytes) -> tuple[int, int, int]:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    px = [img.getpixel((x, y)) for x in range(w // 3, 2 * w // 3) for y in range(h // 3, 2 * h // 3)]
    return tuple(sorted(c[i] for c in px)[len(px) // 2] for i in range(3))  # type: ignore[return-value]


def test_turntable_and_follow_up_with_real_blender(tmp_path: Path) -> None:
    h = make_harness(tmp_path)
    h.runtime.pipeline.deps.renderer = BlenderSceneRenderer(save_blend=False)
    h.runtime.pipeline.deps.interpreter = OfflineInterpreter()
    try:
        h.agent.start()
        assert h.agent.wait_until_connected(10)
        env = h.srv.send_slash_command("/render", "a red cube rotating, 4 frames, 64x48, workbench",
                                       user_id="U1", channel_id=C)
        assert h.srv.wait_for_ack(env, timeout=3)
        ts = _drain_until(h, lambda: h.bot_messages(C), 10, "placeholder")[0]["ts"]
        _drain_until(h, lambda: h.final_update(ts), 60, "final update")
        files = {f.filename: f for f in h.srv.files.values() if f.thread_ts == ts}
        assert set(files) == {"poster.png", "animation.gif"}, files
        gif = Image.open(io.BytesIO(files["animation.gif"].data))
        assert gif_frame_count(gif) == 4  # Pillow folds identical frames into one
        r, g, b = _centre_colour(files["poster.png"].data)
        assert r > 150 and g < 80 and b < 80, (r, g, b)

        first = h.store.list_jobs()[0]
        h.srv.post_user_message(C, "U1", "make it blue and stop rotating", thread_ts=ts)
        child = _drain_until(h, lambda: [j for j in h.store.list_jobs() if j.parent_job_id == first.id
                                         and j.status.is_final], 60, "follow-up job")[0]
        assert child.status.value == "done", child.error
        upload = _drain_until(h, lambda: [f for f in h.srv.files.values() if f.thread_ts == ts
                                          and child.id in (f.title or "") and f.completed], 20, "edited render")
        r, g, b = _centre_colour(upload[0].data)
        assert b > 150 and r < 80, (r, g, b)  # now blue
    finally:
        close_harness(h)
