"""Build a `SceneSpec` into a new, isolated Blender scene, and remove it again.

Only the data API is used (bpy.data, bmesh, node trees): no `bpy.ops` that need a window
or an active object, so building works from a GUI timer, under `blender -b` and in the bpy
module alike. The user's scenes are never touched: everything goes into a scene made for the
job, and every data-block created is recorded in `BuiltScene.ids` so `cleanup()` removes
exactly those (names collide across jobs and with the user's data, so nothing is ever
looked up by name).

Geometry conventions the interpreter relies on: every primitive is about 1 m across,
centred on its origin (so an object resting on the floor has z = half its height: 0.5 for
cube/sphere/cylinder/cone/ico_sphere/monkey, 0.15 for the torus, 0 for the plane); the
floor is the z = 0 plane; text stands upright facing -Y, 1 m tall characters.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import bmesh
import bpy
from mathutils import Euler, Matrix, Vector

from ..core.scene_spec import (
    AnimationKind,
    FloorKind,
    LightRig,
    LightSpec,
    LightType,
    MaterialSpec,
    ObjectSpec,
    Primitive,
    SceneSpec,
    Vec3,
    WorldKind,
    hex_to_linear_rgba,
)
from . import asset_linker, asset_reader, compat

log = logging.getLogger(__name__)

TORUS_MAJOR = 0.35
TORUS_MINOR = 0.15


@dataclass
class BuiltScene:
    """A scene built for one job; `ids` holds every data-block created for it."""

    scene: Any
    job_id: str
    frames: int = 1
    ids: list[Any] = field(default_factory=list)
    assets: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # loaded assets by source (asset_linker)
    _cleaned: bool = False

    def track(self, idblock: Any) -> Any:
        """Record a data-block for cleanup; returns it for chaining."""
        self.ids.append(idblock)
        return idblock

    @property
    def scene_name(self) -> str:
        """The scene's actual name (Blender may have suffixed the requested one)."""
        return str(self.scene.name)

    def set_frame(self, frame: int) -> None:
        """Go to `frame`, writing animated values into our objects explicitly.

        `scene.frame_set` only flushes animation to the original data for the context's
        scene; on a scene of our own (5.0) the objects would keep their last keyed values and
        every frame would render the same. Evaluating our own F-curves is version-proof.
        """
        self.scene.frame_set(frame)
        for idblock in self.ids:
            anim = getattr(idblock, "animation_data", None)
            if not isinstance(idblock, bpy.types.Object) or anim is None or anim.action is None:
                continue
            for fc in compat.fcurves_of(anim.action):
                value = fc.evaluate(frame)
                target = getattr(idblock, fc.data_path, None)
                if target is None:
                    continue
                try:
                    target[fc.array_index] = value
                except TypeError:  # a scalar property
                    setattr(idblock, fc.data_path, value)

    def cleanup(self) -> None:
        """Remove every data-block this job created. Safe to call twice."""
        if self._cleaned:
            return
        self._cleaned = True
        alive = []
        seen: set[int] = set()
        for idblock in self.ids:
            try:
                ptr = idblock.as_pointer()
            except ReferenceError:  # already removed (e.g. by the user)
                continue
            if ptr in seen:
                continue
            seen.add(ptr)
            alive.append(idblock)
        self.assets.clear()
        try:
            bpy.data.batch_remove(alive)
        except Exception:
            # batch_remove is all-or-nothing on some errors; fall back to one at a time.
            log.exception("batch_remove failed for job %s; removing one by one", self.job_id)
            for idblock in alive:
                _remove_one(idblock)
        self.ids.clear()


_COLLECTIONS_BY_TYPE = {
    "Scene": "scenes", "Object": "objects", "Mesh": "meshes", "Material": "materials",
    "World": "worlds", "Camera": "cameras", "Light": "lights", "Action": "actions",
    "Image": "images", "NodeTree": "node_groups", "TextCurve": "curves", "Curve": "curves",
    "VectorFont": "fonts", "MovieClip": "movieclips", "Library": "libraries", "Collection": "collections",
    "Texture": "textures",
}


