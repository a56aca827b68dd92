"""A small studio asset library made with bpy for the asset tests and the benchmark.

Two .blend files: `props.blend` (a magenta "Hero Lamp" object, an "Oak Barrel" collection)
and `looks.blend` (an emissive "Neon Green" material, a "Dusk" world, and a text block
registered to run that would write a marker file if it ever ran). A catalog file names
their catalogs. Written with `bpy.data.libraries.write`, so the session's own data is left
as it was (the data-blocks made for the files are removed again).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import bmesh
import bpy

from slack_ai_addon.blender import compat

CATALOGS = {"lighting": ("1b0f5c1e-7a9d-4a53-9e4c-6f3d2b0a1c11", "Props/Lighting"),
            "containers": ("2c1a6d2f-8bae-4b64-8f5d-7a4e3c1b2d22", "Props/Containers"),
            "glow": ("3d2b7e30-9cbf-4c75-9a6e-8b5f4d2c3e33", "Materials/Glow"),
            "skies": ("4e3c8f41-adc0-4d86-8b7f-9c6a5e3d4f44", "Skies/Evening")}
MARKER_NAME = "SCRIPT_RAN"


def _box(name: str, size: tuple[float, float, float], base_z: float = 0.0) -> Any:
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=1.0)
    for v in bm.verts:
        v.co.x *= size[0]
        v.co.y *= size[1]
        v.co.z = v.co.z * size[2] + size[2] / 2 + base_z
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    return mesh


def _cylinder(name: str, radius: float, height: float) -> Any:
    bm = bmesh.new()
    bmesh.ops.create_cone(bm, cap_ends=True, segments=24, radius1=radius, radius2=radius, depth=height)
    for v in bm.verts:
        v.co.z += height / 2
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    return mesh


def _material(name: str, rgba: tuple[float, float, float, float], emission: float = 0.0) -> Any:
    mat = bpy.data.materials.new(name)
    bsdf = next(n for n in compat.ensure_node_tree(mat).nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Base Color"].default_value = rgba
    if emission:
        key = "Emission Color" if "Emission Color" in bsdf.inputs else "Emission"
        bsdf.inputs[key].default_value = rgba
        bsdf.inputs["Emission Strength"].default_value = emission
    mat.diffuse_color = rgba
    return mat


def _mark(idblock: Any, catalog: str, tags: list[str], description: str = "") -> None:
    idblock.asset_mark()
    idblock.asset_data.catalog_id = CATALOGS[catalog][0]
    idblock.asset_data.description = description
    for tag in tags:
        idblock.asset_data.tags.new(tag)


def write_catalogs(root: Path) -> None:
    lines = ["# Asset catalogs for the tests", "VERSION 1", ""]
    lines += [f"{u}:{path}:{path.replace('/', '-')}" for u, path in CATALOGS.values()]
    (root / "blender_assets.cats.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_props(path: Path, *, lamp_tags: tuple[str, ...] = ("light", "hero")) -> None:
    made: list[Any] = []
    magenta = _material("Lamp Magenta", (1.0, 0.0, 1.0, 1.0))
    lamp_mesh = _box("Hero Lamp mesh", (0.5, 0.5, 1.6))
    lamp_mesh.materials.append(magenta)
    lamp = bpy.data.objects.new("Hero Lamp", lamp_mesh)
    _mark(lamp, "lighting", list(lamp_tags), "The lamp from the hero shot")
    wood = _material("Oak", (0.85, 0.33, 0.02, 1.0))
    barrel_mesh = _cylinder("Oak Barrel mesh", 0.35, 0.9)
    barrel_mesh.materials.append(wood)
    barrel_obj = bpy.data.objects.new("Oak Barrel body", barrel_mesh)
    barrel_obj.location = (2.0, 1.0, 0.0)  # off the origin: placement must use the bounds
    barrel = bpy.data.collections.new("Oak Barrel")
    barrel.objects.link(barrel_obj)
    barrel.instance_offset = (2.0, 1.0, 0.0)
    _mark(barrel, "containers", ["barrel", "wood"])
    made += [magenta, lamp_mesh, lamp, wood, barrel_mesh, barrel_obj, barrel]
    bpy.data.libraries.write(str(path), {lamp, barrel}, fake_user=True)
    bpy.data.batch_remove(made)


def write_looks(path: Path, marker: Path) -> None:
    neon = _material("Neon Green", (0.0, 1.0, 0.05, 1.0), emission=6.0)
    _mark(neon, "glow", ["emissive", "glow"])
    world = bpy.data.worlds.new("Dusk")
    world.color = (0.4, 0.2, 0.3)
    _mark(world, "skies", ["sky", "evening"])
    # A script registered to run when the file is opened: linking or appending must never run it.
    text = bpy.data.texts.new("register_me.py")
    text.write(f"open({str(marker)!r}, 'w').write('ran')\n")
    text.use_module = True
    neon["startup_script"] = text  # keep the text referenced from an asset, so a load brings it along
    bpy.data.libraries.write(str(path), {neon, world, text}, fake_user=True)
    bpy.data.batch_remove([neon, world, text])


def build_library(root: Path) -> dict[str, Path]:
    """The library in `root`; returns its files and the marker path."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root.parent / MARKER_NAME
    write_catalogs(root)
    (root / "sub").mkdir(exist_ok=True)
    write_props(root / "props.blend")
    write_looks(root / "sub" / "looks.blend", marker)
    return {"props": root / "props.blend", "looks": root / "sub" / "looks.blend", "marker": marker}


def write_many(root: Path, count: int) -> list[Path]:
    """`count` small .blend files of one marked object each (the benchmark's library)."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(count):
        mesh = _box(f"bench mesh {k}", (0.5, 0.5, 1.0))
        obj = bpy.data.objects.new(f"Bench Prop {k:03d}", mesh)
        obj.asset_mark()
        obj.asset_data.tags.new("bench")
        path = root / f"prop_{k:03d}.blend"
        bpy.data.libraries.write(str(path), {obj}, fake_user=True)
        bpy.data.batch_remove([obj, mesh])
        out.append(path)
    return out


__all__ = ["CATALOGS", "MARKER_NAME", "build_library", "uuid", "write_many", "write_props"]
