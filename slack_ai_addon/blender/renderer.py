"""`BlenderSceneRenderer`: the `SceneRenderer` of core/pipeline.py, on Blender's main thread.

Stills go straight to `image.png` / `image.jpg`. Animations are rendered one frame at a
time into a scratch folder, so progress is reported and cancel / the time limit are checked
between frames; the frames are then encoded: MP4 through Blender's own FFmpeg writer (a
second, sequencer-only scene that plays the frames back; this works the same on 3.4 and
5.0 and needs no ffmpeg binary), GIF with Pillow. Every job also gets `poster.png` (the
first frame) and `scene.blend` (only the job's own scene and what it uses).

Output roles: image (still), video (MP4, or GIF with content type image/gif), poster, blend.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import bpy
from PIL import Image

from ..core.jobs import JobOutput
from ..core.pipeline import ProgressFn, RenderProgress, RenderResult, StopFn, drive
from ..core.scene_spec import Engine, OutputFormat, SceneSpec
from . import compat
from .builder import BuiltScene, build_scene
from .headless import stdout_to_stderr
from .render_settings import RenderThreads, apply_cycles, apply_threads, cycles_settings

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".blend": "application/x-blender",
}


class RenderStopped(Exception):
    """Raised between frames when should_stop() or the time limit says so."""


def _output(role: str, path: Path) -> JobOutput:
    return JobOutput(role=role, path=str(path), content_type=CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
                     size_bytes=path.stat().st_size)


def configure_render(scene: Any, spec: SceneSpec, *, threads: int = 0) -> None:
    """Engine, size, samples and low-overhead settings from `spec.output`.

    Cycles gets the measured settings of render_settings.py (denoised, fewer samples where
    the build has OpenImageDenoise); `threads` > 0 fixes the render thread count.
    """
    out = spec.output
    r = scene.render
    r.engine = compat.engine_id(scene, out.engine.value)
    r.resolution_x = out.width
    r.resolution_y = out.height
    r.resolution_percentage = 100
    # Persistent data keeps the scene's render data (BVH, shaders) between the renders of one
    # scene: an animation's frames reuse it (README turntable: 6.9 s instead of 7.6 s,
    # bench_quality.py). A still gains nothing; RSS stayed flat over 40 animation jobs with
    # it on (each job's scene is deleted afterwards).
    r.use_persistent_data = spec.is_animation
    apply_threads(scene, threads)
    r.film_transparent = False
    r.use_file_extension = False  # we give full paths
    r.use_sequencer = False
    r.use_compositing = False
    if hasattr(r, "use_stamp"):
        r.use_stamp = False
    if out.engine is Engine.CYCLES:
        if getattr(scene, "cycles", None) is not None:
            apply_cycles(scene, cycles_settings(out.samples, oidn=compat.has_openimagedenoise(),
                                                pixels=out.width * out.height, animation=spec.is_animation))
    elif out.engine is Engine.EEVEE:
        compat.configure_eevee(scene, out.samples)
    else:
        compat.configure_workbench(scene)


def run_render_operator(scene: Any, **kwargs: Any) -> set[str]:
    """`bpy.ops.render.render` on `scene` without making it the window's active scene.

    A context override rather than the operator's `scene=` argument: with the argument,
    5.0 renders the scene at frame 1 whatever its current frame is (and resets it), so every
    frame of an animation came out the same.
    """
    with stdout_to_stderr(), bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0]):
        return set(bpy.ops.render.render(**kwargs))


def _render_still(scene: Any, path: Path, *, seconds_left: float | None = None) -> None:
    if seconds_left is not None and scene.render.engine == "CYCLES" and hasattr(scene.cycles, "time_limit"):
        # The job's time limit also holds inside one frame: Cycles stops sampling at its
        # per-frame time limit and writes what it has (noisier, never missing).
        scene.cycles.time_limit = max(1.0, seconds_left)
    scene.render.filepath = str(path)
    result = run_render_operator(scene, write_still=True)
    if "FINISHED" not in result or not path.exists():
        raise RuntimeError(f"Blender did not write {path.name} (render returned {sorted(result)})")


class BlenderSceneRenderer:
    """Builds, renders, encodes and cleans up one job per call. Main thread only."""

    def __init__(self, *, save_blend: bool = True, keep_frames: bool = False, jpeg_quality: int = 90,
                 threads: RenderThreads | None = None) -> None:
        self.save_blend = save_blend
        self.keep_frames = keep_frames
        self.jpeg_quality = jpeg_quality
        self.threads = threads or RenderThreads()

    def render(self, spec: SceneSpec, out_dir: Path, *, job_id: str,
               progress: ProgressFn, should_stop: StopFn) -> RenderResult:
        """Render `spec` into `out_dir`; always removes the job's Blender data before returning."""
        return drive(self.render_steps(spec, out_dir, job_id=job_id, progress=progress, should_stop=should_stop))

    def render_steps(self, spec: SceneSpec, out_dir: Path, *, job_id: str, progress: ProgressFn,
                     should_stop: StopFn) -> Generator[None, None, RenderResult]:
        """The same render, one step at a time: it yields after building and after each frame.

        The GUI's timer advances it a step per tick, so Blender redraws (progress bar,
        Cancel button) between frames instead of freezing for the whole animation. Closing
        the generator early still cleans up (the `finally` below runs on `close()`).
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        timings: dict[str, float] = {}
        outputs: list[JobOutput] = []
        images_before = {img.as_pointer() for img in bpy.data.images}
        built: BuiltScene | None = None
        frames_done = 0
        stopped = ""
        try:
            progress(RenderProgress("building", 0, 1, 0.0))
            built = build_scene(spec, job_id)
            configure_render(built.scene, spec, threads=self.threads.threads())
            timings["build_s"] = time.perf_counter() - start
            if self.save_blend:
                t = time.perf_counter()
                outputs.append(self._save_blend(built, out_dir / "scene.blend"))
                timings["blend_s"] = time.perf_counter() - t
            yield

            def check_stop() -> None:
                reason = should_stop()
                if not reason and time.perf_counter() - start > spec.output.time_limit_s:
                    reason = "time limit"
                if reason:
                    raise RenderStopped(reason)

            t = time.perf_counter()
            if spec.is_animation:
                frame_dir = out_dir / "frames"
                frame_dir.mkdir(exist_ok=True)
                frame_paths: list[Path] = []
                try:
                    for i in range(1, built.frames + 1):
                        check_stop()
                        built.set_frame(i)
                        path = frame_dir / f"frame_{i:04d}.png"
                        compat.set_still_format(built.scene, "PNG")
                        _render_still(built.scene, path,
                                      seconds_left=spec.output.time_limit_s - (time.perf_counter() - start))
                        frame_paths.append(path)
                        frames_done = i
                        progress(RenderProgress("rendering", i, built.frames, time.perf_counter() - start))
                        yield
                except RenderStopped as stop:
                    stopped = str(stop)
                    log.info("job %s stopped after %d/%d frames: %s", job_id, frames_done, built.frames, stopped)
                timings["render_s"] = time.perf_counter() - t
                t = time.perf_counter()
                progress(RenderProgress("encoding", frames_done, built.frames, time.perf_counter() - start))
                outputs[:0] = self._encode(spec, built, frame_paths, out_dir, job_id,
                                           skip_video=(stopped == "cancelled"))
                if not self.keep_frames:
                    shutil.rmtree(frame_dir, ignore_errors=True)
                timings["encode_s"] = time.perf_counter() - t
            else:
                try:
                    check_stop()
                except RenderStopped as stop:
                    stopped = str(stop)
                else:
                    jpeg = spec.output.format is OutputFormat.JPEG
                    compat.set_still_format(built.scene, "JPEG" if jpeg else "PNG", self.jpeg_quality)
                    path = out_dir / ("image.jpg" if jpeg else "image.png")
                    # Said before the frame starts: a still is one long frame, and Slack and
                    # the other nodes should see "rendering" while it runs, not "building".
                    progress(RenderProgress("rendering", 0, 1, time.perf_counter() - start))
                    _render_still(built.scene, path,
                                  seconds_left=spec.output.time_limit_s - (time.perf_counter() - start))
                    frames_done = 1
                    if time.perf_counter() - start >= spec.output.time_limit_s:
                        stopped = "time limit"  # sampling was cut short: say the result is partial
                    timings["render_s"] = time.perf_counter() - t
                    progress(RenderProgress("rendering", 1, 1, time.perf_counter() - start))
                    t = time.perf_counter()
                    poster = out_dir / "poster.png"
                    with Image.open(path) as img:
                        img.convert("RGB").save(poster, optimize=False)
                    outputs[:0] = [_output("image", path), _output("poster", poster)]
                    timings["encode_s"] = time.perf_counter() - t
        finally:
            t = time.perf_counter()
            if built is not None:
                progress(RenderProgress("cleanup", frames_done, built.frames, time.perf_counter() - start))
                built.cleanup()
            _remove_new_images(images_before)
            timings["cleanup_s"] = time.perf_counter() - t
        return RenderResult(outputs=outputs, frames=frames_done,
                            timings={k: round(v, 4) for k, v in timings.items()}, stopped=stopped)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _save_blend(built: BuiltScene, path: Path) -> JobOutput:
        # Writes only the job's scene and what it references: the user's open file and its
        # other scenes are neither saved nor included.
        bpy.data.libraries.write(str(path), {built.scene}, fake_user=False, compress=True)
        return _output("blend", path)

    def _encode(self, spec: SceneSpec, built: BuiltScene, frames: list[Path], out_dir: Path,
                job_id: str, *, skip_video: bool) -> list[JobOutput]:
        outputs: list[JobOutput] = []
        if not frames:
            return outputs
        poster = out_dir / "poster.png"
        shutil.copyfile(frames[0], poster)
        if not skip_video and len(frames) >= 2:
            if spec.output.format is OutputFormat.MP4:
                video = encode_mp4(frames, out_dir / "video.mp4", fps=spec.animation.fps, job_id=job_id)
            else:
                # GIF also for an animation that asked for png/jpeg: one file that moves.
                video = encode_gif(frames, out_dir / "animation.gif", fps=spec.animation.fps)
            outputs.append(_output("video", video))
        outputs.append(_output("poster", poster))
        return outputs


def encode_gif(frames: list[Path], path: Path, *, fps: int) -> Path:
    """An endlessly looping GIF, one adaptive palette per frame."""
    images = []
    for f in frames:
        with Image.open(f) as img:
            images.append(img.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=255))
    duration = max(20, round(1000 / fps))  # browsers clamp shorter delays to 100 ms
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0,
                   disposal=1, optimize=False)
    return path


def encode_mp4(frames: list[Path], path: Path, *, fps: int, job_id: str) -> Path:
    """H.264 MP4 from PNG frames through Blender's FFmpeg writer (no ffmpeg binary needed).

    A temporary scene with one image-sequence strip plays the frames; rendering it as an
    animation with FFMPEG output writes the movie. The scene is removed afterwards.
    """
    with Image.open(frames[0]) as first:
        width, height = first.size
    scene: Any = bpy.data.scenes.new(f"SlackAI {job_id} encode")
    try:
        compat.setup_color_management(scene)  # the frames are display-referred already
        scene.render.engine = compat.engine_id(scene, "workbench")
        scene.render.resolution_x = width
        scene.render.resolution_y = height
        scene.render.resolution_percentage = 100
        scene.render.fps = fps
        scene.render.use_sequencer = True
        scene.render.use_compositing = False
        scene.render.use_file_extension = False
        scene.frame_start = 1
        scene.frame_end = len(frames)
        strips = compat.sequence_strips(scene)
        strip = strips.new_image(name="frames", filepath=str(frames[0]), channel=1, frame_start=1)
        for f in frames[1:]:
            strip.elements.append(f.name)
        compat.set_video_format(scene)
        scene.render.filepath = str(path)
        result = run_render_operator(scene, animation=True)
        if "FINISHED" not in result:
            raise RuntimeError(f"MP4 encoding did not finish ({sorted(result)})")
    finally:
        bpy.data.scenes.remove(scene)
    if not path.exists():
        # Some builds append the frame range to the name; take whatever mp4 was written.
        written = sorted(path.parent.glob(path.stem + "*.mp4"))
        if not written:
            raise RuntimeError("Blender's FFmpeg writer produced no file")
        written[0].rename(path)
    return path


def _remove_new_images(before: set[int]) -> None:
    # Rendering creates the 'Render Result' image (and the sequencer may load images);
    # remove those that did not exist before this job so nothing accumulates.
    for img in list(bpy.data.images):
        if img.as_pointer() not in before:
            try:
                bpy.data.images.remove(img)
            except (ReferenceError, RuntimeError):
                log.debug("could not remove image %s", img.name)