def _remove_one(idblock: Any) -> None:
    try:
        rna = type(idblock).__name__
        for base in type(idblock).__mro__:
            coll_name = _COLLECTIONS_BY_TYPE.get(base.__name__)
            if coll_name:
                getattr(bpy.data, coll_name).remove(idblock)
                return
        log.warning("do not know how to remove %s", rna)
    except ReferenceError:
        pass
    except Exception:
        log.exception("could not remove a data-block")


# ------------------------------------------------------------------------------ geometry

def _torus(bm: Any, major: float, minor: float, seg_major: int = 32, seg_minor: int = 12) -> None:
    # bmesh has no torus op: a ring of rings, quads between neighbours.
    grid = []
    for i in range(seg_major):
        u = 2 * math.pi * i / seg_major
        ring = []
        for j in range(seg_minor):
            v = 2 * math.pi * j / seg_minor
            r = major + minor * math.cos(v)
            ring.append(bm.verts.new((r * math.cos(u), r * math.sin(u), minor * math.sin(v))))
        grid.append(ring)
    for i in range(seg_major):
        for j in range(seg_minor):
            a = grid[i][j]
            b = grid[(i + 1) % seg_major][j]
            c = grid[(i + 1) % seg_major][(j + 1) % seg_minor]
            d = grid[i][(j + 1) % seg_minor]
            bm.faces.new((a, b, c, d))


def _mesh_for(primitive: Primitive, name: str, built: BuiltScene, *, plane_size: float = 1.0) -> Any:
    bm = bmesh.new()
    smooth = True
    try:
        if primitive is Primitive.CUBE:
            bmesh.ops.create_cube(bm, size=1.0)
            smooth = False
        elif primitive is Primitive.SPHERE:
            bmesh.ops.create_uvsphere(bm, u_segments=32, v_segments=16, radius=0.5)
        elif primitive is Primitive.ICO_SPHERE:
            bmesh.ops.create_icosphere(bm, subdivisions=2, radius=0.5)
            smooth = False
        elif primitive is Primitive.CYLINDER:
            bmesh.ops.create_cone(bm, cap_ends=True, segments=32, radius1=0.5, radius2=0.5, depth=1.0)
        elif primitive is Primitive.CONE:
            bmesh.ops.create_cone(bm, cap_ends=True, segments=32, radius1=0.5, radius2=0.0, depth=1.0)
        elif primitive is Primitive.TORUS:
            _torus(bm, TORUS_MAJOR, TORUS_MINOR)
        elif primitive is Primitive.PLANE:
            # create_grid's size is the half-width.
            bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=plane_size / 2.0)
            smooth = False
        elif primitive is Primitive.MONKEY:
            # Suzanne is about 2.7 x 2 x 1.7 m at scale 1: halve it, raise so it is centred.
            bmesh.ops.create_monkey(bm, matrix=Matrix.Scale(0.5, 4))
        else:
            raise ValueError(f"no mesh for {primitive}")
        if smooth:
            for face in bm.faces:
                face.smooth = True
        bm.normal_update()
        mesh = built.track(bpy.data.meshes.new(name))
        bm.to_mesh(mesh)
    finally:
        bm.free()
    if smooth and hasattr(mesh, "use_auto_smooth"):  # <= 4.0: keep caps and rims crisp
        mesh.use_auto_smooth = True
        mesh.auto_smooth_angle = math.radians(40)
    return mesh


# ----------------------------------------------------------------------------- materials

def _new_material(name: str, built: BuiltScene) -> tuple[Any, Any, Any]:
    mat = built.track(bpy.data.materials.new(name))
    tree = compat.ensure_node_tree(mat)
    nodes = tree.nodes
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
    out = next((n for n in nodes if n.type == "OUTPUT_MATERIAL"), None)
    if bsdf is None:
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    if out is None:
        out = nodes.new("ShaderNodeOutputMaterial")
    if not bsdf.outputs[0].links:
        tree.links.new(bsdf.outputs[0], out.inputs["Surface"])
    return mat, tree, bsdf


