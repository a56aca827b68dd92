"""What a render costs before it runs, and the tier that bounds it.

`estimate_cost_s(spec)` is the CPU seconds a render of `spec` is expected to take on a
farm node: per frame, a fixed part plus a part per megapixel and, for the engines that
sample, per megapixel-sample, scaled by how much geometry and how much glass the rays
cross. The constants come from real renders with `bench/calibrate_cost.py` (see
docs/BENCHMARKS.md, "Cost model"); re-run it when the renderer or the farm's CPUs change.

`fit_to_tier(spec, max_cost_s)` brings a spec within a tier's budget, reducing in a fixed
order: samples, then resolution, then frames, then the number of objects, each no lower
than a floor that keeps the result worth looking at; if even the floors cost too much
the spec is refused (`CostRefused`). It also caps the spec's own time limit at the tier.

`CostPolicy` says which tier a requester gets. `JobPipeline.prepare` applies it to every
render after the spec is final (offline interpreter, LLM, thread edit, re-render in high
quality), and `submit` to the specs that are known before queueing: no path skips it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .scene_spec import Engine, SceneSpec, parse_scene_spec


@dataclass(frozen=True)
class EngineCoefficients:
    """Seconds per frame = frame_s + megapixels * (per_mpx_s + per_mpx_sample_s * samples * complexity)."""

    frame_s: float  # fixed: scene sync, writing the frame
    per_mpx_s: float  # independent of samples: film, denoising, saving
    per_mpx_sample_s: float  # path tracing / shading per sample, for the calibration scene (one cube)
    uses_samples: bool = True
    object_weight: float = 0.0  # extra complexity per object beyond the first
    glass_weight: float = 0.0  # extra complexity per transmissive object
    job_s: float = 0.0  # fixed once per job (EEVEE's shader compilation)


# Measured by bench/calibrate_cost.py on this project's 2-core build machine (bpy 5.2, CPU
# only, the renderer's denoised settings); docs/BENCHMARKS.md "Cost model" has the renders,
# the fits and which constants were set rather than fitted. Samples here are the samples
# Cycles renders (`CostInputs.cycles_samples`), not the ones asked for.
COEFFICIENTS: dict[Engine, EngineCoefficients] = {
    # per_mpx_s is mostly OpenImageDenoise with albedo and normal passes.
    Engine.CYCLES: EngineCoefficients(frame_s=0.05, per_mpx_s=5.0, per_mpx_sample_s=0.9,
                                      object_weight=0.03, glass_weight=0.018),
    # EEVEE needs a GPU context: on a CPU-only node it runs on software OpenGL and compiles
    # its shaders for every job (4.2-14.5 s for one 64x48 frame, measured, by the machine's
    # load). Only that render was measured; its per-pixel parts are set at Cycles' order.
    Engine.EEVEE: EngineCoefficients(job_s=8.0, frame_s=0.5, per_mpx_s=5.0, per_mpx_sample_s=0.2,
                                     object_weight=0.03, glass_weight=0.018),
    Engine.WORKBENCH: EngineCoefficients(frame_s=0.01, per_mpx_s=0.6, per_mpx_sample_s=0.0, uses_samples=False,
                                         object_weight=0.01),
}
BUILD_S = 0.05  # building the scene, once per job
GLASS_TRANSMISSION = 0.5  # a material at least this transmissive counts as glass

# Floors of the clamp: reductions stop here (or at the request's own value, when lower).
MIN_SAMPLES = 16
MIN_LONG_SIDE = 320
MIN_FRAMES = 12
MIN_OBJECTS = 1
MIN_TIME_LIMIT_S = 10.0


SampleRule = Callable[[int, int, bool], int]
"""(requested samples, pixels, animation) -> the samples Cycles really renders. The
renderer renders fewer than asked where it denoises (blender/render_settings.py); the
composition root (runtime.py) hands that rule in, so the estimate follows the renderer
without core importing blender."""


def as_requested(requested: int, pixels: int, animation: bool) -> int:
    """The rule where the renderer's is not known: every requested sample is rendered
    (an over-estimate where the renderer denoises with fewer)."""
    return requested


class CostRefused(ValueError):
    """Even the floors of every reduction are over the tier; `str()` is a user-facing message."""


def fmt_s(seconds: float) -> str:
    return f"{seconds:,.0f}" if seconds >= 10 else f"{seconds:.1f}"


def frames_of(spec: SceneSpec) -> int:
    return spec.animation.frames if spec.is_animation else 1


@dataclass(frozen=True)
class CostInputs:
    """The numbers the estimate depends on (what the clamp changes)."""

    engine: Engine
    width: int
    height: int
    samples: int
    frames: int
    objects: int
    glass: int
    animation: bool = False
    cycles_samples: SampleRule = as_requested

    @classmethod
    def of(cls, spec: SceneSpec, cycles_samples: SampleRule = as_requested) -> CostInputs:
        return cls(engine=spec.output.engine, width=spec.output.width, height=spec.output.height,
                   samples=spec.output.samples, frames=frames_of(spec), objects=len(spec.objects),
                   glass=sum(1 for o in spec.objects if o.material.transmission >= GLASS_TRANSMISSION),
                   animation=spec.is_animation, cycles_samples=cycles_samples)

    def seconds(self) -> float:
        c = COEFFICIENTS[self.engine]
        mpx = self.width * self.height / 1e6
        complexity = 1.0 + c.object_weight * max(0, self.objects - 1) + c.glass_weight * self.glass
        samples = 0
        if c.uses_samples:
            samples = self.samples
            if self.engine is Engine.CYCLES:
                samples = self.cycles_samples(self.samples, self.width * self.height, self.animation)
        per_frame = c.frame_s + mpx * (c.per_mpx_s + c.per_mpx_sample_s * samples * complexity)
        return BUILD_S + c.job_s + self.frames * per_frame


def estimate_cost_s(spec: SceneSpec, cycles_samples: SampleRule = as_requested) -> float:
    """Estimated CPU render seconds of the whole job."""
    return CostInputs.of(spec, cycles_samples).seconds()


@dataclass
class Fitted:
    spec: SceneSpec
    estimate_s: float
    reductions: list[str] = field(default_factory=list)  # "samples 4096 → 64", ...

    @property
    def changed(self) -> bool:
        return bool(self.reductions)


def _largest_fitting(low: int, high: int, fits: Callable[[int], bool]) -> int:
    """The largest n in [low, high] with fits(n), assuming fits is monotone (true up to some
    n); `low` when none fits. Binary search: every step is one estimate."""
    if fits(high):
        return high
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def fit_to_tier(spec: SceneSpec, max_cost_s: float, *, tier: str = "your",
                cycles_samples: SampleRule = as_requested) -> Fitted:
    """`spec` within `max_cost_s` estimated seconds, reduced in order samples → resolution →
    frames → objects, or `CostRefused`. The time limit is capped at the tier too.

    Each step takes the largest value that fits by binary search; where the cost is not
    monotone in a value (the renderer's sample fraction changes with the image size) the
    search may stop below the largest, but what it returns always fits or is the floor,
    and the final check refuses anything over the tier."""
    if not (isinstance(max_cost_s, (int, float)) and math.isfinite(max_cost_s) and max_cost_s > 0):
        raise ValueError(f"max_cost_s must be a positive number, not {max_cost_s!r}")
    x = CostInputs.of(spec, cycles_samples)
    reductions: list[str] = []

    def fits(candidate: CostInputs) -> bool:
        return candidate.seconds() <= max_cost_s

    if not fits(x) and COEFFICIENTS[x.engine].uses_samples:
        base = x
        n = _largest_fitting(min(x.samples, MIN_SAMPLES), x.samples, lambda v: fits(replace(base, samples=v)))
        if n != x.samples:
            reductions.append(f"samples {x.samples} → {n}")
            x = replace(x, samples=n)

    if not fits(x):
        base = x
        long_side = max(x.width, x.height)

        def scaled(side: int) -> CostInputs:
            k = side / long_side
            return replace(base, width=max(16, min(base.width, int(base.width * k))),
                           height=max(16, min(base.height, int(base.height * k))))

        side = _largest_fitting(min(long_side, MIN_LONG_SIDE), long_side, lambda v: fits(scaled(v)))
        if side != long_side:
            x = scaled(side)
            reductions.append(f"resolution {base.width}x{base.height} → {x.width}x{x.height}")

    if not fits(x) and spec.is_animation:
        base = x
        n = _largest_fitting(max(2, min(x.frames, MIN_FRAMES)), x.frames, lambda v: fits(replace(base, frames=v)))
        if n != x.frames:
            reductions.append(f"frames {x.frames} → {n}")
            x = replace(x, frames=n)

    kept = spec.objects
    if not fits(x) and len(kept) > MIN_OBJECTS:
        glass_before = [0]
        for o in kept:
            glass_before.append(glass_before[-1] + (o.material.transmission >= GLASS_TRANSMISSION))
        base = x
        n = _largest_fitting(MIN_OBJECTS, len(kept),
                             lambda v: fits(replace(base, objects=v, glass=glass_before[v])))
        if n != len(kept):
            reductions.append(f"objects {len(kept)} → {n}")
            x = replace(x, objects=n, glass=glass_before[n])
            kept = kept[:n]

    estimate = x.seconds()
    if estimate > max_cost_s:
        raise CostRefused(
            f"This scene is too expensive for {tier} render budget: even reduced "
            f"({', '.join(reductions) or 'nothing left to reduce'}) it is estimated at {fmt_s(estimate)} s of CPU, "
            f"over the {fmt_s(max_cost_s)} s limit. Ask for fewer objects, frames or pixels, or ask an admin.")

    limit = spec.output.time_limit_s
    capped = max(min(limit, max_cost_s), min(limit, MIN_TIME_LIMIT_S))
    if capped < limit:
        reductions.append(f"time limit {limit:g} s → {capped:g} s")
    if reductions:
        data = spec.to_json_dict()
        data["output"].update(samples=x.samples, width=x.width, height=x.height, time_limit_s=float(capped))
        if spec.is_animation:
            data["animation"]["frames"] = x.frames
        data["objects"] = data["objects"][:len(kept)]
        spec = SceneSpec.model_validate(data)
    return Fitted(spec=spec, estimate_s=estimate, reductions=reductions)


def fit_spec_data(data: Any, max_cost_s: float, *, tier: str = "your",
                  cycles_samples: SampleRule = as_requested) -> Fitted:
    """Untrusted spec data (an LLM's answer, a stored spec) parsed, clamped to the spec's
    bounds and then to the tier: the one function every spec goes through before a render.
    Raises SpecError for data that is not a spec, CostRefused when it cannot fit."""
    spec, _warnings = parse_scene_spec(data)
    return fit_to_tier(spec, max_cost_s, tier=tier, cycles_samples=cycles_samples)


@dataclass(frozen=True)
class CostPolicy:
    """Which budget a requester gets. Slack users are in the user tier unless they are
    admins; local requests (the CLI, the Blender panel) come from the machine's operator
    and get the admin tier."""

    user_max_cost_s: float = 300.0
    admin_max_cost_s: float = 7200.0
    admins: frozenset[str] = frozenset()
    cycles_samples: SampleRule = as_requested  # the renderer's rule, from the composition root

    @classmethod
    def from_settings(cls, settings: Any, cycles_samples: SampleRule = as_requested) -> CostPolicy:
        return cls(user_max_cost_s=float(settings.user_max_cost_s), admin_max_cost_s=float(settings.admin_max_cost_s),
                   admins=frozenset(settings.admins), cycles_samples=cycles_samples)

    def is_admin_tier(self, source: str, user_id: str) -> bool:
        return source != "slack" or user_id in self.admins

    def tier(self, source: str, user_id: str) -> tuple[str, float]:
        """(name for messages, max estimated seconds)."""
        if self.is_admin_tier(source, user_id):
            return "the admin", self.admin_max_cost_s
        return "your", self.user_max_cost_s

    def fit(self, spec: SceneSpec, source: str, user_id: str) -> Fitted:
        name, limit = self.tier(source, user_id)
        return fit_to_tier(spec, limit, tier=name, cycles_samples=self.cycles_samples)

    def estimate(self, spec: SceneSpec) -> float:
        return estimate_cost_s(spec, self.cycles_samples)


def describe_fit(fitted: Fitted, max_cost_s: float) -> str:
    """The note a clamped job carries (shown with its result)."""
    return (f"scaled down to fit the render budget ({fmt_s(max_cost_s)} s of CPU): "
            + ", ".join(fitted.reductions))
