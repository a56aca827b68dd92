"""Object groups as the parser collects them (`Mods`, `Group`), and object dicts built from them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ...core.scene_spec import (
    MAX_OBJECTS,
    Primitive,
)
from .colors import apply_shade, color_distance
from .vocab import (
    GENERIC_MIX,
)

if TYPE_CHECKING:
    from .parse import Parse


# ------------------------------------------------------------------------- object groups

@dataclass
class Mods:
    """Modifiers collected before (or after) a shape noun."""

    color: str | None = None
    metallic: float | None = None
    roughness: float | None = None
    emission: float | None = None
    transmission: float | None = None
    material_color: str | None = None  # from "gold", "wooden": used when no colour is named
    checker: bool = False
    size: float | None = None
    relative_size: float | None = None
    stretch: tuple[float, float, float] | None = None
    side: int | None = None
    shade: str | None = None  # "a dark cube": a shade word with no colour name shades the default
    asset_material: dict[str, Any] | None = None  # "with the neon green material" (an AssetRef's fields)
    words: list[str] = field(default_factory=list)

    def any(self) -> bool:
        return bool(self.words)

    def merged(self, later: Mods) -> Mods:
        """These modifiers overridden by the ones in `later` that are set."""
        out = replace(self, words=[*self.words, *later.words])
        for name in ("color", "metallic", "roughness", "emission", "transmission", "material_color", "size",
                     "relative_size", "stretch", "side", "shade", "asset_material"):
            value = getattr(later, name)
            if value is not None:
                setattr(out, name, value)
        out.checker = self.checker or later.checker
        return out


@dataclass
class Group:
    primitive: Primitive | None  # None: generic plural ("three shapes") -> a mix
    count: int
    mods: Mods
    text: str | None = None
    label: str = ""
    definite: bool = False  # "the sphere": a reference to existing objects in an edit
    explicit_count: bool = False
    below_previous: bool = False  # "a sphere ON a cube": this group goes under the previous one
    center: bool = False  # "spheres AROUND a cube"
    selector_color: str | None = None  # edits: "the RED cube" picks red cubes
    set_count: bool = False  # edits: "make it 3 cubes", "only one cube", "3 cubes instead" set the count
    asset: dict[str, Any] | None = None  # Primitive.ASSET: the AssetRef's fields


# ------------------------------------------------------------------------ building objects

def make_material(mods: Mods, base: dict[str, Any] | None = None) -> dict[str, Any]:
    mat: dict[str, Any] = dict(base) if base else {"base_color": "#cccccc", "metallic": 0.0, "roughness": 0.5,
                                                   "emission_strength": 0.0, "transmission": 0.0, "checker": None}
    if mods.color is not None:
        mat["base_color"] = mods.color
    elif mods.material_color is not None:
        mat["base_color"] = mods.material_color
    elif mods.transmission and not base:
        mat["base_color"] = "#f4f8ff"
    if mods.shade is not None and mods.color is None:
        mat["base_color"] = shade_color(mat["base_color"], mods.shade)
    for key, value in (("metallic", mods.metallic), ("roughness", mods.roughness),
                       ("emission_strength", mods.emission), ("transmission", mods.transmission)):
        if value is not None:
            mat[key] = value
    if mods.asset_material is not None:
        mat["asset"] = dict(mods.asset_material)
    if mods.checker:
        mat["checker"] = {"color2": "#1a1a1a" if color_distance(mat["base_color"], "#1a1a1a") > 80 else "#f0f0f0",
                          "scale": 8.0}
    return mat


def shade_color(color: str, shade: str) -> str:
    """A bare shade word applied to a colour; on a grey, "bright" lightens as "light" does."""
    shaded = apply_shade(color, shade)
    if shaded == color and shade in ("bright", "pale", "pastel", "light"):
        shaded = apply_shade(color, "light")
    return shaded


def make_scale(mods: Mods, base: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> tuple[float, float, float]:
    if mods.size is not None:
        base = (mods.size, mods.size, mods.size)
    if mods.relative_size is not None:
        base = (base[0] * mods.relative_size, base[1] * mods.relative_size, base[2] * mods.relative_size)
    if mods.stretch is not None:
        base = (base[0] * mods.stretch[0], base[1] * mods.stretch[1], base[2] * mods.stretch[2])
    return (min(max(base[0], 0.05), 20.0), min(max(base[1], 0.05), 20.0), min(max(base[2], 0.05), 20.0))


def object_name(obj: dict[str, Any]) -> str:
    prim = str(obj["primitive"])
    if prim == "asset" and obj.get("asset"):
        return str(obj["asset"]["name"]).lower()[:56]
    return "text" if prim == "text" else prim.replace("_", " ")


def new_object(prim: Primitive, mods: Mods, text: str | None = None,
                template: dict[str, Any] | None = None, asset: dict[str, Any] | None = None) -> dict[str, Any]:
    base = (template["scale"]["x"], template["scale"]["y"], template["scale"]["z"]) if template else (1.0, 1.0, 1.0)
    scale = make_scale(mods, base)
    obj: dict[str, Any] = {
        "primitive": prim.value, "name": prim.value.replace("_", " "),
        "location": {"x": 0.0, "y": 0.0, "z": 0.0}, "rotation_deg": {"x": 0.0, "y": 0.0, "z": 0.0},
        "scale": {"x": scale[0], "y": scale[1], "z": scale[2]},
        "material": make_material(mods, template["material"] if template else None),
        "text": text if prim is Primitive.TEXT else None,
    }
    if mods.side is not None:
        obj["_side"] = mods.side
    if prim is Primitive.ASSET:
        ref = dict(asset or (template or {}).get("asset") or {})
        half = ref.pop("_half", None)
        if half is not None:
            obj["_asset_half"] = half
        obj["asset"] = ref
        obj["name"] = object_name(obj)
    return obj


def expand_groups(parse: Parse, groups: list[Group], room: int) -> list[dict[str, Any]]:
    """Groups to object dicts, capped at `room` objects in total with a warning."""
    objects: list[dict[str, Any]] = []
    wanted = sum(g.count for g in groups)
    if wanted > room:
        parse.warn(f"{wanted} objects were asked for; objects is limited to {MAX_OBJECTS}, "
                   f"so {room} were made")
    for g in groups:
        for k in range(g.count):
            if len(objects) >= room:
                return objects
            prim = g.primitive or GENERIC_MIX[k % len(GENERIC_MIX)]
            obj = new_object(prim, g.mods, g.text, asset=g.asset)
            if g.center:
                obj["_center"] = True
            objects.append(obj)
    return objects

def name_objects(objects: list[dict[str, Any]]) -> None:
    totals: dict[str, int] = {}
    for o in objects:
        totals[object_name(o)] = totals.get(object_name(o), 0) + 1
    seen: dict[str, int] = {}
    for o in objects:
        base = object_name(o)
        seen[base] = seen.get(base, 0) + 1
        o["name"] = (f"{base} {seen[base]}" if totals[base] > 1 else base)[:64]
