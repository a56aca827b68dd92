"""Placement for the offline interpreter: arrangements that never overlap, and a camera that frames them.

Geometry follows the builder's conventions (see `slack_ai_addon/blender/builder.py`): at scale
1 every primitive is about 1 m across and centred on its origin, the torus is 0.3 m thick,
the plane has no height, text stands upright (the builder turns it) with 1 m tall characters,
and the floor is z = 0. Objects rest on the floor at z = half their height.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ...core.scene_spec import Primitive

log = logging.getLogger(__name__)

# Half extents (x, y, z) at scale 1, as the builder makes them.
HALF_EXTENTS: dict[Primitive, tuple[float, float, float]] = {
    Primitive.CUBE: (0.5, 0.5, 0.5),
    Primitive.SPHERE: (0.5, 0.5, 0.5),
    Primitive.ICO_SPHERE: (0.5, 0.5, 0.5),
    Primitive.CYLINDER: (0.5, 0.5, 0.5),
    Primitive.CONE: (0.5, 0.5, 0.5),
    Primitive.TORUS: (0.5, 0.5, 0.15),
    Primitive.PLANE: (0.5, 0.5, 0.0),
    Primitive.MONKEY: (0.69, 0.43, 0.5),
    Primitive.TEXT: (0.5, 0.06, 0.5),  # x grows with the text length; see half_extents()
}
PLANE_LIFT = 0.005  # a plane lying exactly on the floor would z-fight with it
GAP = 0.4  # metres between neighbours
SENSOR_MM = 36.0  # Blender's default sensor width; with sensor fit AUTO it spans the longer side


class Arrangement(StrEnum):
    SINGLE = "single"
    ROW = "row"
    CIRCLE = "circle"
    GRID = "grid"
    STACK = "stack"
    SCATTER = "scatter"


@dataclass
class Placed:
    """One object to place: its half extents after scaling; location is filled by `arrange`."""

    half: tuple[float, float, float]
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    rot_z: float = 0.0

    @property
    def radius_xy(self) -> float:
        return math.hypot(self.half[0], self.half[1])


def half_extents(primitive: Primitive, scale: tuple[float, float, float], text: str | None = None) -> \
        tuple[float, float, float]:
    """Half extents of a primitive at `scale` (text: about 0.6 m per character)."""
    hx, hy, hz = HALF_EXTENTS[primitive]
    if primitive is Primitive.TEXT:
        hx = max(0.3, 0.3 * len(text or "text"))
    return (hx * scale[0], hy * scale[1], hz * scale[2])


def _half_of(o: dict[str, Any]) -> tuple[float, float, float]:
    """Half extents of an object dict; assets carry theirs (from the index) in "_asset_half"."""
    scale = tuple(o["scale"].values())
    base = o.pop("_asset_half", None)
    if o["primitive"] == "asset":
        hx, hy, hz = base or (0.5, 0.5, 0.5)
        return (hx * scale[0], hy * scale[1], hz * scale[2])
    return half_extents(Primitive(o["primitive"]), scale, o.get("text"))


def _rest_z(p: Placed, base: float = 0.0) -> float:
    return base + (p.half[2] if p.half[2] > 0 else PLANE_LIFT)


def _row(items: list[Placed]) -> None:
    total = sum(2 * p.half[0] for p in items) + GAP * (len(items) - 1)
    x = -total / 2
    for p in items:
        p.x, p.y = x + p.half[0], 0.0
        x += 2 * p.half[0] + GAP


def _grid(items: list[Placed]) -> None:
    cols = math.ceil(math.sqrt(len(items)))
    rows = math.ceil(len(items) / cols)
    cell = max(2 * max(p.half[0], p.half[1]) for p in items) + GAP
    for i, p in enumerate(items):
        r, c = divmod(i, cols)
        p.x = (c - (cols - 1) / 2) * cell
        p.y = ((rows - 1) / 2 - r) * cell


def _circle(items: list[Placed], center: Placed | None) -> None:
    n = len(items)
    if n == 0:
        return
    biggest = max(p.radius_xy for p in items)
    # Neighbours on the circle are a chord 2R sin(pi/n) apart; keep that above two radii + gap.
    radius = (2 * biggest + GAP) / (2 * math.sin(math.pi / n)) if n > 1 else 0.0
    if center is not None:
        center.x = center.y = 0.0
        radius = max(radius, center.radius_xy + biggest + GAP)
    for i, p in enumerate(items):
        angle = 2 * math.pi * i / n - math.pi / 2  # first object in front of the default camera
        p.x, p.y = radius * math.cos(angle), radius * math.sin(angle)


def _scatter(items: list[Placed], seed: int) -> None:
    rng = random.Random(seed)
    area = math.sqrt(sum((2 * p.radius_xy + GAP) ** 2 for p in items)) * 1.2 + 1.0
    placed: list[Placed] = []
    for p in items:
        for _ in range(400):
            x, y = rng.uniform(-area / 2, area / 2), rng.uniform(-area / 2, area / 2)
            # Square footprints (the xy radius each way): a turned object never leaves its square.
            if all(max(abs(x - q.x), abs(y - q.y)) >= p.radius_xy + q.radius_xy + GAP * 0.5 for q in placed):
                break
        else:  # crowded: give up on this layout and fall back to a grid, which never overlaps
            _grid(items)
            for q in items:
                q.rot_z = 0.0
            return
        p.x, p.y, p.rot_z = x, y, rng.uniform(0.0, 360.0)
        placed.append(p)


def arrange(items: list[Placed], arrangement: Arrangement, *, center: Placed | None = None, seed: int = 0) -> None:
    """Set x, y, z of `items` (and `center`, placed at the origin) so that nothing overlaps."""
    if arrangement is Arrangement.STACK:
        z = 0.0
        for p in items:
            p.x = p.y = 0.0
            p.z = _rest_z(p, z)
            z = p.z + max(p.half[2], PLANE_LIFT)
        return
    if arrangement is Arrangement.SINGLE or len(items) == 1 and center is None:
        for p in items:
            p.x = p.y = 0.0
    elif arrangement is Arrangement.ROW:
        _row(items)
    elif arrangement is Arrangement.CIRCLE:
        _circle(items, center)
    elif arrangement is Arrangement.SCATTER:
        _scatter(items, seed)
    else:
        _grid(items)
    for p in [*items, *([center] if center else [])]:
        p.z = _rest_z(p)


def bounds(items: list[Placed], *, spinning: bool = False) -> \
        tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Axis-aligned box around all items (a rotation about Z widens each to its xy radius)."""
    lo = [math.inf] * 3
    hi = [-math.inf] * 3
    for p in items:
        turned = spinning or bool(p.rot_z)
        r = p.radius_xy
        ext = (r if turned else p.half[0], r if turned else p.half[1], p.half[2])
        for axis, c in enumerate((p.x, p.y, p.z)):
            lo[axis] = min(lo[axis], c - ext[axis])
            hi[axis] = max(hi[axis], c + ext[axis])
    return (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2])


