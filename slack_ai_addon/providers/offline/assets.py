"""Asset phrases for the offline grammar: "the hero lamp", "three oak barrels", "a cube with
the neon green material", "under the dusk sky", "a 2 m tall hero lamp".

`parse_assets` runs first among the word passes, so no other pass reads an asset's words
("dusk" is a lighting word, "neon green" a colour): object and collection phrases are kept
for the object pass (`Parse.shape_at` returns them as Primitive.ASSET with their count and
plural), material phrases become a modifier of the object they follow or precede, a world
phrase sets the spec's world. Matching is `assets.match.AssetMatcher` over the current index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...assets.index import AssetEntry
from ...assets.match import AssetHit, AssetMatcher
from ...textutil import defuse_markup
from .colors import lookup_color
from .vocab import MATERIAL_WORDS, NUMBER_WORDS, SHAPE_WORDS, SIZE_WORDS, STOP_WORDS

if TYPE_CHECKING:
    from .parse import Parse

MATERIAL_NOUNS = ("material", "materials", "shader", "texture", "finish", "surface")
WORLD_NOUNS = ("sky", "skies", "hdri", "hdr", "world", "environment", "background", "backdrop", "lighting")
APPEND_WORDS = ("append", "appended", "appending")
LENGTH_UNITS = {"m": 1.0, "metre": 1.0, "metres": 1.0, "meter": 1.0, "meters": 1.0, "cm": 0.01,
                "centimetres": 0.01, "centimeters": 0.01, "ft": 0.3048, "feet": 0.3048, "foot": 0.3048}
HEIGHT_WORDS = ("tall", "high", "height")


def reserved(word: str) -> bool:
    """Words the grammar owns: one of them alone never names an asset."""
    return (word in STOP_WORDS or (word,) in SHAPE_WORDS or word in MATERIAL_WORDS or word in SIZE_WORDS
            or word in NUMBER_WORDS or lookup_color([word]) is not None or word in ("floor", "ground", "sky"))


def asset_ref(entry: AssetEntry, *, append: bool = False, height_m: float | None = None) -> dict[str, Any]:
    return {"name": entry.name, "library": entry.library, "type": entry.type, "append": append,
            "height_m": height_m}


def parse_assets(parse: Parse, matcher: AssetMatcher) -> None:
    t = parse.toks
    if not matcher or not len(t):
        return
    for i in range(len(t)):
        if t.free(i) and t.w(i) in APPEND_WORDS:
            parse.asset_append = True
            t.take(i, i + 1)
    words = [t.w(k) for k in range(len(t))]

    def usable(k: int) -> bool:
        return t.free(k) and t.toks[k].kind in ("word", "num")

    i = 0
    while i < len(t):
        hit = matcher.match_at(words, i, usable=usable, reserved=reserved) if usable(i) else None
        if hit is None:
            i += 1
            continue
        end = hit.end
        kind = hit.entry.type
        if kind in ("object", "collection"):
            height, start, end = _height_around(parse, i, end)
            parse.asset_objects[start] = (hit, end, height)
            t.take(start, end)
            i = end
            continue
        if kind == "material":
            while t.free(end) and t.w(end) in MATERIAL_NOUNS:
                end += 1
            parse.asset_materials[i] = (hit, end)
        elif kind == "world":
            while t.free(end) and t.w(end) in WORLD_NOUNS:
                end += 1
            parse.data["world"]["asset"] = asset_ref(hit.entry, append=parse.asset_append)
            parse.world_explicit = True
            parse.changed = True
        else:  # node groups are listed, not placed
            parse.warn(f'"{defuse_markup(hit.entry.name)}" is a node group asset; only objects, collections, '
                       "materials and worlds can be used in a scene")
        t.take(i, end)
        i = end


def _height_at(parse: Parse, j: int) -> tuple[float, int] | None:
    """("2 m tall" | "2m tall" | "150 cm high") at j: (metres, end)."""
    t = parse.toks
    num = t.num(j)
    if num is None:
        return None
    value, suffix = num
    k = j + 1
    if not suffix and t.free(k) and t.w(k) in LENGTH_UNITS:
        suffix = t.w(k)
        k += 1
    if suffix not in LENGTH_UNITS or not t.free(k) or t.w(k) not in HEIGHT_WORDS:
        return None
    return value * LENGTH_UNITS[suffix], k + 1


def _height_around(parse: Parse, start: int, end: int) -> tuple[float | None, int, int]:
    """A height right after the phrase ("hero lamp 2 m tall", "..., 2 m tall") or right before
    it ("a 2 m tall hero lamp"): (metres or None, new start, new end)."""
    t = parse.toks
    after = end + (1 if t.w(end) in (",", "at", "is") else 0)
    found = _height_at(parse, after)
    if found is not None:
        return found[0], start, found[1]
    for back in (4, 3):
        j = start - back
        if j >= 0:
            found = _height_at(parse, j)
            if found is not None and found[1] == start:
                return found[0], j, end
    return None, start, end


def object_ref(parse: Parse, start: int) -> dict[str, Any]:
    hit, _end, height = parse.asset_objects[start]
    ref = asset_ref(hit.entry, append=parse.asset_append, height_m=height)
    ref["_half"] = half_size(hit.entry, height)  # for the layout; new_object moves it out of the ref
    return ref


def half_size(entry: AssetEntry, height_m: float | None) -> tuple[float, float, float]:
    """Half the asset's size in metres at scale 1 (a 1 m cube when its bounds are unknown)."""
    size = entry.size or (1.0, 1.0, 1.0)
    factor = height_m / size[2] if height_m and size[2] > 1e-6 else 1.0
    return (max(0.01, size[0] * factor / 2), max(0.01, size[1] * factor / 2), max(0.0, size[2] * factor / 2))


def unknown_asset_notes(matcher: AssetMatcher, phrases: list[str]) -> list[str]:
    """For words that named nothing: the assets they were probably meant to be."""
    notes = []
    for phrase in phrases[:5]:
        closest = matcher.closest_names(phrase)
        if closest:
            names = ", ".join(f'"{defuse_markup(n)}"' for n in closest)
            notes.append(f'there is no asset named "{defuse_markup(phrase)}"; the closest are {names}')
    return notes


__all__ = ["AssetHit", "half_size", "object_ref", "parse_assets", "reserved", "unknown_asset_notes"]
