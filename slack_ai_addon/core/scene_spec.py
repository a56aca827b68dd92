"""The scene request as data: what the interpreter or an LLM fills and the builder applies.

Nothing here is ever executed. Every number has bounds; `parse_scene_spec` clamps
out-of-range values with a recorded warning (LLM output is often a little off), while
`SceneSpec.model_validate` rejects them with a message naming the field.

`SceneSpec.model_json_schema()` is an OpenAI *strict* structured-output schema: every
object lists all of its properties as required, optional values are nullable, and
`additionalProperties` is false everywhere.
"""

from __future__ import annotations

import copy
import math
import re
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Limits shared with the interpreter, the CLI and the docs.
MAX_OBJECTS = 50
MAX_LIGHTS = 8
MIN_RESOLUTION = 16
MAX_RESOLUTION = 4096
MAX_SAMPLES = 4096
MAX_FRAMES = 600
MAX_FPS = 60
MAX_TIME_LIMIT_S = 3600.0
MAX_COORD = 1000.0
MAX_SCALE = 100.0
MAX_TEXT_LEN = 200
MAX_ASSET_NAME = 64

HEX_COLOR = r"^#[0-9a-fA-F]{6}$"


class StrictModel(BaseModel):
    """Base for all spec models: unknown keys are errors, and the schema is strict."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        schema = super().model_json_schema(*args, **kwargs)
        return make_strict_schema(schema)


def make_strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a pydantic JSON Schema into OpenAI's strict subset (in a copy)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            # OpenAI strict mode rejects `default`; titles are noise for the model.
            node.pop("default", None)
            node.pop("title", None)
            # String lengths are not in strict mode's supported keywords (pattern and format
            # are); the limits still hold, because SceneSpec validates every answer locally.
            if node.get("type") == "string":
                node.pop("maxLength", None)
                node.pop("minLength", None)
            if node.get("type") == "object" or "properties" in node:
                props = node.get("properties", {})
                node["required"] = list(props.keys())
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return schema


class Vec3(StrictModel):
    x: float = Field(0.0, ge=-MAX_COORD, le=MAX_COORD)
    y: float = Field(0.0, ge=-MAX_COORD, le=MAX_COORD)
    z: float = Field(0.0, ge=-MAX_COORD, le=MAX_COORD)

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.x, self.y, self.z)


class Scale3(StrictModel):
    x: float = Field(1.0, ge=0.001, le=MAX_SCALE)
    y: float = Field(1.0, ge=0.001, le=MAX_SCALE)
    z: float = Field(1.0, ge=0.001, le=MAX_SCALE)

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.x, self.y, self.z)


class Primitive(str, Enum):
    CUBE = "cube"
    SPHERE = "sphere"
    ICO_SPHERE = "ico_sphere"
    CYLINDER = "cylinder"
    CONE = "cone"
    TORUS = "torus"
    PLANE = "plane"
    MONKEY = "monkey"
    TEXT = "text"
    ASSET = "asset"  # an object or collection from the studio's asset libraries (`ObjectSpec.asset`)


class AssetType(str, Enum):
    """Kinds of marked assets the libraries are indexed for (docs/ASSETS.md)."""

    OBJECT = "object"
    COLLECTION = "collection"
    MATERIAL = "material"
    WORLD = "world"
    NODE_GROUP = "node_group"


class AssetRef(StrictModel):
    """An asset by its name in the configured libraries; never a path (paths come from the index)."""

    # Every schema-valid answer must validate (strict mode drops string lengths), so an empty
    # name is not refused here: it names no asset, and the builder says so.
    name: str = Field(..., max_length=MAX_ASSET_NAME, description="asset name from the asset list")
    library: str | None = Field(None, max_length=MAX_ASSET_NAME, description="library name; null: any library")
    type: AssetType | None = Field(None, description="null: any type that fits where the asset is used")
    append: bool = Field(False, description="copy the asset into the scene instead of linking it")
    height_m: float | None = Field(None, ge=0.01, le=MAX_SCALE,
                                   description="objects: scale to this height in metres; null: the asset's own size")


class CheckerSpec(StrictModel):
    """A procedural checker pattern between the material colour and `color2`."""

    color2: str = Field("#1a1a1a", pattern=HEX_COLOR)
    scale: float = Field(8.0, ge=0.1, le=200.0, description="checker squares across the surface")


class MaterialSpec(StrictModel):
    base_color: str = Field("#cccccc", pattern=HEX_COLOR, description="sRGB hex colour")
    metallic: float = Field(0.0, ge=0.0, le=1.0)
    roughness: float = Field(0.5, ge=0.0, le=1.0)
    emission_strength: float = Field(0.0, ge=0.0, le=100.0, description="glow; uses base_color")
    transmission: float = Field(0.0, ge=0.0, le=1.0, description="1.0 is clear glass")
    checker: CheckerSpec | None = None
    asset: AssetRef | None = Field(None, description="a material asset from the libraries; replaces the above")


class ObjectSpec(StrictModel):
    primitive: Primitive
    name: str = Field("", max_length=64)
    location: Vec3 = Field(default_factory=Vec3)
    rotation_deg: Vec3 = Field(default_factory=Vec3)
    scale: Scale3 = Field(default_factory=Scale3)
    material: MaterialSpec = Field(default_factory=MaterialSpec)
    text: str | None = Field(None, max_length=MAX_TEXT_LEN, description="body for primitive 'text'")
    asset: AssetRef | None = Field(None, description="for primitive 'asset' (required there): which one; "
                                                     "location is where the bottom centre of its bounds stands")


class FloorKind(str, Enum):
    NONE = "none"
    PLAIN = "plain"
    CHECKERED = "checkered"
    GRID = "grid"


class FloorSpec(StrictModel):
    kind: FloorKind = FloorKind.PLAIN
    color: str = Field("#b0b0b0", pattern=HEX_COLOR)
    color2: str = Field("#202020", pattern=HEX_COLOR, description="second colour for checkered/grid")
    size: float = Field(20.0, ge=1.0, le=500.0, description="edge length in metres")
    tiles: int = Field(10, ge=1, le=200, description="squares along one edge (checkered/grid)")


class WorldKind(str, Enum):
    COLOR = "color"
    SKY = "sky"


class WorldSpec(StrictModel):
    kind: WorldKind = WorldKind.COLOR
    color: str = Field("#30343c", pattern=HEX_COLOR, description="background, or zenith for sky")
    horizon_color: str = Field("#b8c4d6", pattern=HEX_COLOR, description="used by 'sky'")
    strength: float = Field(1.0, ge=0.0, le=20.0)
    asset: AssetRef | None = Field(None, description="a world asset from the libraries; replaces the above")


class LightType(str, Enum):
    SUN = "sun"
    POINT = "point"
    AREA = "area"
    SPOT = "spot"


class LightSpec(StrictModel):
    type: LightType = LightType.AREA
    location: Vec3 = Field(default_factory=lambda: Vec3(x=4.0, y=-4.0, z=6.0))
    look_at: Vec3 = Field(default_factory=Vec3)
    energy: float = Field(500.0, ge=0.0, le=1_000_000.0, description="W, or W/m2 for sun")
    color: str = Field("#ffffff", pattern=HEX_COLOR)
    size: float = Field(2.0, ge=0.0, le=100.0)


class LightRig(str, Enum):
    STUDIO = "studio"
    SUNSET = "sunset"
    NIGHT = "night"
    SOFT = "soft"
    CUSTOM = "custom"


class LightingSpec(StrictModel):
    rig: LightRig = LightRig.STUDIO
    lights: list[LightSpec] = Field(default_factory=list, max_length=MAX_LIGHTS,
                                    description="used when rig is 'custom', added otherwise")


class OrbitSpec(StrictModel):
    distance: float = Field(8.0, ge=0.5, le=500.0)
    elevation_deg: float = Field(25.0, ge=-89.0, le=89.0)
    azimuth_deg: float = Field(-45.0, ge=-360.0, le=360.0)


class CameraSpec(StrictModel):
    location: Vec3 | None = Field(None, description="explicit position; else computed from orbit")
    look_at: Vec3 = Field(default_factory=lambda: Vec3(x=0.0, y=0.0, z=0.5))
    lens_mm: float = Field(50.0, ge=8.0, le=300.0)
    orbit: OrbitSpec = Field(default_factory=OrbitSpec)


class AnimationKind(str, Enum):
    NONE = "none"
    TURNTABLE = "turntable"  # camera orbits the look-at point once
    SPIN = "spin"  # objects spin about Z once
    BOUNCE = "bounce"


class AnimationSpec(StrictModel):
    kind: AnimationKind = AnimationKind.NONE
    frames: int = Field(24, ge=2, le=MAX_FRAMES)
    fps: int = Field(12, ge=1, le=MAX_FPS)


class Engine(str, Enum):
    CYCLES = "cycles"
    EEVEE = "eevee"
    WORKBENCH = "workbench"


class OutputFormat(str, Enum):
    PNG = "png"
    JPEG = "jpeg"
    MP4 = "mp4"
    GIF = "gif"


class OutputSpec(StrictModel):
    engine: Engine = Engine.CYCLES
    width: int = Field(640, ge=MIN_RESOLUTION, le=MAX_RESOLUTION)
    height: int = Field(480, ge=MIN_RESOLUTION, le=MAX_RESOLUTION)
    samples: int = Field(32, ge=1, le=MAX_SAMPLES)
    format: OutputFormat = OutputFormat.PNG
    time_limit_s: float = Field(300.0, ge=1.0, le=MAX_TIME_LIMIT_S,
                                description="whole render; stops between frames when exceeded")


class SceneSpec(StrictModel):
    """A whole scene request. Build it with `parse_scene_spec` for untrusted input."""

    objects: list[ObjectSpec] = Field(default_factory=list, max_length=MAX_OBJECTS)
    floor: FloorSpec = Field(default_factory=FloorSpec)
    world: WorldSpec = Field(default_factory=WorldSpec)
    lighting: LightingSpec = Field(default_factory=LightingSpec)
    camera: CameraSpec = Field(default_factory=CameraSpec)
    animation: AnimationSpec = Field(default_factory=AnimationSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)

    @property
    def is_animation(self) -> bool:
        return self.animation.kind is not AnimationKind.NONE

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def asset_refs(self) -> list[AssetRef]:
        """Every asset the spec uses: objects, object materials and the world."""
        refs = [o.asset for o in self.objects if o.asset is not None]
        refs += [o.material.asset for o in self.objects if o.material.asset is not None]
        if self.world.asset is not None:
            refs.append(self.world.asset)
        return refs


class SpecError(ValueError):
    """A spec that cannot be used; `str()` is a user-facing message naming the field(s)."""

    def __init__(self, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []


def _loc_str(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _drop_non_finite(data: Any, loc: tuple[Any, ...], warnings: list[str]) -> None:
    """NaN and infinities (an LLM can send them; JSON parsers accept them) are not numbers to
    clamp: NaN fails every comparison, so clamping would map it to a bound, e.g. the longest
    time limit. A field that gets one falls back to its default (0 inside a list), with a warning."""
    items = list(data.items()) if isinstance(data, dict) else list(enumerate(data)) if isinstance(data, list) else []
    for key, value in items:
        if isinstance(value, float) and not math.isfinite(value):
            where = _loc_str((*loc, key))
            if isinstance(data, dict):
                del data[key]
                warnings.append(f"{where}={value} is not a number; the default is used")
            else:
                data[key] = 0.0
                warnings.append(f"{where}={value} is not a number; 0 is used")
        elif isinstance(value, (dict, list)):
            _drop_non_finite(value, (*loc, key), warnings)


def _clamp_errors(data: Any, err: ValidationError, warnings: list[str]) -> bool:
    """Clamp numeric bound errors in `data` in place; True if anything was clamped."""
    changed = False
    for e in err.errors():
        if e["type"] not in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            continue
        ctx = e.get("ctx", {})
        container: Any = data
        loc = e["loc"]
        try:
            for part in loc[:-1]:
                container = container[part]
            old = container[loc[-1]]
        except (KeyError, IndexError, TypeError):
            continue
        limit = ctx.get("ge", ctx.get("gt", ctx.get("le", ctx.get("lt"))))
        if limit is None:
            continue
        new = type(old)(limit) if isinstance(old, (int, float)) and not isinstance(old, bool) else limit
        container[loc[-1]] = new
        warnings.append(f"{_loc_str(loc)}={old} is out of range; clamped to {new}")
        changed = True
    return changed


def describe_validation_error(err: ValidationError, limit: int = 5) -> str:
    parts = []
    for e in err.errors()[:limit]:
        parts.append(f"{_loc_str(e['loc']) or 'spec'}: {e['msg']}")
    more = len(err.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def parse_scene_spec(data: Any, *, clamp: bool = True) -> tuple[SceneSpec, list[str]]:
    """Validate untrusted spec data (from an LLM, a file, a follow-up edit).

    Numbers out of range are clamped to the nearest bound with a warning when `clamp`
    is true; anything else wrong raises `SpecError` with a message naming the fields.
    """
    warnings: list[str] = []
    if not isinstance(data, dict):
        raise SpecError("spec must be a JSON object")
    data = copy.deepcopy(data)
    _drop_non_finite(data, (), warnings)
    for _ in range(3):
        try:
            return SceneSpec.model_validate(data), warnings
        except ValidationError as err:
            if not (clamp and _clamp_errors(data, err, warnings)):
                fields = [_loc_str(e["loc"]) for e in err.errors()]
                raise SpecError(f"invalid scene spec: {describe_validation_error(err)}", fields) from None
    raise SpecError("invalid scene spec: values could not be brought into range")


def hex_to_rgb(color: str) -> tuple[float, float, float]:
    """sRGB hex to sRGB floats in 0..1."""
    if not re.fullmatch(HEX_COLOR, color):
        raise SpecError(f"not a #rrggbb colour: {color!r}")
    return (int(color[1:3], 16) / 255.0, int(color[3:5], 16) / 255.0, int(color[5:7], 16) / 255.0)


def srgb_to_linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def hex_to_linear_rgba(color: str) -> tuple[float, float, float, float]:
    """Blender colour sockets take scene-linear values."""
    r, g, b = hex_to_rgb(color)
    return (srgb_to_linear(r), srgb_to_linear(g), srgb_to_linear(b), 1.0)


FORMAT_EXTENSIONS: dict[OutputFormat, str] = {
    OutputFormat.PNG: "png",
    OutputFormat.JPEG: "jpg",
    OutputFormat.MP4: "mp4",
    OutputFormat.GIF: "gif",
}

ANIMATED_FORMATS: frozenset[OutputFormat] = frozenset({OutputFormat.MP4, OutputFormat.GIF})
