"""Spec and pixel helpers for the real-bpy tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import bpy
from PIL import Image

from slack_ai_addon.core.scene_spec import SceneSpec


def datablock_counts() -> dict[str, int]:
    """len() of every ID collection in bpy.data (not 5.2's `all_ids`, which sums the others)."""
    counts = {}
    for name in dir(bpy.data):
        if name.startswith("_") or name in ("bl_rna", "rna_type", "filepath", "all_ids"):
            continue
        coll = getattr(bpy.data, name, None)
        if isinstance(coll, bpy.types.bpy_prop_collection):
            counts[name] = len(coll)
    return counts


# The base for test specs: tiny and quick (64x48, Workbench unless the test needs Cycles).
BASE_SPEC: dict[str, Any] = {
    "objects": [{"primitive": "cube", "location": {"x": 0, "y": 0, "z": 0.5}}],
    "camera": {"orbit": {"distance": 4.5, "elevation_deg": 25, "azimuth_deg": -45}},
    "output": {"engine": "workbench", "width": 64, "height": 48, "samples": 4, "format": "png"},
}


def make_spec(**overrides: Any) -> SceneSpec:
    """BASE_SPEC with top-level sections replaced or merged (dicts merge one level deep)."""
    data = copy.deepcopy(BASE_SPEC)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return SceneSpec.model_validate(data)



def load_rgb(path: str | Path) -> list[tuple[int, int, int]]:
    with Image.open(path) as img:
        rgb = img.convert("RGB")
        return [rgb.getpixel((x, y)) for y in range(rgb.height) for x in range(rgb.width)]  # type: ignore[misc]


def count_pixels(pixels: list[tuple[int, int, int]], channel: str, *, min_level: int = 120,
                 dominance: int = 60) -> int:
    """Pixels where `channel` (r, g or b) is bright and beats both others by `dominance`."""
    idx = "rgb".index(channel)
    n = 0
    for px in pixels:
        others = [px[i] for i in range(3) if i != idx]
        if px[idx] >= min_level and all(px[idx] - o >= dominance for o in others):
            n += 1
    return n


def luminance(px: tuple[int, int, int]) -> float:
    return 0.2126 * px[0] + 0.7152 * px[1] + 0.0722 * px[2]


def spread(pixels: list[tuple[int, int, int]]) -> float:
    """Max minus min luminance: 0 for a blank (single-colour) image."""
    lum = [luminance(p) for p in pixels]
    return max(lum) - min(lum)


def gif_frame_count(gif: Any) -> int:
    """Frames a GIF plays, counting merged ones: Pillow's writer folds a frame identical to the
    one before into that frame's duration (a cube turning in 90-degree steps can render two
    identical frames), so `n_frames` alone may be smaller than the frames rendered."""
    durations = []
    for i in range(gif.n_frames):
        gif.seek(i)
        durations.append(int(gif.info.get("duration") or 0))
    shortest = min(durations)
    return round(sum(durations) / shortest) if shortest else gif.n_frames