def build_material(spec: MaterialSpec, name: str, built: BuiltScene) -> Any:
    """A Principled BSDF material for an object (optionally with a checker pattern)."""
    mat, tree, bsdf = _new_material(name, built)
    base = hex_to_linear_rgba(spec.base_color)
    compat.set_principled(bsdf, "base_color", base)
    compat.set_principled(bsdf, "metallic", spec.metallic)
    compat.set_principled(bsdf, "roughness", spec.roughness)
    compat.set_principled(bsdf, "transmission", spec.transmission)
    if spec.emission_strength > 0:
        compat.set_principled(bsdf, "emission", base)
        compat.set_principled(bsdf, "emission_strength", spec.emission_strength)
    if spec.checker is not None:
        checker = _checker_node(tree, base, hex_to_linear_rgba(spec.checker.color2), spec.checker.scale)
        tree.links.new(checker.outputs["Color"], compat.principled_input(bsdf, "base_color"))
    # Workbench and the viewport show diffuse_color, not the node tree.
    mat.diffuse_color = base
    mat.metallic = spec.metallic
    mat.roughness = spec.roughness
    return mat


def _checker_node(tree: Any, c1: tuple[float, ...], c2: tuple[float, ...], scale: float) -> Any:
    coords = tree.nodes.new("ShaderNodeTexCoord")
    checker = tree.nodes.new("ShaderNodeTexChecker")
    # Generated coordinates run 0..1 across the object's bounds on every primitive, so
    # `scale` is the number of squares across the surface without needing UVs.
    tree.links.new(coords.outputs["Generated"], checker.inputs["Vector"])
    checker.inputs["Color1"].default_value = c1
    checker.inputs["Color2"].default_value = c2
    checker.inputs["Scale"].default_value = scale
    return checker


def build_floor_material(spec: SceneSpec, built: BuiltScene) -> Any:
    floor = spec.floor
    mat, tree, bsdf = _new_material(f"{built.job_id} floor", built)
    c1 = hex_to_linear_rgba(floor.color)
    c2 = hex_to_linear_rgba(floor.color2)
    compat.set_principled(bsdf, "base_color", c1)
    compat.set_principled(bsdf, "roughness", 0.7)
    mat.diffuse_color = c1
    if floor.kind is FloorKind.CHECKERED:
        checker = _checker_node(tree, c1, c2, float(floor.tiles))
        tree.links.new(checker.outputs["Color"], compat.principled_input(bsdf, "base_color"))
    elif floor.kind is FloorKind.GRID:
        coords = tree.nodes.new("ShaderNodeTexCoord")
        brick = tree.nodes.new("ShaderNodeTexBrick")
        # Bricks with no offset are squares; the mortar draws the grid lines.
        brick.offset = 0.0
        brick.squash = 1.0
        tree.links.new(coords.outputs["Generated"], brick.inputs["Vector"])
        cell = 1.0 / floor.tiles
        brick.inputs["Color1"].default_value = c1
        brick.inputs["Color2"].default_value = c1
        brick.inputs["Mortar"].default_value = c2
        brick.inputs["Scale"].default_value = 1.0
        brick.inputs["Brick Width"].default_value = cell
        brick.inputs["Row Height"].default_value = cell
        brick.inputs["Mortar Size"].default_value = cell * 0.04
        brick.inputs["Mortar Smooth"].default_value = 0.0
        tree.links.new(brick.outputs["Color"], compat.principled_input(bsdf, "base_color"))
    return mat


# ------------------------------------------------------------------------------- objects

def _link(built: BuiltScene, obj: Any) -> Any:
    built.scene.collection.objects.link(obj)
    return obj


def _look_rotation(origin: Vector, target: Vector) -> Euler:
    direction = target - origin
    if direction.length < 1e-6:
        direction = Vector((0.0, 0.0, -1.0))
    return direction.to_track_quat("-Z", "Y").to_euler()


