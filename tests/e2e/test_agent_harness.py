"""Shared pieces for the agent's end-to-end tests: FakeSlackServer + AgentService + a
pipeline with a stub interpreter and a stub renderer that writes real PNG/GIF files.

Imported by the other test_agent_* files; holds no tests of its own."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from headless_runner.sandbox.slack_server import FakeSlackServer
from slack_ai_addon.agent.service import AgentService
from slack_ai_addon.core.config import Settings
from slack_ai_addon.core.cost import CostPolicy
from slack_ai_addon.core.jobs import JobOutput
from slack_ai_addon.core.pipeline import Interpretation, JobPipeline, PipelineDeps, RenderResult
from slack_ai_addon.core.scene_spec import SceneSpec, SpecError, hex_to_rgb, parse_scene_spec
from slack_ai_addon.runtime import Runtime
from tests.job_store import JobStoreForTests, temp_job_store

COLORS = {"red": "#ff0000", "blue": "#0000ff", "green": "#00ff00", "yellow": "#ffff00"}


class StubInterpreter:
    """Words to a spec: a colour word colours the cube, 'rotating' animates; an edit keeps
    the previous spec and changes only what it names."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any] | None]] = []

    def interpret(self, text: str, *, previous: SceneSpec | None = None, correlation_id: str = "") -> Interpretation:
        self.calls.append((text, previous.to_json_dict() if previous else None))
        if "unrenderable" in text:
            raise SpecError("objects: nothing I can build from that")
        data = previous.to_json_dict() if previous else {"objects": [{"primitive": "cube"}]}
        for word, hex_color in COLORS.items():
            if word in text.lower():
                data["objects"][0]["material"] = {"base_color": hex_color}
        if "rotating" in text.lower():
            frames = 6
            for w in text.split():
                if w.isdigit():
                    frames = int(w)
            data["animation"] = {"kind": "turntable", "frames": frames, "fps": 12}
        data["output"] = dict(data.get("output") or {}, width=64, height=48, samples=1, engine="workbench")
        spec, warnings = parse_scene_spec(data)
        return Interpretation(spec=spec, provider="stub", warnings=warnings, not_understood=["zorp"]
                              if "zorp" in text else [])


class StubAnalyzer:
    def analyze(self, text: str, *, correlation_id: str = "") -> dict[str, Any]:
        return {"sentiment": "positive" if "love" in text else "neutral", "score": 0.8 if "love" in text else 0.0,
                "provider": "stub", "model": "stub-1"}


@dataclass
class StubRenderer:
    """Writes a 64x48 PNG of the cube's colour (a GIF + poster for animations)."""

    frame_s: float = 0.05
    renders: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    thread_names: list[str] = field(default_factory=list)

    def render_steps(self, spec, out_dir, **kwargs):  # type: ignore[no-untyped-def]
        """The whole render as one step (the pipeline drives renderers stepwise)."""
        yield
        return self.render(spec, out_dir, **kwargs)

    def render(self, spec: SceneSpec, out_dir: Path, *, job_id: str, progress: Any, should_stop: Any) -> RenderResult:
        from slack_ai_addon.core.pipeline import RenderProgress

        self.renders.append(job_id)
        self.thread_names.append(threading.current_thread().name)
        self.started.set()
        color = tuple(int(c * 255) for c in hex_to_rgb(spec.objects[0].material.base_color)) if spec.objects \
            else (128, 128, 128)
        size = (spec.output.width, spec.output.height)
        frames = spec.animation.frames if spec.is_animation else 1
        images = []
        start = time.monotonic()
        stopped = ""
        for i in range(1, frames + 1):
            if should_stop():
                stopped = "cancelled"
                break
            time.sleep(self.frame_s)
            img = Image.new("RGB", size, color)
            img.putpixel((0, 0), (i * 20 % 256, 0, 0))  # frames differ, so the GIF keeps them all
            images.append(img)
            progress(RenderProgress("rendering", i, frames, time.monotonic() - start))
        outputs: list[JobOutput] = []
        if images:
            poster = out_dir / ("poster.png" if spec.is_animation else "render.png")
            images[0].save(poster)
            outputs.append(JobOutput("poster" if spec.is_animation else "image", str(poster), "image/png",
                                     poster.stat().st_size))
            if spec.is_animation and not stopped:
                gif = out_dir / "turntable.gif"
                images[0].save(gif, save_all=True, append_images=images[1:], duration=80, loop=0)
                outputs.append(JobOutput("video", str(gif), "image/gif", gif.stat().st_size))
        blend = out_dir / "scene.blend"
        blend.write_bytes(b"BLENDER-v500 stub")
        outputs.append(JobOutput("blend", str(blend), "application/x-blender", blend.stat().st_size))
        return RenderResult(outputs=outputs, frames=len(images), stopped=stopped)


