"""Render settings per engine and quality level, chosen by measurement (bench/bench_quality.py).

`spec.output.samples` is the quality asked for, in plain path-tracing samples: the
interpreter's quality words set it (draft 8, default 32, animation previews 16, high 128,
ultra 512). Where Cycles has OpenImageDenoise, the renderer reaches at least that quality
with a quarter of the samples (more on small images) plus denoising: on the benchmark
scenes (matte cube, glass spheres, metallic torus, checkered floor, emissive sphere) the
denoised image is closer to a 512-sample reference than the plain N-sample image, in less
than half the time (docs/BENCHMARKS.md, "Quality per second"). Without
OpenImageDenoise (Debian's Blender 3.4) the samples are rendered as asked.

Everything here is plain data plus one function that applies it; nothing is looked up by
Blender version (compat.py detects features).
"""

from __future__ import annotations

import ctypes.util
import math
import os
import sys
from dataclasses import dataclass
from typing import Any

# Denoised renders take a fraction of the requested samples that depends on the image size:
# OpenImageDenoise needs pixels around each feature, so it gains most on large images.
# bench_quality.py, PSNR against 512-sample references (another seed):
# - 320x240: a quarter (even an eighth) of the samples plus denoising beats the plain render
#   on every scene at 8, 32 and 128 samples (default: 43.1 vs 37.4 dB mean, glass 35.1 vs 31.2);
# - 160x120: half the samples wins everywhere; a quarter ties on the metallic torus;
# - 64x48 and 96x72: half wins at 32 samples but loses at 128 on glass and the checkered
#   floor, so tiny images keep all their samples and are denoised.
# (pixels below, fraction of the requested samples); larger images get DENOISED_SAMPLE_FRACTION.
SIZE_FRACTIONS: tuple[tuple[int, float], ...] = ((10_000, 1.0), (40_000, 0.5))
DENOISED_SAMPLE_FRACTION = 0.25
MIN_DENOISED_SAMPLES = 2
# OIDN's ACCURATE prefilter denoises the albedo and normal guides before the image; FAST uses
# them as rendered. At 320x240 ACCURATE cost about as much as the 8 samples of a default
# render (default, 5 scenes: 8 samples ACCURATE 8.3 s, 43.1 dB; plain 32 samples 15.3 s,
# 37.4 dB; 8 samples FAST about half the ACCURATE time at 41.8 dB, every scene still above
# the plain render). So FAST below ACCURATE_FROM_SAMPLES requested samples and for animation
# frames (time per frame matters most); ACCURATE for "high" and above, where sampling costs
# more than the prefilter and the extra ~1 dB is what was asked for.
ACCURATE_FROM_SAMPLES = 64
# Bounces stay at Blender's defaults (12 in all, 12 through glass, 4 diffuse, 4 glossy):
# lower limits (4 in all, 2 diffuse, 2 glossy, 8 transmission) measured neither faster nor
# different on the benchmark scenes at 160x120, and glass needs the transmission bounces to
# show what is behind it (two glass spheres: 4 surfaces on the straight path alone).


@dataclass(frozen=True)
class CyclesSettings:
    samples: int
    denoise: bool
    input_passes: str = "RGB_ALBEDO_NORMAL"  # OIDN guided by albedo and normal passes
    prefilter: str = "ACCURATE"  # ACCURATE denoises the guide passes too (noisy at low samples)
    adaptive_threshold: float = 0.0  # 0: Blender's automatic threshold from the sample count
    max_bounces: int = 12
    diffuse_bounces: int = 4
    glossy_bounces: int = 4
    transmission_bounces: int = 12
    transparent_max_bounces: int = 8


def sample_fraction(pixels: int) -> float:
    """The fraction of the requested samples a denoised render of `pixels` pixels takes."""
    for below, fraction in SIZE_FRACTIONS:
        if pixels < below:
            return fraction
    return DENOISED_SAMPLE_FRACTION


