"""The real renderer one step at a time (how the GUI timer drives it): a yield after the
build and after every frame, the same outputs as `render`, and full cleanup when it is
abandoned half way."""

from __future__ import annotations

from pathlib import Path

import pytest

from slack_ai_addon.blender.renderer import BlenderSceneRenderer

from .helpers import datablock_counts, make_spec

pytestmark = pytest.mark.blender


def test_steps_yield_per_frame_and_end_with_the_result(tmp_path: Path) -> None:
    spec = make_spec(animation={"kind": "spin", "frames": 3, "fps": 12}, output={"format": "gif"})
    frames: list[int] = []
    steps = BlenderSceneRenderer(save_blend=False).render_steps(
        spec, tmp_path, job_id="steps", progress=lambda p: frames.append(p.frame) if p.stage == "rendering" else None,
        should_stop=lambda: "")
    yields, frames_at_yield = 0, []
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result = done.value
            break
        yields += 1
        frames_at_yield.append(len(frames))
    assert yields == 1 + 3  # after the build, then once per frame
    assert frames_at_yield == [0, 1, 2, 3]
    assert result.frames == 3 and result.stopped == ""
    assert {o.role for o in result.outputs} == {"video", "poster"}


def test_abandoned_steps_leave_no_data_behind(tmp_path: Path) -> None:
    before = datablock_counts()
    spec = make_spec(animation={"kind": "turntable", "frames": 4, "fps": 12}, output={"format": "gif"})
    steps = BlenderSceneRenderer(save_blend=False).render_steps(
        spec, tmp_path, job_id="abandoned", progress=lambda p: None, should_stop=lambda: "")
    next(steps)  # built
    next(steps)  # one frame
    assert datablock_counts() != before  # the job's scene exists meanwhile
    steps.close()  # Blender quit / the agent stopped mid-render
    assert datablock_counts() == before
