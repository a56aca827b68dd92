"""Render tiny real scenes and check the pixels, files and stop behaviour."""

from __future__ import annotations

import time
from pathlib import Path

import bpy
import pytest
from PIL import Image, ImageChops

from slack_ai_addon.core.dispatcher import run_one_job
from slack_ai_addon.core.jobs import Job, JobKind, JobStatus
from slack_ai_addon.core.pipeline import Interpretation, JobPipeline, PipelineDeps, SceneRenderer
from slack_ai_addon.core.scene_spec import SceneSpec
from tests.job_store import temp_job_store

from .helpers import count_pixels, load_rgb, luminance, make_spec, spread

pytestmark = pytest.mark.blender

CYCLES_TINY = {"engine": "cycles", "width": 64, "height": 48, "samples": 4}


def by_role(result, role):  # noqa: ANN001, ANN201 - tiny test helper
    found = [o for o in result.outputs if o.role == role]
    assert len(found) == 1, f"expected one {role} output, got {result.outputs}"
    return found[0]


def test_red_cube_is_red_and_outputs_are_described(render_spec) -> None:
    spec = make_spec(objects=[{"primitive": "cube", "location": {"z": 0.5},
                               "material": {"base_color": "#ff0000"}}], output=CYCLES_TINY)
    result, events = render_spec(spec)
    image = by_role(result, "image")
    assert image.path.endswith("image.png") and image.content_type == "image/png"
    pixels = load_rgb(image.path)
    assert len(pixels) == 64 * 48
    assert spread(pixels) > 60, "image is blank"
    red = count_pixels(pixels, "r")
    assert red > 0.05 * len(pixels), f"only {red} strongly red pixels"
    assert count_pixels(pixels, "b") < red / 10
    for out in result.outputs:
        assert Path(out.path).stat().st_size == out.size_bytes > 0
    assert by_role(result, "poster").content_type == "image/png"
    assert by_role(result, "blend").content_type == "application/x-blender"
    assert result.stopped == "" and result.frames == 1
    assert {"build_s", "render_s", "encode_s", "cleanup_s"} <= set(result.timings)
    assert [e.stage for e in events][0] == "building" and events[-1].stage == "cleanup"


def test_blue_sphere_is_blue(render_spec) -> None:
    spec = make_spec(objects=[{"primitive": "sphere", "location": {"z": 0.5},
                               "material": {"base_color": "#1040ff"}}], output=CYCLES_TINY)
    result, _ = render_spec(spec)
    pixels = load_rgb(by_role(result, "image").path)
    blue = count_pixels(pixels, "b", min_level=100, dominance=40)
    assert blue > 0.05 * len(pixels)
    assert count_pixels(pixels, "r") == 0


def test_checkered_floor_alternates_light_and_dark(render_spec) -> None:
    # Camera straight down on a 4x4 m floor of 4 tiles per edge: the middle row crosses 4 squares.
    spec = make_spec(objects=[], floor={"kind": "checkered", "color": "#f0f0f0", "color2": "#101010",
                                        "size": 4.0, "tiles": 4},
                     camera={"location": {"x": 0.0, "y": 0.0, "z": 6.0}, "look_at": {"x": 0, "y": 0, "z": 0},
                             "lens_mm": 50.0},
                     lighting={"rig": "soft"}, output={**CYCLES_TINY, "width": 64, "height": 64})
    result, _ = render_spec(spec)
    pixels = load_rgb(by_role(result, "image").path)
    row = [luminance(pixels[32 * 64 + x]) for x in range(8, 56)]
    bright = [v > 100 for v in row]
    transitions = sum(1 for a, b in zip(bright, bright[1:], strict=False) if a != b)
    assert transitions >= 2, f"no alternation across the floor: {[round(v) for v in row]}"
    lum = [luminance(p) for p in pixels]
    assert sum(v > 120 for v in lum) > 0.2 * len(lum) and sum(v < 80 for v in lum) > 0.2 * len(lum)


def test_jpeg_still(render_spec) -> None:
    result, _ = render_spec(make_spec(output={"format": "jpeg"}))
    image = by_role(result, "image")
    assert image.path.endswith("image.jpg") and image.content_type == "image/jpeg"
    with Image.open(image.path) as img:
        assert img.format == "JPEG" and img.size == (64, 48)
    assert spread(load_rgb(image.path)) > 30


def test_turntable_gif_has_requested_frames_that_differ(render_spec) -> None:
    spec = make_spec(objects=[{"primitive": "monkey", "location": {"z": 0.5},
                               "material": {"base_color": "#e08020"}}],
                     animation={"kind": "turntable", "frames": 4, "fps": 8}, output={"format": "gif"})
    result, events = render_spec(spec)
    gif = by_role(result, "video")
    assert gif.content_type == "image/gif" and gif.path.endswith(".gif")
    with Image.open(gif.path) as img:
        assert img.n_frames == 4
        frames = []
        for i in range(img.n_frames):
            img.seek(i)
            frames.append(img.convert("RGB"))
        assert img.info.get("duration") in (120, 130)  # 1000/8 ms in GIF centiseconds
    assert ImageChops.difference(frames[0], frames[2]).getbbox() is not None
    assert ImageChops.difference(frames[1], frames[3]).getbbox() is not None
    assert result.frames == 4 and result.stopped == ""
    rendering = [(e.frame, e.frames) for e in events if e.stage == "rendering"]
    assert rendering == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with Image.open(by_role(result, "poster").path) as poster:
        assert poster.size == (64, 48)
    assert not (Path(gif.path).parent / "frames").exists(), "scratch frames were left behind"


