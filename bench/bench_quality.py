"""Quality per second of the render settings (not a test).

    .venv/bin/python bench/bench_quality.py [--quick] [--size 320x240] [--runs 3] [--no-write]

Five fixed scenes (a matte cube, two glass spheres on a checkered floor, a metallic torus,
a cube on a checkered floor, an emissive sphere at night) are rendered with Cycles at each
quality word's sample count (draft 8, default 32, high 128):

- plain: N samples, adaptive sampling with Blender's automatic threshold, no denoising
  (the renderer's settings before issue 13);
- preset: what `configure_render` sets now (blender/render_settings.py: N/4 samples and
  OpenImageDenoise with albedo and normal passes where the build has it).

Error is PSNR of the 8-bit output against a reference of the same scene (512 samples, no
adaptive sampling, no denoising, another seed); references are cached in
out/bench_cache/. Times are the render call alone (`bpy.ops.render.render`), the median
of --runs renders, plain and preset interleaved so both see the same load. Workbench and
EEVEE are timed and scored once for comparison. The full run also renders the README's
turntable ("a red cube on a checkered floor, rotating": 24 frames, 320x240) through the
real renderer: the preset (with persistent data), the preset without it, and the old plain settings.

Writes its section into docs/BENCHMARKS.md ("## Quality per second") unless --no-write;
the last line is a BENCH_SUMMARY for bench/run_all.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import emit_summary, load_average, median_spread, write_section  # noqa: E402

SECTION = "## Quality per second"
CACHE = ROOT / "out" / "bench_cache"
QUALITY_WORDS = {"draft": 8, "default": 32, "high": 128}
REFERENCE_SAMPLES = 512
REFERENCE_SEED = 7919
README_PROMPT = "a red cube on a checkered floor, rotating"


def _obj(prim: str, loc: tuple[float, float, float] = (0, 0, 0.5), **material: Any) -> dict[str, Any]:
    return {"primitive": prim, "location": {"x": loc[0], "y": loc[1], "z": loc[2]}, "material": material}


def scene_specs(width: int, height: int, samples: int = 32) -> dict[str, Any]:
    """The fixed scenes, as SceneSpecs at width x height."""
    from slack_ai_addon.core.scene_spec import SceneSpec

    def spec(objects: list[dict[str, Any]], floor: str = "plain", rig: str = "studio") -> SceneSpec:
        return SceneSpec.model_validate({
            "objects": objects, "floor": {"kind": floor}, "lighting": {"rig": rig},
            "output": {"engine": "cycles", "width": width, "height": height, "samples": samples}})

    return {
        "matte cube": spec([_obj("cube", base_color="#c03020", roughness=1.0)]),
        "glass spheres": spec([_obj("sphere", (-0.7, 0, 0.5), transmission=1.0, roughness=0.0, base_color="#ffffff"),
                               _obj("sphere", (0.7, 0, 0.5), transmission=1.0, roughness=0.05,
                                    base_color="#a0d0ff")], floor="checkered"),
        "metallic torus": spec([_obj("torus", (0, 0, 0.15), metallic=1.0, roughness=0.2, base_color="#d4a040")]),
        "checkered floor": spec([_obj("cube", base_color="#c03020")], floor="checkered"),
        "emissive": spec([_obj("sphere", emission_strength=8.0, base_color="#40ff80"),
                          _obj("cube", (1.4, 0, 0.5), base_color="#ffffff")], rig="night"),
    }


def with_engine(spec: Any, engine: str, samples: int | None = None) -> Any:
    data = spec.to_json_dict()
    data["output"]["engine"] = engine
    if samples is not None:
        data["output"]["samples"] = samples
    return type(spec).model_validate(data)


def plain_cycles(samples: int) -> Callable[[Any], None]:
    """The settings before issue 13: N samples, automatic adaptive threshold, no denoising."""
    from slack_ai_addon.blender.render_settings import CyclesSettings, apply_cycles

    def configure(scene: Any) -> None:
        apply_cycles(scene, CyclesSettings(samples=samples, denoise=False))
    return configure


def reference_cycles(samples: int) -> Callable[[Any], None]:
    """Many samples, no adaptive sampling, and another seed: with the renders' own seed its first
    N samples would be the N-sample render's, and the plain render would score too well."""
    def configure(scene: Any) -> None:
        plain_cycles(samples)(scene)
        scene.cycles.use_adaptive_sampling = False
        scene.cycles.seed = REFERENCE_SEED
    return configure


