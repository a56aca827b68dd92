"""Reading asset libraries with bpy: the marked assets of a .blend, their bounds and previews.

Files are opened into a temporary `Main` (`bpy.data.temp_data()`), linked with
`libraries.load(..., link=True, assets_only=True)`, read, and dropped with it: the user's
data never sees them, and nothing in them runs. Linking never executes a file's text blocks
(registered or not) or its startup scripts; those run only when a file is *opened* with Auto
Run on, and temporary data is never evaluated, so driver expressions do not run either.
docs/ASSETS.md has the rules.

Main thread only, like all bpy use.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import bpy
from mathutils import Vector

from ..assets import service
from ..assets.index import AssetIndex, RefreshReport, preview_name

log = logging.getLogger(__name__)

# Our asset types -> the `bpy.data` collection names libraries.load uses.
DATA_ATTRS = {"object": "objects", "collection": "collections", "material": "materials", "world": "worlds",
              "node_group": "node_groups"}
PREVIEW_MAX = 256


def preference_libraries() -> list[tuple[str, str]]:
    """Blender's own asset libraries (Preferences > File Paths): (name, folder)."""
    try:
        return [(lib.name, bpy.path.abspath(lib.path)) for lib in bpy.context.preferences.filepaths.asset_libraries]
    except (AttributeError, RuntimeError):  # restricted context during registration, or very old Blender
        return []


def evaluated_matrix(obj: Any) -> Any:
    """The object's world matrix from its own transform and its parents' (what a render will
    use). `matrix_world` is not it: for an object no scene ever evaluated (a library asset
    saved with `libraries.write`), it is whatever was stored, often the identity."""
    m = obj.matrix_basis.copy()
    child, parent, depth = obj, obj.parent, 0
    while parent is not None and depth < 64:
        m = parent.matrix_basis @ child.matrix_parent_inverse @ m
        child, parent, depth = parent, parent.parent, depth + 1
    return m


def world_bounds(objects: Any, offset: Vector | None = None) -> list[float] | None:
    """[minx, miny, minz, maxx, maxy, maxz] of objects in their world space (minus
    `offset`, a collection's instance offset). Mesh vertices where there are any (exact, and
    needs no depsgraph), else the object's bounding box; empties count as nothing."""
    lo = [float("inf")] * 3
    hi = [float("-inf")] * 3
    for obj in objects:
        m = evaluated_matrix(obj)
        points: list[Any]
        if obj.type == "MESH" and obj.data is not None and len(obj.data.vertices):
            points = [m @ v.co for v in obj.data.vertices]
        elif obj.type in ("CURVE", "SURFACE", "FONT", "META", "VOLUME", "POINTCLOUD", "CURVES", "GREASEPENCIL"):
            points = [m @ Vector(c) for c in obj.bound_box]
        else:
            continue
        for p in points:
            for k in range(3):
                lo[k] = min(lo[k], p[k])
                hi[k] = max(hi[k], p[k])
    if lo[0] == float("inf"):
        return None
    if offset is not None:
        lo = [lo[k] - offset[k] for k in range(3)]
        hi = [hi[k] - offset[k] for k in range(3)]
    return [round(v, 5) for v in (*lo, *hi)]


def id_bounds(idblock: Any, asset_type: str) -> list[float] | None:
    if asset_type == "object":
        return world_bounds([idblock])
    if asset_type == "collection":
        return world_bounds(idblock.all_objects, Vector(idblock.instance_offset))
    return None


def _save_preview(idblock: Any, path: Path) -> bool:
    """The ID's stored preview image as a PNG; False when it has none."""
    preview = getattr(idblock, "preview", None)
    if preview is None:
        return False
    w, h = preview.image_size[:]
    if w <= 0 or h <= 0 or w > 4096 or h > 4096:
        return False
    from PIL import Image

    pixels = list(preview.image_pixels_float)
    if len(pixels) != w * h * 4:
        return False
    data = bytes(max(0, min(255, round(v * 255))) for v in pixels)
    img = Image.frombytes("RGBA", (w, h), data).transpose(Image.Transpose.FLIP_TOP_BOTTOM)  # rows bottom-up
    if max(w, h) > PREVIEW_MAX:
        img.thumbnail((PREVIEW_MAX, PREVIEW_MAX))
    img.save(path)
    return True


def read_blend(path: Path, previews_dir: Path) -> list[dict[str, Any]]:
    """The marked assets of one .blend: name, type, tags, description, catalog_id, bounds, preview."""
    out: list[dict[str, Any]] = []
    temp_data: Any = bpy.data.temp_data()  # the stubs do not know it is a context manager
    with temp_data as temp:
        with temp.libraries.load(str(path), link=True, assets_only=True) as (data_from, data_to):
            for attr in DATA_ATTRS.values():
                setattr(data_to, attr, list(getattr(data_from, attr)))
        for asset_type, attr in DATA_ATTRS.items():
            for idblock in getattr(data_to, attr):
                if idblock is None or idblock.asset_data is None:
                    continue
                ad = idblock.asset_data
                preview = ""
                if previews_dir.is_dir():
                    name = preview_name(path, asset_type, idblock.name)
                    try:
                        if _save_preview(idblock, previews_dir / name):
                            preview = name
                    except Exception:  # a preview is a nicety; the asset is indexed without it
                        log.debug("no preview for %s in %s", idblock.name, path, exc_info=True)
                out.append({"name": idblock.name, "type": asset_type,
                            "tags": [t.name for t in ad.tags], "description": ad.description or "",
                            "catalog_id": str(ad.catalog_id or ""), "bounds": id_bounds(idblock, asset_type),
                            "preview": preview})
    return out


_last_periodic = -1e9


def refresh_if_due(*, every_s: float = 30.0, budget_s: float = 1.0) -> RefreshReport | None:
    """The builder's periodic refresh, on the main thread before a job's scene is made: at most
    every `every_s`, re-reads changed files and renders missing previews within `budget_s`
    (what is left waits for the next job). Blender's own libraries are picked up here."""
    global _last_periodic
    now = time.monotonic()
    if now - _last_periodic < every_s:
        return None
    _last_periodic = now
    try:
        index = service.use_blender_libraries(preference_libraries())
        if not index.libraries:
            return None
        return refresh_assets(index, budget_s=budget_s)
    except Exception:  # an index problem must never fail the job that happened to trigger it
        log.warning("asset index refresh failed", exc_info=True)
        return None


def refresh_assets(index: AssetIndex | None = None, *, budget_s: float | None = None,
                   previews: bool = True) -> RefreshReport:
    """Refresh the current (or given) index on the main thread; with `previews`, previews for
    assets without one are rendered within what is left of the budget."""
    index = index or service.current_index()
    start = time.perf_counter()
    report = index.refresh(read_blend, budget_s=budget_s)
    left = None if budget_s is None else max(0.0, budget_s - (time.perf_counter() - start))
    if previews and (left is None or left > 0.2):
        from .asset_previews import render_missing_previews

        if render_missing_previews(index, budget_s=left):
            index.save()
    return report
