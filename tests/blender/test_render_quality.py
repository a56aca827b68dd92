"""The render settings by their effect on pixels (blender/render_settings.py).

Tiny versions (64x48) of bench/bench_quality.py's fixed scenes, scored by PSNR against a
many-sample reference of the same scene: the default quality is at least as close to the
reference as plain 32-sample Cycles (the settings before issue 13), "high" is closer than
the default, and denoising really runs (the noise on a flat patch of floor drops).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_quality import (  # noqa: E402
    plain_cycles,
    psnr,
    reference_cycles,
    render_image,
    scene_specs,
)

from slack_ai_addon.blender import compat  # noqa: E402
from slack_ai_addon.blender.render_settings import CyclesSettings, apply_cycles  # noqa: E402

pytestmark = pytest.mark.skipif(not compat.has_openimagedenoise(), reason="this Cycles has no OpenImageDenoise")

W, H = 64, 48
REFERENCE_SAMPLES = 256  # another seed than the renders (bench_quality.reference_cycles)
DEFAULT, HIGH = 32, 128  # the samples the quality words ask for (providers/offline/parse.py)


def _with_samples(spec: Any, samples: int) -> Any:
    data = spec.to_json_dict()
    data["output"]["samples"] = samples
    return type(spec).model_validate(data)


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    """{scene: {'plain32' | 'default' | 'high': PSNR against the reference}}."""
    work = tmp_path_factory.mktemp("quality")
    out: dict[str, dict[str, float]] = {}
    for name, spec in scene_specs(W, H).items():
        slug = name.replace(" ", "_")
        _, ref = render_image(spec, work / f"{slug}-ref.png", reference_cycles(REFERENCE_SAMPLES))
        _, plain = render_image(_with_samples(spec, DEFAULT), work / f"{slug}-plain.png", plain_cycles(DEFAULT))
        _, default = render_image(_with_samples(spec, DEFAULT), work / f"{slug}-default.png")
        _, high = render_image(_with_samples(spec, HIGH), work / f"{slug}-high.png")
        out[name] = {"plain32": psnr(plain, ref), "default": psnr(default, ref), "high": psnr(high, ref)}
    print({n: {k: round(v, 1) for k, v in s.items()} for n, s in out.items()})
    return out


def test_default_is_at_least_as_close_to_the_reference_as_plain_32_samples(
        scores: dict[str, dict[str, float]]) -> None:
    mean = {k: statistics.mean(s[k] for s in scores.values()) for k in ("plain32", "default")}
    assert mean["default"] >= mean["plain32"], scores
    for name, s in scores.items():  # and no scene clearly worse (0.5 dB: tiny images, few pixels)
        assert s["default"] >= s["plain32"] - 0.5, (name, scores)


def test_high_is_closer_to_the_reference_than_default(scores: dict[str, dict[str, float]]) -> None:
    mean = {k: statistics.mean(s[k] for s in scores.values()) for k in ("default", "high")}
    assert mean["high"] > mean["default"] + 1.0, scores
    for name, s in scores.items():
        assert s["high"] >= s["default"], (name, scores)


def test_denoising_lowers_the_noise_on_a_flat_floor(tmp_path: Path) -> None:
    spec = _with_samples(scene_specs(W, H)["matte cube"], 8)  # a plain grey floor fills the bottom rows
    settings = {"denoised": None,
                "not denoised": lambda scene: apply_cycles(scene, CyclesSettings(
                    samples=scene.cycles.samples, denoise=False))}
    noise = {}
    for label, configure in settings.items():
        _, img = render_image(spec, tmp_path / f"{label}.png", configure)
        patch = img[-8:, 4:20].mean(axis=2)  # bottom-left floor, away from the cube and its shadow
        # Noise = what is left after the smooth light falloff: difference to the patch's row means.
        noise[label] = float(np.std(patch - patch.mean(axis=1, keepdims=True)))
    assert noise["denoised"] < 0.5 * noise["not denoised"], noise


def test_render_threads_reach_the_scene() -> None:
    from slack_ai_addon.blender.builder import build_scene
    from slack_ai_addon.blender.renderer import configure_render

    spec = scene_specs(W, H)["matte cube"]
    built = build_scene(spec, "threads")
    try:
        configure_render(built.scene, spec, threads=1)
        assert (built.scene.render.threads_mode, built.scene.render.threads) == ("FIXED", 1)
        configure_render(built.scene, spec, threads=0)
        assert built.scene.render.threads_mode == "AUTO"
    finally:
        built.cleanup()