def render_image(spec: Any, path: Path, configure: Callable[[Any], None] | None = None) -> tuple[float, Any]:
    """Build `spec`, apply the renderer's settings (then `configure`), render; (seconds, pixels)."""
    import numpy as np
    from PIL import Image

    from slack_ai_addon.blender import compat
    from slack_ai_addon.blender.builder import build_scene
    from slack_ai_addon.blender.renderer import configure_render, run_render_operator

    built = build_scene(spec, f"bench-{path.stem}")
    try:
        configure_render(built.scene, spec)
        if configure is not None:
            configure(built.scene)
        compat.set_still_format(built.scene, "PNG")
        built.scene.render.filepath = str(path)
        t = time.perf_counter()
        result = run_render_operator(built.scene, write_still=True)
        seconds = time.perf_counter() - t
    finally:
        built.cleanup()
    if "FINISHED" not in result or not path.exists():
        raise RuntimeError(f"render of {path.name} failed: {sorted(result)}")
    with Image.open(path) as img:
        return seconds, np.asarray(img.convert("RGB"), dtype=np.float64)


def psnr(a: Any, b: Any) -> float:
    mse = float(((a - b) ** 2).mean())
    return 99.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def reference(name: str, spec: Any, samples: int, work: Path) -> Any:
    """The many-sample reference of one scene, cached by Blender version, spec and samples."""
    import bpy
    import numpy as np
    from PIL import Image

    key = hashlib.sha256(json.dumps([bpy.app.version_string, spec.to_json_dict(), samples, REFERENCE_SEED],
                                    sort_keys=True).encode()).hexdigest()[:16]
    cached = CACHE / f"quality-ref-{key}.png"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        seconds, _ = render_image(spec, work / f"ref-{key}.png", reference_cycles(samples))
        print(f"  reference {name}: {samples} samples in {seconds:.1f} s", flush=True)
        (work / f"ref-{key}.png").replace(cached)
    with Image.open(cached) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64)


def measure_words(specs: dict[str, Any], refs: dict[str, Any], runs: int, work: Path,
                  words: dict[str, int]) -> dict[str, dict[str, dict[str, tuple[list[float], float]]]]:
    """{word: {'plain'|'preset': {scene: (times, psnr)}}}; plain and preset alternate per run."""
    out: dict[str, dict[str, dict[str, tuple[list[float], float]]]] = {}
    for word, samples in words.items():
        out[word] = {"plain": {}, "preset": {}}
        for name, spec in specs.items():
            s = with_engine(spec, "cycles", samples)
            times: dict[str, list[float]] = {"plain": [], "preset": []}
            score: dict[str, float] = {}
            for i in range(runs):
                for kind, configure in (("plain", plain_cycles(samples)), ("preset", None)):
                    seconds, img = render_image(s, work / f"{kind}-{word}-{i}.png", configure)
                    times[kind].append(seconds)
                    score[kind] = psnr(img, refs[name])  # deterministic seed: the same every run
            for kind in ("plain", "preset"):
                out[word][kind][name] = (times[kind], score[kind])
        print(f"  {word}: done", flush=True)
    return out


def other_engines(specs: dict[str, Any], refs: dict[str, Any], work: Path) -> dict[str, tuple[float, float] | str]:
    """Workbench and EEVEE: total seconds and mean PSNR over the scenes, or why not."""
    out: dict[str, tuple[float, float] | str] = {}
    for engine in ("workbench", "eevee"):
        total, scores = 0.0, []
        try:
            for name, spec in specs.items():
                seconds, img = render_image(with_engine(spec, engine), work / f"{engine}-{name}.png")
                total += seconds
                scores.append(psnr(img, refs[name]))
            out[engine] = (total, statistics.mean(scores))
        except Exception as exc:  # EEVEE needs a GPU context; headless bpy may have none
            out[engine] = f"not available here ({str(exc).splitlines()[0][:80]})"
    return out