def fit_distance(lo: tuple[float, float, float], hi: tuple[float, float, float],
                 look_at: tuple[float, float, float], *, elevation_deg: float, azimuths_deg: list[float],
                 width: int, height: int, lens_mm: float, margin: float = 1.12) -> float:
    """Smallest orbit distance at which every corner of the box lo..hi is inside the frame,
    for each of the given camera azimuths (several for a turntable)."""
    # Sensor fit AUTO: the 36 mm sensor spans the longer side of the image.
    tan_long = SENSOR_MM / 2 / lens_mm
    tan_h = tan_long if width >= height else tan_long * width / height
    tan_v = tan_long if height >= width else tan_long * height / width
    el = math.radians(elevation_deg)
    corners = [(x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    need = 0.0
    for az_deg in azimuths_deg:
        az = math.radians(az_deg)
        # Unit vector from the target to the camera, and the camera's right and up axes.
        back = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
        right = (-math.sin(az), math.cos(az), 0.0)
        up = (-math.sin(el) * math.cos(az), -math.sin(el) * math.sin(az), math.cos(el))
        for c in corners:
            p = (c[0] - look_at[0], c[1] - look_at[1], c[2] - look_at[2])
            toward = sum(a * b for a, b in zip(p, back, strict=True))
            lateral = abs(sum(a * b for a, b in zip(p, right, strict=True)))
            vertical = abs(sum(a * b for a, b in zip(p, up, strict=True)))
            need = max(need, toward + lateral / tan_h, toward + vertical / tan_v)
    return need * margin


# --------------------------------------------------------------------- laying out a spec

def infer_arrangement(objects: list[dict[str, Any]]) -> Arrangement:
    """Guess how a previous spec's objects were arranged, to lay them out again after an edit."""
    if len(objects) <= 1:
        return Arrangement.SINGLE
    xs = [o["location"]["x"] for o in objects]
    ys = [o["location"]["y"] for o in objects]
    if max(xs) - min(xs) < 1e-6 and max(ys) - min(ys) < 1e-6:
        return Arrangement.STACK
    if max(ys) - min(ys) < 1e-6:
        return Arrangement.ROW
    cx, cy = sum(xs) / len(xs), sum(ys) / len(ys)
    radii = [math.hypot(x - cx, y - cy) for x, y in zip(xs, ys, strict=True)]
    if max(radii) - min(radii) < 1e-3 or sum(1 for r in radii if r < 1e-6) == 1:
        return Arrangement.CIRCLE
    if any(abs(o["rotation_deg"]["z"]) > 1e-6 for o in objects):
        return Arrangement.SCATTER
    return Arrangement.GRID


def layout_objects(data: dict[str, Any], arrangement: Arrangement | None, seed: int, camera: dict[str, float],
            reframe: bool) -> None:
    objects: list[dict[str, Any]] = data["objects"]
    if not objects:
        return
    if arrangement is None:
        arrangement = Arrangement.SINGLE if len(objects) == 1 else (
            Arrangement.ROW if len(objects) <= 5 else Arrangement.GRID)
    # Row order follows "on the left"/"on the right" first, then the order of mention.
    if arrangement is Arrangement.ROW and any("_side" in o for o in objects):
        objects.sort(key=lambda o: o.get("_side", 0))
    center_idx = next((k for k, o in enumerate(objects) if o.get("_center")), None)
    placed = [Placed(_half_of(o)) for o in objects]
    ring = [p for k, p in enumerate(placed) if k != center_idx]
    center = placed[center_idx] if center_idx is not None and arrangement is Arrangement.CIRCLE else None
    if center is None:
        ring = placed
    arrange(ring, arrangement, center=center, seed=seed)
    floating = data["floor"]["kind"] == "none" and arrangement is not Arrangement.STACK
    for o, p in zip(objects, placed, strict=True):
        # An asset's location is where the bottom of its bounds stands, not its centre.
        bottom = p.half[2] if o["primitive"] == "asset" else 0.0
        o["location"] = {"x": round(p.x, 4), "y": round(p.y, 4),
                         "z": round(p.z - bottom + (0.3 if floating else 0.0), 4)}
        if arrangement is Arrangement.SCATTER:
            o["rotation_deg"]["z"] = round(p.rot_z, 2)
        elif o["rotation_deg"]["z"]:
            o["rotation_deg"]["z"] = 0.0
        o.pop("_side", None)
        o.pop("_center", None)
    if floating:
        for p in placed:
            p.z += 0.3
    cam = data["camera"]
    if cam.get("location") is None and reframe:
        kind = data["animation"]["kind"]
        (x0, y0, z0), (x1, y1, z1) = bounds(placed, spinning=kind == "spin")
        if kind == "bounce":  # the builder lifts each object by max(0.5, 0.8 x its z scale)
            z1 += max(max(0.5, o["scale"]["z"] * 0.8) for o in objects)
        cx, cy, cz = (x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2
        radius = max(0.5, 0.5 * math.dist((x0, y0, z0), (x1, y1, z1)))
        lens = camera.get("lens", cam["lens_mm"])
        out = data["output"]
        tall = (z1 - z0) > 1.5 * max(x1 - x0, y1 - y0)
        elevation = camera.get("elevation", 12.0 if tall else cam["orbit"]["elevation_deg"])
        azimuth = camera.get("azimuth", cam["orbit"]["azimuth_deg"])
        # A turntable sees the scene from every side: fit the worst of eight directions.
        azimuths = [azimuth + k * 45.0 for k in range(8)] if data["animation"]["kind"] == "turntable" else [azimuth]
        distance = fit_distance((x0, y0, z0), (x1, y1, z1), (cx, cy, cz), elevation_deg=elevation,
                                azimuths_deg=azimuths, width=out["width"], height=out["height"], lens_mm=lens)
        distance *= camera.get("distance", 1.0)
        cam["look_at"] = {"x": round(cx, 4), "y": round(cy, 4), "z": round(cz, 4)}
        cam["lens_mm"] = lens
        cam["orbit"]["distance"] = round(min(max(distance, 1.5), 450.0), 3)
        cam["orbit"]["elevation_deg"] = elevation
        cam["orbit"]["azimuth_deg"] = azimuth
        # The floor must reach past the objects and well into the view.
        extent = max(abs(x0), abs(x1), abs(y0), abs(y1))
        floor = data["floor"]
        floor["size"] = round(min(500.0, max(floor["size"], 2 * extent + 2 * distance)), 2)
        if floor["kind"] in ("checkered", "grid"):
            floor["tiles"] = max(1, min(200, round(floor["size"] / max(1.0, radius))))
