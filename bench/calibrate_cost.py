"""Calibrate the render cost model (`slack_ai_addon/core/cost.py`) against real renders (not a test).

    .venv/bin/python bench/calibrate_cost.py [--repeat 2]

Renders a few tiny scenes with the real `BlenderSceneRenderer` (bpy, CPU) and fits the
model's constants by least squares:

1. Cycles, one cube, 160x120 to 640x480 at 32 and 128 samples (the sizes and qualities
   requests get; drafts of 8 samples or fewer use the cheaper FAST denoiser prefilter, so
   the model over-estimates them a little): the fixed part per frame,
   the part per megapixel and the part per megapixel-sample. The samples are the ones
   Cycles really renders (`blender/render_settings.py` renders a fraction of the requested
   samples and denoises), the same rule `runtime.renderer_sample_rule` gives the estimate.
2. Cycles with 8/24 opaque objects: the weight of each object beyond the first.
3. Cycles with 4/12 glass spheres (transmission 1) in front: the weight of each glass object.
4. Workbench at three resolutions: fixed part and part per megapixel (it does not sample).
5. EEVEE once, to see whether it runs here at all (it needs a GPU context).
6. Validation (`--validate` runs only this): requests as users type them, through the
   offline interpreter (checkered floor, studio lights, 640x480 and bigger), each rendered
   after a warm-up render, against the estimate with the constants in cost.py.

Each scene is rendered `--repeat` times and the fastest is kept: the machine is shared,
and the slowest runs measure the neighbours. Prints the fitted constants, the renders and
how well the fitted model predicts each; the numbers go into docs/BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def spec_data(*, engine: str, width: int, height: int, samples: int, cubes: int = 1, glass: int = 0) -> dict[str, Any]:
    # Cubes on a grid centred on the camera's look-at point; glass spheres in a row in front
    # of them (between the camera and the cubes), so rays cross the glass.
    objects: list[dict[str, Any]] = []
    for i in range(cubes):
        objects.append({"primitive": "cube", "location": {"x": (i % 5) * 1.1 - 2.2 * (cubes > 1),
                                                          "y": (i // 5) * 1.1, "z": 0.5},
                        "scale": {"x": 0.4, "y": 0.4, "z": 0.4}})
    for i in range(glass):
        objects.append({"primitive": "sphere", "location": {"x": (i % 6) * 0.8 - 2.0, "y": -1.5 - (i // 6) * 0.8,
                                                            "z": 0.6},
                        "scale": {"x": 0.45, "y": 0.45, "z": 0.45},
                        "material": {"base_color": "#ffffff", "transmission": 1.0, "roughness": 0.0}})
    return {"objects": objects, "output": {"engine": engine, "width": width, "height": height, "samples": samples,
                                           "format": "png"}}


def render_s(renderer: Any, data: dict[str, Any], repeat: int) -> float:
    from slack_ai_addon.core.pipeline import drive
    from slack_ai_addon.core.scene_spec import parse_scene_spec

    spec, _ = parse_scene_spec(data)
    best = float("inf")
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="slackai-cost-") as tmp:
            result = drive(renderer.render_steps(spec, Path(tmp), job_id="calibrate", progress=lambda p: None,
                                                 should_stop=lambda: ""))
            best = min(best, float(result.timings["render_s"]))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--validate", action="store_true", help="only step 6: the model against everyday requests")
    args = ap.parse_args()
    if args.validate:
        return validate()

    import bpy
    import numpy as np

    from slack_ai_addon.blender.renderer import BlenderSceneRenderer
    from slack_ai_addon.core import cost
    from slack_ai_addon.core.scene_spec import Engine, parse_scene_spec
    from slack_ai_addon.runtime import renderer_sample_rule

    rendered = renderer_sample_rule(True)

    renderer = BlenderSceneRenderer(save_blend=False)
    started = time.perf_counter()
    print(f"bpy {bpy.app.version_string}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    rows: list[tuple[str, dict[str, Any], float]] = []

    # 1. Cycles base
    base = []
    for (w, h) in ((160, 120), (320, 240), (640, 480)):
        for s in (32, 128):
            data = spec_data(engine="cycles", width=w, height=h, samples=s)
            t = render_s(renderer, data, args.repeat)
            base.append((w * h / 1e6, rendered(s, w * h, False), t))
            rows.append((f"cycles {w}x{h} {s} samples ({rendered(s, w * h, False)} rendered), 1 cube", data, t))
    a = np.array([[1.0, mpx, mpx * s] for mpx, s, _ in base])
    y = np.array([t for *_, t in base])
    frame_s, per_mpx_s, per_mpx_sample_s = (max(0.0, float(v)) for v in np.linalg.lstsq(a, y, rcond=None)[0])

    def sampled_part(mpx: float, t: float) -> float:
        return (t - frame_s - mpx * per_mpx_s) / (mpx * per_mpx_sample_s * s_rendered)

    # 2. objects, 3. glass (320x240, 512 samples requested: sampling dominates the denoiser there)
    w, h, s_fixed = 320, 240, 512
    s_rendered = rendered(s_fixed, w * h, False)
    mpx = w * h / 1e6
    obj_w = []
    for n in (8, 24):
        data = spec_data(engine="cycles", width=w, height=h, samples=s_fixed, cubes=n)
        t = render_s(renderer, data, args.repeat)
        rows.append((f"cycles {w}x{h} {s_fixed} samples, {n} cubes", data, t))
        obj_w.append(max(0.0, (sampled_part(mpx, t) - 1.0) / (n - 1)))
    object_weight = float(np.mean(obj_w))
    glass_w = []
    for g in (4, 12):
        data = spec_data(engine="cycles", width=w, height=h, samples=s_fixed, cubes=1, glass=g)
        t = render_s(renderer, data, args.repeat)
        rows.append((f"cycles {w}x{h} {s_fixed} samples, 1 cube + {g} glass spheres", data, t))
        glass_w.append(max(0.0, (sampled_part(mpx, t) - 1.0 - object_weight * g) / g))
    glass_weight = float(np.mean(glass_w))

    # 4. Workbench
    wb = []
    for (w2, h2) in ((64, 48), (256, 192), (512, 384)):
        data = spec_data(engine="workbench", width=w2, height=h2, samples=1)
        t = render_s(renderer, data, args.repeat)
        wb.append((w2 * h2 / 1e6, t))
        rows.append((f"workbench {w2}x{h2}", data, t))
    wa = np.array([[1.0, m] for m, _ in wb])
    wb_frame_s, wb_per_mpx_s = (max(0.0, float(v)) for v in np.linalg.lstsq(wa, np.array([t for _, t in wb]),
                                                                             rcond=None)[0])

    # 5. EEVEE: does it run here?
    try:
        data = spec_data(engine="eevee", width=64, height=48, samples=16)
        t = render_s(renderer, data, 1)
        rows.append(("eevee 64x48 16 samples, 1 cube", data, t))
        eevee = f"{t:.3f} s"
    except Exception as exc:  # no GPU context: say so rather than fail the calibration
        eevee = f"did not run ({type(exc).__name__}: {str(exc)[:120]})"

    print("\nFitted constants:")
    print(f"  cycles:    frame_s={frame_s:.4f} per_mpx_s={per_mpx_s:.4f} per_mpx_sample_s={per_mpx_sample_s:.4f} "
          f"object_weight={object_weight:.4f} glass_weight={glass_weight:.4f}")
    print(f"  workbench: frame_s={wb_frame_s:.4f} per_mpx_s={wb_per_mpx_s:.4f}")
    print(f"  eevee:     {eevee}")
    print("\n| render | measured s | model now s |")
    print("|---|---|---|")
    for label, data, t in rows:
        spec, _ = parse_scene_spec(data)
        print(f"| {label} | {t:.3f} | {cost.estimate_cost_s(spec, rendered) - cost.BUILD_S:.3f} |")
    worst = spec_data(engine="cycles", width=4096, height=4096, samples=4096, cubes=0, glass=50)
    worst["animation"] = {"kind": "turntable", "frames": 600, "fps": 24}
    worst_spec, _ = parse_scene_spec(worst)
    print(f"\nworst case (50 glass spheres, 4096x4096, 4096 samples, 600 frames): "
          f"{cost.estimate_cost_s(worst_spec, rendered):,.0f} s estimated with the constants in cost.py")
    print(f"engines in cost.py: {[e.value for e in Engine]}; calibration took {time.perf_counter() - started:.0f} s, "
          f"load average now {os.getloadavg()[0]:.2f}")
    return 0


VALIDATION = ("a red cube on a checkered floor", "a red cube on a checkered floor at 640x480 with 128 samples",
              "a red cube on a checkered floor at 1280x960",
              "a glass sphere and a red cube at 1280x720 with 128 samples", "a red cube rotating")


def validate() -> int:
    from slack_ai_addon.blender.renderer import BlenderSceneRenderer
    from slack_ai_addon.core import cost
    from slack_ai_addon.core.pipeline import drive
    from slack_ai_addon.providers.offline.interpreter import OfflineInterpreter
    from slack_ai_addon.runtime import renderer_sample_rule

    rendered = renderer_sample_rule(True)
    renderer = BlenderSceneRenderer(save_blend=False)
    interpreter = OfflineInterpreter()
    print("| request | size, samples, frames | measured render_s | estimate | load |")
    print("|---|---|---|---|---|")
    for i, text in enumerate(("a cube", *VALIDATION)):  # the first warms Cycles and the denoiser up
        spec = interpreter.interpret(text).spec
        with tempfile.TemporaryDirectory(prefix="slackai-cost-") as tmp:
            result = drive(renderer.render_steps(spec, Path(tmp), job_id="validate", progress=lambda p: None,
                                                 should_stop=lambda: ""))
        if i:
            out = spec.output
            print(f"| {text} | {out.width}x{out.height}, {out.samples}, {cost.frames_of(spec)} | "
                  f"{result.timings['render_s']:.2f} s | {cost.estimate_cost_s(spec, rendered):.2f} s | "
                  f"{os.getloadavg()[0]:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