@dataclass
class Harness:
    srv: FakeSlackServer
    agent: AgentService
    runtime: Runtime
    store: JobStoreForTests
    renderer: StubRenderer
    interpreter: StubInterpreter
    drainer: threading.Thread | None = None
    stop_drain: threading.Event = field(default_factory=threading.Event)

    def start_drain(self) -> None:
        """Drive the dispatcher from a thread (the stub renderer has no bpy)."""
        dispatcher = self.runtime.dispatcher()

        def loop() -> None:
            while not self.stop_drain.is_set():
                dispatcher.drain(0.05)
                time.sleep(0.01)
        self.drainer = threading.Thread(target=loop, name="test-drain", daemon=True)
        self.drainer.start()

    def wait(self, condition: Any, timeout: float = 10.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def bot_messages(self, channel: str) -> list[dict[str, Any]]:
        return [m for m in self.srv.channel_messages(channel) if m.get("bot_id")]

    def job_done(self, job_id: str) -> bool:
        job = self.store.get(job_id)
        return job is not None and job.status.is_final

    def final_update(self, ts: str) -> Any:
        for call in reversed(self.srv.calls("chat.update")):
            if call.params.get("ts") == ts and any(m in str(call.params.get("text", "")) for m in
                                                   ("Done", "Failed", "failed", "Cancelled")):
                return call
        return None


def make_harness(tmp_path: Path, *, frame_s: float = 0.05, update_interval_s: float = 1.0,
                 post_interval_s: float = 0.1, ping_interval_s: float = 2.0, stale_after_s: float = 6.0,
                 server_kwargs: dict[str, Any] | None = None, admins: str = "",
                 state_path: Path | None = None, store: JobStoreForTests | None = None,
                 settings_kwargs: dict[str, Any] | None = None) -> Harness:
    # Slack's clock runs as much faster as the agent's pacing does: post_interval_s stands for
    # Slack's one message per second per channel, so every rate-limit window shrinks by the
    # same factor (the limits stay on; the agent must keep under them).
    srv = FakeSlackServer(**{"rate_window_scale": post_interval_s / 1.0, **(server_kwargs or {})}).start()
    settings = Settings(slack_bot_token="xoxb-sandbox", slack_app_token="xapp-sandbox",
                        slack_api_url=srv.api_url, output_dir=str(tmp_path / "out"), node_id="test-node",
                        admin_user_ids=admins, heartbeat_s=0.5,
                        # Quotas off unless a test asks for them (tests/e2e/test_access_quota_e2e.py
                        # does): the other tests send more requests per minute than a person would.
                        # The farm's Slack budget runs on Slack's clock too: limits per real minute.
                        **{"quota_user_requests_per_minute": 0, "quota_channel_requests_per_minute": 0,
                           "quota_user_queued": 0, "quota_channel_queued": 0,
                           "slack_updates_per_minute": 50 / srv.rate_window_scale,
                           "slack_posts_per_second": 1 / srv.rate_window_scale, **(settings_kwargs or {})})
    store = store or temp_job_store()
    renderer = StubRenderer(frame_s=frame_s)
    interpreter = StubInterpreter()
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    deps = PipelineDeps(store=store, interpreter=interpreter, analyzer=StubAnalyzer(), output_dir=out,
                        node_id="test-node", renderer=renderer, cost_policy=CostPolicy.from_settings(settings))
    runtime = Runtime(settings=settings, pipeline=JobPipeline(deps), store=store, output_dir=out)
    agent = AgentService(runtime, update_interval_s=update_interval_s, post_interval_s=post_interval_s,
                         ping_interval_s=ping_interval_s, stale_after_s=stale_after_s,
                         state_path=state_path or tmp_path / "agent_state.db")
    return Harness(srv=srv, agent=agent, runtime=runtime, store=store, renderer=renderer, interpreter=interpreter)


def close_harness(h: Harness) -> None:
    h.stop_drain.set()
    if h.drainer is not None:
        h.drainer.join(5)
    h.agent.stop(timeout=15)
    h.runtime.close()
    h.srv.stop()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = make_harness(tmp_path)
    h.agent.start()
    assert h.agent.wait_until_connected(10), h.agent.status()
    h.start_drain()
    try:
        yield h
    finally:
        close_harness(h)


def png_ok(data: bytes) -> tuple[int, int, int]:
    """Magic bytes, then Pillow: returns the centre pixel."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(data)).convert("RGB")
    px = img.getpixel((img.width // 2, img.height // 2))
    assert isinstance(px, tuple)
    return (int(px[0]), int(px[1]), int(px[2]))