def build_object(ospec: ObjectSpec, index: int, built: BuiltScene) -> Any:
    """One mesh or text object with its material, linked into the job's scene."""
    if ospec.primitive is Primitive.ASSET:
        return asset_linker.build_asset_object(ospec, index, built)
    label = ospec.name or ospec.primitive.value
    name = f"{label} {index + 1}"
    if ospec.material.asset is not None:
        material = asset_linker.asset_material(ospec.material.asset, built)
    else:
        material = build_material(ospec.material, f"{built.job_id} {name}", built)
    rotation = [math.radians(a) for a in ospec.rotation_deg.as_tuple()]
    if ospec.primitive is Primitive.TEXT:
        curve = built.track(bpy.data.curves.new(name, type="FONT"))
        curve.body = (ospec.text or label)[:200]
        curve.align_x = "CENTER"
        curve.align_y = "CENTER"
        curve.size = 1.0
        curve.extrude = 0.08
        curve.materials.append(material)
        data = curve
        rotation[0] += math.pi / 2  # upright, reading from the default (-Y) camera side
    else:
        data = _mesh_for(ospec.primitive, name, built)
        data.materials.append(material)
    obj = built.track(bpy.data.objects.new(name, data))
    obj.location = ospec.location.as_tuple()
    obj.rotation_euler = rotation
    obj.scale = ospec.scale.as_tuple()
    return _link(built, obj)


def build_floor(spec: SceneSpec, built: BuiltScene) -> Any | None:
    if spec.floor.kind is FloorKind.NONE:
        return None
    mesh = _mesh_for(Primitive.PLANE, f"{built.job_id} floor", built, plane_size=spec.floor.size)
    mesh.materials.append(build_floor_material(spec, built))
    obj = built.track(bpy.data.objects.new("floor", mesh))
    return _link(built, obj)


def build_world(spec: SceneSpec, built: BuiltScene) -> Any:
    w = spec.world
    if w.asset is not None:
        world = asset_linker.asset_world(w.asset, built)
        built.scene.world = world
        return world
    world = built.track(bpy.data.worlds.new(f"{built.job_id} world"))
    tree = compat.ensure_node_tree(world)
    background = next((n for n in tree.nodes if n.type == "BACKGROUND"), None) \
        or tree.nodes.new("ShaderNodeBackground")
    output = next((n for n in tree.nodes if n.type == "OUTPUT_WORLD"), None) \
        or tree.nodes.new("ShaderNodeOutputWorld")
    if not background.outputs[0].links:
        tree.links.new(background.outputs[0], output.inputs["Surface"])
    background.inputs["Strength"].default_value = w.strength
    zenith = hex_to_linear_rgba(w.color)
    world.color = zenith[:3]  # Workbench's world colour
    if w.kind is WorldKind.SKY:
        horizon = hex_to_linear_rgba(w.horizon_color)
        # Gradient by view direction: Generated coords in a world are the ray direction,
        # so its Z runs from 0 at the horizon to 1 at the zenith.
        coords = tree.nodes.new("ShaderNodeTexCoord")
        sep = tree.nodes.new("ShaderNodeSeparateXYZ")
        ramp = tree.nodes.new("ShaderNodeValToRGB")
        ramp.color_ramp.elements[0].position = 0.0
        ramp.color_ramp.elements[0].color = horizon
        ramp.color_ramp.elements[1].position = 0.6
        ramp.color_ramp.elements[1].color = zenith
        tree.links.new(coords.outputs["Generated"], sep.inputs[0])
        tree.links.new(sep.outputs["Z"], ramp.inputs["Fac"])
        tree.links.new(ramp.outputs["Color"], background.inputs["Color"])
        world.color = tuple((a + b) / 2 for a, b in zip(zenith[:3], horizon[:3], strict=True))
    else:
        background.inputs["Color"].default_value = zenith
    built.scene.world = world
    return world