def turntable(runs: int, frames: int | None, size: tuple[int, int] | None,
              variants: dict[str, Callable[[Any], None] | None]) -> tuple[Any, dict[str, list[float]]]:
    """The README's turntable through the real renderer: {variant: [render seconds per run]}."""
    import slack_ai_addon.blender.renderer as renderer_mod
    from slack_ai_addon.blender.renderer import BlenderSceneRenderer
    from slack_ai_addon.providers.offline import OfflineInterpreter

    spec = OfflineInterpreter().interpret(README_PROMPT).spec
    data = spec.to_json_dict()
    if frames:
        data["animation"]["frames"] = frames
    if size:
        data["output"]["width"], data["output"]["height"] = size
    spec = type(spec).model_validate(data)
    original = renderer_mod.configure_render
    times: dict[str, list[float]] = {k: [] for k in variants}
    try:
        for _ in range(runs):
            for name, extra in variants.items():
                def configure(scene: Any, s: Any, *, threads: int = 0, _extra: Any = extra) -> None:
                    original(scene, s, threads=threads)
                    if _extra is not None:
                        _extra(scene)
                renderer_mod.configure_render = configure  # type: ignore[assignment]
                with tempfile.TemporaryDirectory(prefix="bench-turntable-") as tmp:
                    result = BlenderSceneRenderer(save_blend=False).render(
                        spec, Path(tmp), job_id="bench-turntable", progress=lambda p: None, should_stop=lambda: "")
                times[name].append(result.timings["render_s"])
    finally:
        renderer_mod.configure_render = original  # type: ignore[assignment]
    return spec, times


def no_persistent(scene: Any) -> None:
    scene.render.use_persistent_data = False