def cycles_settings(requested_samples: int, *, oidn: bool, pixels: int = 640 * 480,
                    animation: bool = False) -> CyclesSettings:
    """What Cycles renders for `requested_samples` of an image of `pixels` (see the module docstring)."""
    if not oidn:
        return CyclesSettings(samples=requested_samples, denoise=False)
    samples = max(MIN_DENOISED_SAMPLES, math.ceil(requested_samples * sample_fraction(pixels)))
    samples = min(samples, requested_samples)
    prefilter = "ACCURATE" if requested_samples >= ACCURATE_FROM_SAMPLES and not animation else "FAST"
    return CyclesSettings(samples=samples, denoise=True, prefilter=prefilter)


# Driver libraries Cycles' GPU backends load (CUDA/OptiX, HIP, oneAPI's Level Zero).
_GPU_DRIVER_LIBRARIES = ("cuda", "nvcuda", "amdhip64", "ze_loader")


def gpu_drivers_present() -> bool:
    """Whether any GPU driver library is installed (Metal always is on macOS). Without one,
    whatever makes Cycles list its devices only logs a "... initialization failed" warning
    per backend on stdout, which users of `render` would read as a failure."""
    if sys.platform == "darwin":
        return True
    return any(ctypes.util.find_library(name) for name in _GPU_DRIVER_LIBRARIES)


def apply_cycles(scene: Any, settings: CyclesSettings) -> None:
    """Set `settings` on a scene whose engine is Cycles (CPU). Attributes a build lacks are skipped."""
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = settings.samples
    if hasattr(cycles, "preview_samples"):
        cycles.preview_samples = min(settings.samples, 16)
    if hasattr(cycles, "use_adaptive_sampling"):
        cycles.use_adaptive_sampling = True
        cycles.adaptive_threshold = settings.adaptive_threshold
    for name in ("max_bounces", "diffuse_bounces", "glossy_bounces", "transmission_bounces",
                 "transparent_max_bounces"):
        if hasattr(cycles, name):
            setattr(cycles, name, getattr(settings, name))
    cycles.use_denoising = settings.denoise
    view_layer_cycles = getattr(scene.view_layers[0], "cycles", None)
    if view_layer_cycles is not None and hasattr(view_layer_cycles, "use_denoising"):
        view_layer_cycles.use_denoising = settings.denoise
    if not settings.denoise:
        return
    # Reading or setting `denoiser` makes Cycles list its GPU devices, which logs a "CUEW
    # initialization failed" warning on stdout where no GPU driver is installed. A new scene's
    # denoiser already is OpenImageDenoise, and without a GPU driver it is the only one: set
    # it only where a driver could offer another (OptiX).
    choices: list[tuple[str, Any]] = [("denoiser", "OPENIMAGEDENOISE")] if gpu_drivers_present() else []
    choices += [("denoising_input_passes", settings.input_passes), ("denoising_prefilter", settings.prefilter),
                ("denoising_use_gpu", False)]
    for name, value in choices:
        if hasattr(cycles, name):
            try:
                setattr(cycles, name, value)
            except (TypeError, ValueError):  # an enum item this build does not have
                pass


# ------------------------------------------------------------------------------ threads

# Leaving a core to the Slack agent costs 1/cores of the render throughput. The automatic
# setting leaves one only where that loss is at most 1/AUTO_MIN_CORES (bench_ack_process.py
# measured the loss on 2 cores: ~45%, far above the 10% allowed; see docs/BENCHMARKS.md).
AUTO_MIN_CORES = 10


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class RenderThreads:
    """The render-thread policy: `setting` from Settings.render_threads (0 = automatic).

    `agent_attached` is set by the runtime when a Slack agent runs in this process.
    `threads()` is what goes into `scene.render.threads` (0 = Blender's own choice: all cores).
    """

    setting: int = 0
    agent_attached: bool = False

    def threads(self, cores: int | None = None) -> int:
        if self.setting > 0:
            return self.setting
        cores = cores or cpu_count()
        if self.agent_attached and cores >= AUTO_MIN_CORES:
            return cores - 1
        return 0


def apply_threads(scene: Any, threads: int) -> None:
    """FIXED with `threads`, or AUTO (all cores) for 0."""
    r = scene.render
    if threads > 0:
        r.threads_mode = "FIXED"
        r.threads = threads
    else:
        r.threads_mode = "AUTO"
