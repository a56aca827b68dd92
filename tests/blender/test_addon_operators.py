"""Operators run and report; a local render goes through the real pipeline and renderer,
driven by the drain timer's tick (timers never fire in module mode, so the test calls it);
the timer survives raising pumps and raising jobs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

bpy = pytest.importorskip("bpy")
import addon_utils  # noqa: E402

pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]
ADDON = "slack_ai_addon"


class RedCubeInterpreter:
    """Always the same tiny spec: the test is about the add-on, not the interpreter."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def interpret(self, text: str, *, previous: Any = None, correlation_id: str = "") -> Any:
        from slack_ai_addon.core.pipeline import Interpretation
        from slack_ai_addon.core.scene_spec import parse_scene_spec

        self.calls.append(text)
        spec, _ = parse_scene_spec({
            "objects": [{"primitive": "cube", "material": {"base_color": "#ff0000"}}],
            "output": {"engine": "workbench", "width": 64, "height": 48, "samples": 1},
        })
        return Interpretation(spec=spec, provider="test")


class FlakyRenderer:
    """Raises for the job whose id is in `_explode["job_id"]`, renders for real otherwise."""

    def __init__(self) -> None:
        from slack_ai_addon.blender.renderer import BlenderSceneRenderer

        self.real = BlenderSceneRenderer()

    def render(self, spec: Any, out_dir: Path, **kwargs: Any) -> Any:
        if out_dir.name == _explode["job_id"]:  # the pipeline renders into <output>/<job id>
            raise RuntimeError("renderer blew up on purpose")
        return self.real.render(spec, out_dir, **kwargs)

    def render_steps(self, spec, out_dir, **kwargs):  # type: ignore[no-untyped-def]
        """The whole render as one step (the pipeline drives renderers stepwise)."""
        yield
        return self.render(spec, out_dir, **kwargs)


_explode = {"job_id": ""}


