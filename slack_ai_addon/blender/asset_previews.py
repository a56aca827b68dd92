"""Quick preview renders for assets whose file holds no preview image (the contact sheet
shows Blender's own asset previews when there are any). Main thread, within a time budget:
a small, low-sample Cycles render of the asset in a scene of its own, cleaned up like a job."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import bpy

from ..assets.index import AssetEntry, AssetIndex, preview_name
from ..core.scene_spec import SceneSpec, SpecError, parse_scene_spec
from .builder import build_scene
from .renderer import configure_render, run_render_operator

log = logging.getLogger(__name__)

PREVIEW_PX = 96
PREVIEW_SAMPLES = 8
RENDERABLE = ("object", "collection", "material", "world")


def preview_spec(entry: AssetEntry) -> SceneSpec:
    """A spec that shows one asset: objects framed by their bounds; materials on a sphere;
    worlds behind a grey sphere."""
    ref = {"name": entry.name, "library": entry.library, "type": entry.type}
    data: dict[str, Any] = {"floor": {"kind": "none"}, "world": {"kind": "color", "color": "#3a3d44"},
                            "output": {"engine": "cycles", "width": PREVIEW_PX, "height": PREVIEW_PX,
                                       "samples": PREVIEW_SAMPLES, "format": "png"}}
    if entry.type in ("object", "collection"):
        size = entry.size or (1.0, 1.0, 1.0)
        radius = max(0.05, 0.5 * math.sqrt(sum(v * v for v in size)))
        data["objects"] = [{"primitive": "asset", "asset": ref}]
        data["camera"] = {"look_at": {"x": 0.0, "y": 0.0, "z": size[2] / 2},
                          "orbit": {"distance": max(0.5, radius * 3.0), "elevation_deg": 20.0, "azimuth_deg": -60.0}}
    else:
        obj: dict[str, Any] = {"primitive": "sphere", "location": {"x": 0, "y": 0, "z": 0}}
        if entry.type == "material":
            obj["material"] = {"asset": ref}
        else:
            data["world"] = {"asset": ref}
        data["objects"] = [obj]
        data["camera"] = {"look_at": {"x": 0, "y": 0, "z": 0}, "orbit": {"distance": 2.6, "elevation_deg": 15.0}}
    return parse_scene_spec(data)[0]


def render_preview(entry: AssetEntry, path: Path) -> None:
    spec = preview_spec(entry)
    images_before = {img.as_pointer() for img in bpy.data.images}
    built = build_scene(spec, f"preview {entry.name}"[:40])
    try:
        configure_render(built.scene, spec)
        built.scene.render.filepath = str(path)
        built.scene.render.image_settings.file_format = "PNG"
        run_render_operator(built.scene, write_still=True)
    finally:
        built.cleanup()
        # Rendering makes a 'Render Result' image: ours, when it did not exist before.
        for img in [i for i in bpy.data.images if i.as_pointer() not in images_before]:
            try:
                bpy.data.images.remove(img)
            except (ReferenceError, RuntimeError):
                log.debug("could not remove image %s", img.name)


def render_missing_previews(index: AssetIndex, *, budget_s: float | None = None) -> int:
    """Render previews for assets without one; returns how many were made."""
    if index.previews_dir is None:
        return 0
    start = time.perf_counter()
    made = 0
    for entry in index.entries():
        if entry.preview or entry.type not in RENDERABLE or index.preview_failed(entry):
            continue
        if budget_s is not None and time.perf_counter() - start > budget_s:
            break
        name = preview_name(Path(entry.file), entry.type, entry.name)
        path = index.previews_dir / name
        try:
            render_preview(entry, path)
        except (SpecError, RuntimeError, OSError) as exc:
            log.warning("no preview for asset %s: %s", entry.name, exc)
            index.set_preview(entry, "", failed=True)
            continue
        if path.is_file():
            index.set_preview(entry, name)
            made += 1
    return made