def _mp4_sample_count(data: bytes) -> int:
    """Number of samples in the first 'stsz' box of an MP4 (ISO BMFF)."""
    i = data.find(b"stsz")
    assert i > 0, "no stsz box"
    # size(4) 'stsz'(4) version/flags(4) sample_size(4) sample_count(4)
    return int.from_bytes(data[i + 12:i + 16], "big")


def test_mp4_has_the_right_frame_count(render_spec) -> None:
    spec = make_spec(animation={"kind": "spin", "frames": 6, "fps": 12}, output={"format": "mp4"})
    result, _ = render_spec(spec)
    video = by_role(result, "video")
    assert video.content_type == "video/mp4" and video.path.endswith("video.mp4")
    data = Path(video.path).read_bytes()
    assert len(data) > 500 and data[4:8] == b"ftyp"
    assert _mp4_sample_count(data) == 6
    clip = bpy.data.movieclips.load(video.path)
    try:
        assert clip.frame_duration == 6
        assert tuple(clip.size) == (64, 48)
    finally:
        bpy.data.movieclips.remove(clip)


def test_cancel_stops_between_frames(render_spec) -> None:
    rendered: list[int] = []

    def on_progress(p) -> None:  # noqa: ANN001
        if p.stage == "rendering":
            rendered.append(p.frame)

    spec = make_spec(animation={"kind": "turntable", "frames": 8}, output={"format": "gif"})
    result, _ = render_spec(spec, should_stop=lambda: "cancelled" if len(rendered) >= 2 else "",
                            on_progress=on_progress)
    assert result.stopped == "cancelled"
    assert result.frames == 2 and rendered == [1, 2]
    roles = {o.role for o in result.outputs}
    assert "video" not in roles and "poster" in roles


def test_time_limit_stops_between_frames_with_partial_result(render_spec) -> None:
    def slow(p) -> None:  # noqa: ANN001 - makes each frame take 0.4 s of wall time
        if p.stage == "rendering":
            time.sleep(0.4)

    spec = make_spec(animation={"kind": "turntable", "frames": 12},
                     output={"format": "gif", "time_limit_s": 1.0})
    result, _ = render_spec(spec, on_progress=slow)
    assert result.stopped == "time limit"
    assert 2 <= result.frames < 12
    with Image.open(by_role(result, "video").path) as gif:
        assert gif.n_frames == result.frames


def test_blend_holds_only_the_job_scene(render_spec, tmp_path: Path) -> None:
    user_obj = bpy.data.objects.new("users precious object", bpy.data.meshes.new("users mesh"))
    bpy.context.scene.collection.objects.link(user_obj)
    result, _ = render_spec(make_spec())
    path = by_role(result, "blend").path
    with bpy.data.libraries.load(path) as (data_from, _data_to):
        scenes = list(data_from.scenes)
        objects = list(data_from.objects)
    assert len(scenes) == 1 and scenes[0].startswith("SlackAI")
    assert "users precious object" not in objects
    assert "camera" in objects and "cube 1" in objects


class FixedInterpreter:
    """Stands in for the offline interpreter: always the same tiny spec."""

    def __init__(self, spec: SceneSpec) -> None:
        self.spec = spec
        self.calls: list[str] = []

    def interpret(self, text: str, *, previous: SceneSpec | None = None,
                  correlation_id: str = "") -> Interpretation:
        self.calls.append(text)
        return Interpretation(spec=self.spec, provider="fixed")


def test_pipeline_runs_with_the_blender_renderer(tmp_path: Path) -> None:
    from slack_ai_addon.blender.renderer import BlenderSceneRenderer

    renderer: SceneRenderer = BlenderSceneRenderer()
    store = temp_job_store()
    interpreter = FixedInterpreter(make_spec(objects=[{"primitive": "cube", "location": {"z": 0.5},
                                                       "material": {"base_color": "#ff0000"}}]))
    pipeline = JobPipeline(PipelineDeps(store=store, interpreter=interpreter, output_dir=tmp_path,
                                        node_id="test-node", renderer=renderer))
    job = run_one_job(pipeline, Job(kind=JobKind.RENDER, request_text="a red cube"))
    assert job.status is JobStatus.DONE, job.error
    assert interpreter.calls == ["a red cube"]
    stored = store.get(job.id)
    assert stored is not None and stored.status is JobStatus.DONE
    roles = sorted(o.role for o in stored.outputs)
    assert roles == ["blend", "image", "poster", "spec"]
    image = next(o for o in stored.outputs if o.role == "image")
    assert Path(image.path).parent == tmp_path / job.id
    assert count_pixels(load_rgb(image.path), "r") > 50  # Workbench shows the material colour
    assert stored.timings["build_s"] >= 0 and stored.timings["render_s"] > 0