def plain_animation(samples: int) -> Callable[[Any], None]:
    """The animation settings before issue 13: plain samples, no persistent data."""
    def configure(scene: Any) -> None:
        plain_cycles(samples)(scene)
        no_persistent(scene)
    return configure


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="96x72, one run, no other engines (CI)")
    ap.add_argument("--size", default="", help="WxH of the fixed scenes (default 320x240; --quick 96x72)")
    ap.add_argument("--runs", type=int, default=0, help="renders per setting (default 3; --quick 1)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    size = args.size or ("96x72" if args.quick else "320x240")
    width, height = (int(v) for v in size.lower().split("x"))
    runs = args.runs or (1 if args.quick else 3)
    ref_samples = REFERENCE_SAMPLES

    import bpy

    from slack_ai_addon.blender import compat, headless
    from slack_ai_addon.blender.render_settings import sample_fraction

    headless.prepare_module_mode()
    t0 = time.perf_counter()
    load_start = load_average()
    specs = scene_specs(width, height)
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        work = Path(tmp)
        refs = {name: reference(name, spec, ref_samples, work) for name, spec in specs.items()}
        words = measure_words(specs, refs, runs, work, QUALITY_WORDS)
        engines = other_engines(specs, refs, work) if not args.quick else {}
    if args.quick:
        tt_spec, tt = turntable(1, 4, (96, 72), {"preset": None, "plain": plain_animation(16)})
    else:
        tt_spec, tt = turntable(runs, None, None, {"preset": None, "plain": plain_animation(16),
                                                   "preset without persistent data": no_persistent})
    elapsed = time.perf_counter() - t0

    def total(word: str, kind: str) -> float:  # sum over scenes of the median time
        return sum(statistics.median(t) for t, _ in words[word][kind].values())

    rows: list[str] = []
    summary: list[tuple[str, str, str, bool | None]] = []
    for word, samples in QUALITY_WORDS.items():
        plain, preset = words[word]["plain"], words[word]["preset"]
        speedup = total(word, "plain") / total(word, "preset")
        worse = [n for n in specs if preset[n][1] < plain[n][1] - 0.05]
        for name in specs:
            rows.append(f"| {word} | {name} | {median_spread(plain[name][0])} s | {plain[name][1]:.1f} dB "
                        f"| {median_spread(preset[name][0])} s | {preset[name][1]:.1f} dB "
                        f"| {statistics.median(plain[name][0]) / statistics.median(preset[name][0]):.1f}x |")
        mean_plain = statistics.mean(p for _, p in plain.values())
        mean_preset = statistics.mean(p for _, p in preset.values())
        rows.append(f"| **{word}** | **all 5** | {total(word, 'plain'):.2f} s | {mean_plain:.1f} dB "
                    f"| {total(word, 'preset'):.2f} s | {mean_preset:.1f} dB | **{speedup:.1f}x** |")
        # Timing targets only at real sizes: at --quick's 96x72 fixed costs dominate.
        timed = word == "default" and not args.quick
        target = ">= 2x faster, no scene worse" if timed else "no scene worse"
        met = (speedup >= 2.0 if timed else True) and not worse
        summary.append((f"quality: {word} ({samples} samples asked) vs plain Cycles",
                        f"{speedup:.1f}x faster, PSNR {mean_preset:.1f} vs {mean_plain:.1f} dB"
                        + (f"; worse on {', '.join(worse)}" if worse else ""), target, met))
    mean = {w: statistics.mean(p for _, p in words[w]["preset"].values()) for w in QUALITY_WORDS}
    high_better = all(words["high"]["preset"][n][1] > words["default"]["preset"][n][1] for n in specs)
    summary.append(("quality: high closer to the reference than default (every scene)",
                    f"{mean['high']:.1f} vs {mean['default']:.1f} dB", "high > default", high_better))
    tt_frames, tt_w, tt_h = tt_spec.animation.frames, tt_spec.output.width, tt_spec.output.height
    tt_rows = [f"| {name} | {median_spread(v, '{:.1f}')} s |" for name, v in tt.items()]
    tt_preset = statistics.median(tt["preset"])
    summary.append((f"README turntable ({tt_frames} frames {tt_w}x{tt_h}, preset)",
                    f"{tt_preset:.1f} s (plain {statistics.median(tt['plain']):.1f} s)",
                    "< 20 s" if not args.quick else "", tt_preset < 20 if not args.quick else None))
    engine_rows = [f"| {e} | " + (f"{v[0]:.2f} s | {v[1]:.1f} dB |" if isinstance(v, tuple) else f"{v} | |")
                   for e, v in engines.items()]
    cmd = "bench/bench_quality.py" + (" --quick" if args.quick else "") + (f" --size {args.size}" if args.size else "")
    text = f"""{SECTION}

`.venv/bin/python {cmd}` (bpy {bpy.app.version_string}, OpenImageDenoise
{'built in' if compat.has_openimagedenoise() else 'missing'}; scenes {width}x{height}; references {ref_samples}
samples without adaptive sampling; times are the render call, median (min-max) of {runs} interleaved runs;
2 shared CPU cores, load average {load_start:.1f} at the start and {load_average():.1f} at the end;
ran {elapsed:.0f} s).
*plain* is N samples with adaptive sampling and no denoising (the settings before issue 13); *preset* is what
the renderer sets now: ceil(N x {sample_fraction(width * height)}) samples at this size and OpenImageDenoise with
albedo and normal passes (accurate prefilter from 64 samples asked, fast below and for animations),
blender/render_settings.py.

| quality word (N) | scene | plain time | plain PSNR | preset time | preset PSNR | speed-up |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Other engines (same scenes, total time and mean PSNR against the Cycles reference; they do not
path-trace, so they are fast previews, not the same picture):

| engine | time (5 scenes) | mean PSNR |
|---|---|---|
{chr(10).join(engine_rows) or '| (not run with --quick) | | |'}

README turntable ("{README_PROMPT}": {tt_frames} frames, {tt_w}x{tt_h}, {tt_spec.output.samples} samples
asked) through `BlenderSceneRenderer`, render time of all frames:

| settings | render time |
|---|---|
{chr(10).join(tt_rows)}
"""
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    emit_summary("quality", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