def _rig_lights(rig: LightRig) -> list[LightSpec]:
    def L(t: LightType, loc: tuple[float, float, float], energy: float, color: str = "#ffffff",
          size: float = 2.0) -> LightSpec:
        return LightSpec(type=t, location=Vec3(x=loc[0], y=loc[1], z=loc[2]), look_at=Vec3(x=0.0, y=0.0, z=0.0),
                         energy=energy, color=color, size=size)

    if rig is LightRig.STUDIO:  # key, fill, rim
        return [L(LightType.AREA, (4, -4, 6), 500, size=3),
                L(LightType.AREA, (-5, -3, 3), 150, "#dfe8ff", size=4),
                L(LightType.AREA, (0, 5, 5), 250, size=2)]
    if rig is LightRig.SUNSET:  # low warm sun, cool sky fill
        return [L(LightType.SUN, (-6, 3, 1.5), 4.0, "#ff9a4d", size=2),
                L(LightType.AREA, (4, -4, 6), 150, "#8fa6d8", size=6)]
    if rig is LightRig.NIGHT:  # faint blue moon, one warm practical
        return [L(LightType.SUN, (3, 4, 8), 0.4, "#9db4ff", size=1),
                L(LightType.POINT, (-2, -2, 2.5), 150, "#ffb46b", size=0.3)]
    if rig is LightRig.SOFT:  # one big overhead area plus a soft fill
        return [L(LightType.AREA, (0, 0, 7), 500, size=10),
                L(LightType.AREA, (-4, -6, 3), 100, size=6)]
    return []


def build_lights(spec: SceneSpec, built: BuiltScene) -> list[Any]:
    specs = _rig_lights(spec.lighting.rig) + list(spec.lighting.lights)
    objs = []
    for i, ls in enumerate(specs):
        # Our light types are Blender's, lower-cased.
        light = built.track(bpy.data.lights.new(f"{built.job_id} light {i + 1}", type=ls.type.value.upper()))
        light.energy = ls.energy
        light.color = hex_to_linear_rgba(ls.color)[:3]
        compat.set_light_size(light, ls.size)
        obj = built.track(bpy.data.objects.new(f"light {i + 1}", light))
        loc = Vector(ls.location.as_tuple())
        obj.location = loc
        obj.rotation_euler = _look_rotation(loc, Vector(ls.look_at.as_tuple()))
        objs.append(_link(built, obj))
    return objs


def orbit_position(look_at: Vector, distance: float, elevation_deg: float, azimuth_deg: float) -> Vector:
    """Point on a sphere around `look_at` (azimuth from +X toward +Y; -45 is front right)."""
    el = math.radians(elevation_deg)
    az = math.radians(azimuth_deg)
    return look_at + Vector((distance * math.cos(el) * math.cos(az),
                             distance * math.cos(el) * math.sin(az),
                             distance * math.sin(el)))


def build_camera(spec: SceneSpec, built: BuiltScene) -> Any:
    cam_spec = spec.camera
    cam = built.track(bpy.data.cameras.new(f"{built.job_id} camera"))
    cam.lens = cam_spec.lens_mm
    target = Vector(cam_spec.look_at.as_tuple())
    if cam_spec.location is not None:
        position = Vector(cam_spec.location.as_tuple())
    else:
        o = cam_spec.orbit
        position = orbit_position(target, o.distance, o.elevation_deg, o.azimuth_deg)
    distance = (position - target).length
    cam.clip_start = 0.05
    cam.clip_end = max(200.0, distance * 4 + spec.floor.size)
    obj = built.track(bpy.data.objects.new("camera", cam))
    _link(built, obj)
    built.scene.camera = obj
    if spec.animation.kind is AnimationKind.TURNTABLE:
        # One key per frame on the camera itself (no pivot parent: a parent's motion was
        # not picked up when rendering a scene that is not the window's, and explicit keys
        # keep `BuiltScene.set_frame` exact). Frame n stops one step short of a full turn
        # so the loop is seamless.
        offset = position - target
        radius = math.hypot(offset.x, offset.y)
        start_az = math.atan2(offset.y, offset.x)
        n = spec.animation.frames
        euler = None
        for frame in range(1, n + 1):
            az = start_az + 2 * math.pi * (frame - 1) / n
            pos = target + Vector((radius * math.cos(az), radius * math.sin(az), offset.z))
            obj.location = pos
            rot = _look_rotation(pos, target)
            if euler is not None:
                rot.make_compatible(euler)  # no 360-degree flips between keys
            euler = rot
            obj.rotation_euler = rot
            obj.keyframe_insert("location", frame=frame)
            obj.keyframe_insert("rotation_euler", frame=frame)
        _finish_animation(obj, built)
        built.set_frame(1)
    else:
        obj.location = position
        obj.rotation_euler = _look_rotation(position, target)
    return obj


