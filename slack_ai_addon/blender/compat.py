"""Every Blender-version difference the builder and renderer meet, in one place.

Supported: Blender 3.4 (Debian's `blender`), 4.2 to 5.0 (Python 3.11; bpy 5.0.1 from PyPI)
and 5.1 to 5.3 (Python 3.13; bpy 5.2 LTS is the default, 5.3 is tested too). Where a feature
can be detected (an enum item, a socket, an attribute) it is detected rather than keyed on
`bpy.app.version`, so builds with features compiled out (Debian's Cycles has no
OpenImageDenoise) and point releases that rename things keep working.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from typing import Any

import bpy

log = logging.getLogger(__name__)

VERSION: tuple[int, int, int] = tuple(bpy.app.version)  # type: ignore[assignment]

# Principled BSDF inputs renamed in 4.0; first name that exists wins.
_SOCKET_ALIASES: dict[str, tuple[str, ...]] = {
    "emission": ("Emission Color", "Emission"),
    "emission_strength": ("Emission Strength",),
    "transmission": ("Transmission Weight", "Transmission"),
    "specular": ("Specular IOR Level", "Specular"),
    "base_color": ("Base Color",),
    "metallic": ("Metallic",),
    "roughness": ("Roughness",),
}

_engine_cache: dict[str, str] = {}


def _settable_enum(owner: Any, prop: str, candidates: Iterable[str]) -> str | None:
    """First candidate that `owner.prop` accepts; the owner's value is restored afterwards.

    RNA enum items of some properties (render engines, view transforms) are filled at run
    time, so `bl_rna...enum_items` lists only part of them: trying the assignment is the
    one check that tells the truth on every version.
    """
    old = getattr(owner, prop)
    try:
        for name in candidates:
            try:
                setattr(owner, prop, name)
            except (TypeError, ValueError):
                continue
            return name
        return None
    finally:
        setattr(owner, prop, old)


def engine_id(scene: Any, engine: str) -> str:
    """RNA identifier for our engine names cycles | eevee | workbench on this build.

    EEVEE is 'BLENDER_EEVEE_NEXT' in 4.2-4.4 and 'BLENDER_EEVEE' in 3.x and 5.x.
    """
    engine = engine.lower()
    if engine in _engine_cache:
        return _engine_cache[engine]
    candidates = {
        "cycles": ("CYCLES",),
        "workbench": ("BLENDER_WORKBENCH",),
        "eevee": ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE"),
    }.get(engine)
    if candidates is None:
        raise ValueError(f"unknown engine {engine!r}")
    found = _settable_enum(scene.render, "engine", candidates)
    if found is None:
        raise RuntimeError(f"this Blender has no {engine} engine")
    _engine_cache[engine] = found
    return found


def principled_input(node: Any, key: str) -> Any:
    """The Principled BSDF input for `key` (see _SOCKET_ALIASES), or None if this build lacks it."""
    for name in _SOCKET_ALIASES.get(key, (key,)):
        sock = node.inputs.get(name)
        if sock is not None:
            return sock
    return None


def set_principled(node: Any, key: str, value: Any) -> bool:
    """Set a Principled BSDF input by our key; False (logged) if the socket does not exist."""
    sock = principled_input(node, key)
    if sock is None:
        log.debug("principled socket %s missing on Blender %s", key, VERSION)
        return False
    sock.default_value = value
    return True


def ensure_node_tree(idblock: Any) -> Any:
    """The node tree of a material or world, creating it where the build still needs use_nodes.

    5.0 always gives materials a node tree and deprecates `use_nodes` (warning on every set);
    worlds still need it there, and 3.4 needs it for both.
    """
    tree = getattr(idblock, "node_tree", None)
    if tree is not None and VERSION >= (5, 0, 0):  # always node-based; use_nodes only warns
        return tree
    if tree is None or not idblock.use_nodes:
        idblock.use_nodes = True
    return idblock.node_tree


def setup_color_management(scene: Any) -> None:
    """'Standard' view so requested colours come out as requested (Filmic/AgX desaturate)."""
    name = _settable_enum(scene.view_settings, "view_transform", ("Standard",))
    if name:
        scene.view_settings.view_transform = name
    try:
        scene.view_settings.look = "None"
    except (TypeError, ValueError):
        pass


def has_openimagedenoise() -> bool:
    """True when Cycles was built with OpenImageDenoise.

    `_cycles.with_openimagedenoise` (the Cycles add-on's own module) is the flag that tells;
    `bpy.app.build_options` has no such entry in 5.x. Debian's 3.4 build says False and
    raises "Build without OpenImageDenoiser" when denoising is on.
    """
    try:  # imported by name: some stub packages know the module, some do not
        cycles_module = importlib.import_module("_cycles")
    except ImportError:
        return False
    return bool(getattr(cycles_module, "with_openimagedenoise", False))


def configure_eevee(scene: Any, samples: int) -> None:
    eevee = getattr(scene, "eevee", None)
    if eevee is None:
        return
    for attr in ("taa_render_samples",):
        if hasattr(eevee, attr):
            setattr(eevee, attr, samples)


def configure_workbench(scene: Any) -> None:
    """Workbench shows material colours with studio lighting (not the default grey)."""
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "MATERIAL"
    scene.display.render_aa = "8"


def set_still_format(scene: Any, fmt: str, quality: int = 90) -> None:
    """PNG or JPEG stills (`fmt` is 'PNG' or 'JPEG')."""
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):  # 5.0: file_format only lists the current media type's items
        settings.media_type = "IMAGE"
    settings.file_format = fmt
    settings.color_mode = "RGB"
    if fmt == "JPEG":
        settings.quality = quality
    else:
        settings.color_depth = "8"
        settings.compression = 15


def set_video_format(scene: Any) -> None:
    """H.264 in an MP4 container through Blender's own FFmpeg writer.

    5.0 splits output into media types: `media_type = 'VIDEO'` must come first or
    'FFMPEG' is not a valid file_format; 3.4 has FFMPEG directly in file_format.
    """
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    ff = scene.render.ffmpeg
    ff.format = "MPEG4"
    ff.codec = "H264"
    # Medium quality, fast preset: previews for Slack, not masters.
    if hasattr(ff, "constant_rate_factor"):
        ff.constant_rate_factor = "MEDIUM"
    if hasattr(ff, "ffmpeg_preset"):
        ff.ffmpeg_preset = "REALTIME"
    ff.audio_codec = "NONE"
    # Even-sized frames: H.264 with yuv420p refuses odd widths/heights.
    scene.render.resolution_x -= scene.render.resolution_x % 2
    scene.render.resolution_y -= scene.render.resolution_y % 2


def sequence_strips(scene: Any) -> Any:
    """The sequencer's strip collection: `strips` since 4.4 (`sequences` removed in 5.0)."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = getattr(editor, "strips", None)
    return strips if strips is not None else editor.sequences


def set_light_size(light: Any, size: float) -> None:
    """Soft-shadow size: `size` on area lights, `shadow_soft_size` (radius) on point/spot,
    `angle` (radians) on sun lights."""
    if light.type == "AREA":
        light.size = max(size, 0.01)
    elif light.type == "SUN":
        light.angle = min(max(size, 0.0) * 0.05, 3.0)
    elif hasattr(light, "shadow_soft_size"):
        light.shadow_soft_size = size * 0.5


def fcurves_of(action: Any) -> list[Any]:
    """All F-curves of an action: 4.4+ layered actions keep them in layers/strips/channelbags."""
    curves = list(getattr(action, "fcurves", []) or [])
    if curves:
        return curves
    for layer in getattr(action, "layers", []):
        for strip in getattr(layer, "strips", []):
            for bag in getattr(strip, "channelbags", []):
                curves.extend(bag.fcurves)
    return curves


def set_linear_interpolation(action: Any) -> None:
    """Constant-speed orbits/spins: linear keys instead of the default ease in/out."""
    for fc in fcurves_of(action):
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"



def version_string() -> str:
    """The running Blender's version ("5.0.1"), for status replies (handed to the agent as data)."""
    return str(bpy.app.version_string)
