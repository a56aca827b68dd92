"""Variations: N variants (1-8) of one scene, rendered as drafts, posted as a carousel; any
one can then be rendered in full ("Final") or varied again ("Vary"). docs/RESULTS.md.

A variant is the scene with a seeded change that shows: the objects' colours rotated round
the colour wheel by the golden angle (137.5° per variant, so no two of eight are within 25°
of each other), the camera moved round and up or down, and, with several objects, the
objects shifted on the floor. Variant 1 is the scene as asked. The seed of each variant is
derived from the scene and the variant's number, and the same spec and seed always give the
same variant (and, rendered, the same image: Blender's own sampling seed is fixed).
"""

from __future__ import annotations

import colorsys
import json
import random
import re
import zlib
from typing import Any

from .scene_spec import SceneSpec

MAX_VARIATIONS = 8
DEFAULT_VARIATIONS = 4
GOLDEN_ANGLE = 137.5

_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "a few": 3, "some": 4, "several": 4}
_REQUEST = re.compile(r"^\s*(?:please\s+)?(?:(?:give|show|render|make)\s+(?:me\s+)?)?"
                      r"(\d+|one|two|three|four|five|six|seven|eight|a few|some|several)?\s*"
                      r"variations?\s+(?:of|on|for)\s+(?P<rest>.+)$", re.I | re.S)


def split_request(text: str) -> tuple[int, str]:
    """(number of variations, the scene's own words) for "4 variations of a red car"; (0, text)
    when the request asks for no variations. The number is kept within 1-8."""
    m = _REQUEST.match(text)
    if not m:
        return 0, text
    raw = (m.group(1) or "").lower()
    n = int(raw) if raw.isdigit() else _WORDS.get(raw, DEFAULT_VARIATIONS)
    return max(1, min(MAX_VARIATIONS, n)), m.group("rest").strip()


def seed_for(spec: SceneSpec, index: int) -> int:
    """The seed of variant `index` (0-based) of `spec`: stable across runs and machines."""
    digest = zlib.crc32(json.dumps(spec.to_json_dict(), sort_keys=True).encode("utf-8"))
    return (digest * 1_000_003 + index * 2_654_435_761) % 2**31


def _rotate_hue(hex_color: str, degrees: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    h, l_, s = colorsys.rgb_to_hls(r, g, b)
    if s < 0.15:  # grey, white, black: give it a colour to vary
        s, l_ = 0.6, min(max(l_, 0.35), 0.65)
    r, g, b = colorsys.hls_to_rgb((h + degrees / 360.0) % 1.0, l_, s)
    return "#" + "".join(f"{round(c * 255):02x}" for c in (r, g, b))


def vary(spec: SceneSpec, index: int, seed: int) -> tuple[SceneSpec, str]:
    """Variant `index` (0-based) with `seed`: (its spec, a short line on what differs)."""
    if index == 0:
        return spec, "as asked"
    rng = random.Random(seed)
    data: dict[str, Any] = spec.to_json_dict()
    hue = (index * GOLDEN_ANGLE) % 360.0
    for obj in data["objects"]:
        material = obj.get("material") or {}
        if material.get("asset") is None:
            material["base_color"] = _rotate_hue(material.get("base_color", "#cccccc"), hue)
    orbit = data["camera"]["orbit"]
    turn = rng.choice((-1, 1)) * rng.uniform(20.0, 45.0)
    tilt = rng.uniform(-8.0, 12.0)
    orbit["azimuth_deg"] = round(((orbit["azimuth_deg"] + turn + 180.0) % 360.0) - 180.0, 1)
    orbit["elevation_deg"] = round(max(5.0, min(70.0, orbit["elevation_deg"] + tilt)), 1)
    moved = ""
    if len(data["objects"]) > 1:
        for obj in data["objects"]:
            loc = obj["location"]
            loc["x"] = round(loc["x"] + rng.uniform(-0.6, 0.6), 3)
            loc["y"] = round(loc["y"] + rng.uniform(-0.6, 0.6), 3)
        moved = ", objects moved"
    side = "left" if turn > 0 else "right"
    note = f"colours +{hue:.0f}°, camera {abs(turn):.0f}° {side}{moved}"
    return SceneSpec.model_validate(data), note


def variants(spec: SceneSpec, n: int) -> list[dict[str, Any]]:
    """The stored description of `n` variants: number (1-based), seed, what differs, spec."""
    out = []
    for i in range(max(1, min(MAX_VARIATIONS, n))):
        seed = seed_for(spec, i)
        varied, note = vary(spec, i, seed)
        out.append({"number": i + 1, "seed": seed, "note": note, "spec": varied.to_json_dict()})
    return out


def contact_sheet(paths: list[str], out_path: str, *, columns: int = 4) -> str:
    """One PNG with the variants side by side, each numbered in its corner (for a workspace
    that refuses carousels)."""
    from PIL import Image, ImageDraw

    images = [Image.open(p).convert("RGB") for p in paths]
    w = max(i.width for i in images)
    h = max(i.height for i in images)
    cols = max(1, min(columns, len(images)))
    rows = (len(images) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * w, rows * h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for n, img in enumerate(images):
        x, y = (n % cols) * w, (n // cols) * h
        sheet.paste(img, (x, y))
        draw.rectangle((x, y, x + 18, y + 14), fill=(0, 0, 0))
        draw.text((x + 4, y + 1), str(n + 1), fill=(255, 255, 255))
        img.close()
    sheet.save(out_path)
    return out_path