def _finish_animation(obj: Any, built: BuiltScene, linear: bool = True) -> None:
    anim = obj.animation_data
    if anim is None or anim.action is None:
        return
    built.track(anim.action)
    if linear:
        compat.set_linear_interpolation(anim.action)


def animate_objects(spec: SceneSpec, objects: Iterable[Any], built: BuiltScene) -> None:
    n = spec.animation.frames
    kind = spec.animation.kind
    for obj in objects:
        if kind is AnimationKind.SPIN:
            z0 = obj.rotation_euler[2]
            obj.keyframe_insert("rotation_euler", index=2, frame=1)
            obj.rotation_euler[2] = z0 + 2 * math.pi
            obj.keyframe_insert("rotation_euler", index=2, frame=n + 1)
            obj.rotation_euler[2] = z0
            _finish_animation(obj, built)
        elif kind is AnimationKind.BOUNCE:
            z0 = obj.location[2]
            height = max(0.5, obj.scale[2] * 0.8)
            # Two hops: floor, top, floor, top, floor (eased by the default Bezier keys).
            for k, frac in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
                obj.location[2] = z0 + (height if k % 2 else 0.0)
                obj.keyframe_insert("location", index=2, frame=1 + round(frac * n))
            obj.location[2] = z0
            _finish_animation(obj, built, linear=False)


def build_scene(spec: SceneSpec, job_id: str) -> BuiltScene:
    """Build `spec` into a new scene of its own. On failure everything made so far is removed."""
    asset_reader.refresh_if_due()  # between jobs, within a budget (docs/ASSETS.md)
    fonts_before = {f.as_pointer() for f in bpy.data.fonts}
    scene = bpy.data.scenes.new(f"SlackAI {job_id}")
    built = BuiltScene(scene=scene, job_id=job_id)
    built.track(scene)
    try:
        anim = spec.animation
        scene.frame_start = 1
        scene.frame_end = anim.frames if spec.is_animation else 1
        scene.frame_current = 1
        scene.render.fps = anim.fps
        built.frames = anim.frames if spec.is_animation else 1
        compat.setup_color_management(scene)
        build_world(spec, built)
        build_floor(spec, built)
        objects = [build_object(o, i, built) for i, o in enumerate(spec.objects)]
        build_lights(spec, built)
        build_camera(spec, built)
        if anim.kind in (AnimationKind.SPIN, AnimationKind.BOUNCE):
            animate_objects(spec, objects, built)
        _track_new_fonts(built, fonts_before)
    except BaseException:
        _track_new_fonts(built, fonts_before)
        built.cleanup()
        raise
    log.debug("built scene %s: %d data-blocks", built.scene_name, len(built.ids))
    return built


def _track_new_fonts(built: BuiltScene, before: set[int]) -> None:
    # A FONT curve loads Blender's built-in font as a data-block on first use. Fonts that did
    # not exist (by identity) before this build are ours; the user's own fonts stay. User
    # counts cannot tell: 3.4 holds one extra user on the built-in font.
    for font in bpy.data.fonts:
        if font.as_pointer() not in before:
            built.track(font)