@pytest.fixture
def addon(user_dirs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    addon_utils.enable(ADDON, default_set=True, handle_error=None)
    from slack_ai_addon.core.pipeline import JobPipeline, PipelineDeps
    from slack_ai_addon.runtime import Runtime
    from slack_ai_addon.ui import state
    from tests.job_store import temp_job_store

    interpreter = RedCubeInterpreter()

    def factory(settings: Any) -> Any:
        store = temp_job_store()
        out = tmp_path / "out"
        deps = PipelineDeps(store=store, interpreter=interpreter, output_dir=out, node_id="test-node",
                            renderer=FlakyRenderer())
        return Runtime(settings=settings, pipeline=JobPipeline(deps), store=store, output_dir=out)

    monkeypatch.setattr(state, "runtime_factory", factory)
    yield interpreter
    addon_utils.disable(ADDON, default_set=True, handle_error=None)


def _drive_until(predicate: Any, timeout_s: float = 60.0) -> Any:
    """Tick the timer until `predicate()` is truthy; returns its value."""
    from slack_ai_addon.blender import timer_driver

    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out driving the timer"
        interval = timer_driver.tick()
        assert isinstance(interval, float) and interval > 0
        time.sleep(0.01)
    return value


def test_render_prompt_operator_renders_through_the_timer(addon) -> None:
    from PIL import Image

    from slack_ai_addon.ui import state

    assert bpy.ops.slack_ai.render_prompt(prompt="a red cube") == {"FINISHED"}
    assert addon.calls == []  # submit only queues; the timer does the work
    rt = state.session.runtime
    # The insert runs off the main thread: wait for the row.
    job_id = _drive_until(lambda: rt.store.list_jobs(limit=1))[0].id
    _drive_until(lambda: rt.store.get(job_id).status.is_final)
    _drive_until(lambda: state.session.jobs.get(job_id) is not None
                 and state.session.jobs[job_id].status == "done")

    job = rt.store.get(job_id)
    assert job.status.value == "done", job.error
    assert job.requester.source == "blender_ui"
    assert addon.calls == ["a red cube"]
    image = next(o.path for o in job.outputs if o.role == "image")
    with Image.open(image) as im:
        assert im.size == (64, 48)
        r, g, b = im.convert("RGB").getpixel((32, 24))[:3]
    assert r > 2 * max(g, b) and r > 60, (r, g, b)  # the cube is red in the middle of the frame

    row = state.recent_jobs()[0]
    assert row.job_id == job_id and row.progress == 1.0 and row.first_output == image
    assert state.session.current_job_id == ""
    assert bpy.ops.slack_ai.open_output(path=row.first_output) == {"FINISHED"}  # background: reports the path


def test_timer_survives_a_raising_job_and_a_raising_pump(addon) -> None:
    from slack_ai_addon.blender import timer_driver
    from slack_ai_addon.ui import state

    def broken_pump(budget_s: float) -> bool:
        raise ValueError("pump bug")

    timer_driver.add_pump("broken", broken_pump)
    errors_before = timer_driver.stats["errors"]
    assert isinstance(timer_driver.tick(), float)
    assert timer_driver.stats["errors"] == errors_before + 1
    assert bpy.app.timers.is_registered(timer_driver.tick)

    assert bpy.ops.slack_ai.render_prompt(prompt="first one explodes") == {"FINISHED"}
    rt = state.session.runtime
    _explode["job_id"] = _drive_until(lambda: rt.store.list_jobs(limit=1))[0].id
    assert bpy.ops.slack_ai.render_prompt(prompt="second one renders") == {"FINISHED"}
    jobs = _drive_until(lambda: len(rt.store.list_jobs(limit=2)) == 2 and rt.store.list_jobs(limit=2))
    _drive_until(lambda: all(rt.store.get(j.id).status.is_final for j in jobs))
    by_text = {j.request_text: rt.store.get(j.id) for j in jobs}
    assert by_text["first one explodes"].status.value == "failed"
    assert "blew up on purpose" in by_text["first one explodes"].error
    assert by_text["second one renders"].status.value == "done"
    assert bpy.app.timers.is_registered(timer_driver.tick)
    timer_driver.remove_pump("broken")


def test_cancel_connect_and_disconnect_report(addon, monkeypatch: pytest.MonkeyPatch) -> None:
    from slack_ai_addon.ui import state

    assert bpy.ops.slack_ai.cancel_job() == {"CANCELLED"}  # nothing to cancel yet
    assert bpy.ops.slack_ai.render_prompt(prompt="a red cube") == {"FINISHED"}
    assert bpy.ops.slack_ai.cancel_job() == {"FINISHED"}  # at once: the panel knows the job already
    store = state.session.runtime.store
    job_id = _drive_until(lambda: store.list_jobs(limit=1))[0].id
    # Submit and cancel reach the database in order, off the main thread.
    _drive_until(lambda: store.get(job_id).status.is_final)
    assert store.get(job_id).status.value == "cancelled"

    # No tokens: connect refuses with the reason, and the panel state says so.
    assert bpy.ops.slack_ai.connect() == {"CANCELLED"}
    assert state.connection_state()[0] == "refused"
    assert "tokens missing" in state.connection_state()[1]

    # With tokens, connect starts the agent service (a recording stub here) and
    # disconnect stops it off the main thread.
    calls: list[str] = []

    class StubAgent:
        def __init__(self, runtime: Any, settings: Any) -> None:
            calls.append("init")

        def start(self) -> None:
            calls.append("start")

        def stop(self, timeout: float) -> None:
            calls.append("stop")

        def status(self) -> Any:
            from types import SimpleNamespace

            return SimpleNamespace(state="connected", detail="stub")

    monkeypatch.setattr(state, "agent_factory", StubAgent)
    monkeypatch.setattr("slack_ai_addon.ui.operators.online_access", lambda: True)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-test")
    assert bpy.ops.slack_ai.connect() == {"FINISHED"}
    assert state.connection_state() == ("connected", "stub")
    assert state.node_role().startswith("agent")
    assert bpy.ops.slack_ai.disconnect() == {"FINISHED"}
    for thread in state.session.stopping:
        thread.join(5)
    assert calls == ["init", "start", "stop"]
    assert state.connection_state()[0] == "offline"
