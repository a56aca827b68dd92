"""Scene building: isolation from the user's data, complete cleanup, geometry conventions."""

from __future__ import annotations

import bpy
import pytest

from slack_ai_addon.blender import builder, compat, headless
from slack_ai_addon.core.scene_spec import Primitive

from .helpers import datablock_counts, make_spec

pytestmark = pytest.mark.blender

SHAPES = [p for p in Primitive if p is not Primitive.ASSET]  # assets: tests/blender/test_assets.py
VARIED_SPECS = [
    {"objects": [{"primitive": p.value, "location": {"x": i - 4.0, "z": 0.5}, "text": "Hi" if p is Primitive.TEXT
                  else None, "material": {"checker": {"color2": "#000000", "scale": 4}} if i % 3 == 0 else {}}
                 for i, p in enumerate(SHAPES)],
     "floor": {"kind": "grid"}, "world": {"kind": "sky"}},
    {"animation": {"kind": "turntable", "frames": 2}, "output": {"format": "gif"}, "floor": {"kind": "checkered"}},
    {"animation": {"kind": "spin", "frames": 2}, "output": {"format": "mp4"}, "lighting": {"rig": "sunset"}},
    {"animation": {"kind": "bounce", "frames": 4}, "output": {"format": "gif"}, "lighting": {"rig": "night"}},
    {"output": {"format": "jpeg"}, "floor": {"kind": "none"}, "lighting": {"rig": "custom", "lights": [
        {"type": "spot", "energy": 300}, {"type": "point"}, {"type": "sun", "energy": 2}]}},
    {"objects": [{"primitive": "text", "text": "SLACK", "material": {"emission_strength": 3.0,
                                                                      "transmission": 0.5, "metallic": 1.0}}]},
]


def _user_scene() -> tuple[str, list[str]]:
    """A user's scene with an object whose names collide with ours."""
    scene = bpy.context.scene
    for name in ("camera", "cube 1", "floor"):
        obj = bpy.data.objects.new(name, bpy.data.meshes.new(name))
        scene.collection.objects.link(obj)
    return scene.name, sorted(o.name for o in scene.objects)


def test_user_scene_is_untouched_and_nothing_is_left_after_20_jobs(render_spec) -> None:
    scene_name, objects = _user_scene()
    user_scene = bpy.context.scene
    user_frame = user_scene.frame_current
    user_engine = user_scene.render.engine
    before = datablock_counts()
    for i in range(20):
        spec = make_spec(**VARIED_SPECS[i % len(VARIED_SPECS)])
        result, _ = render_spec(spec, job_id=f"job-{i}")
        assert result.stopped == "" and result.outputs
    assert datablock_counts() == before
    assert bpy.context.scene == user_scene and bpy.context.scene.name == scene_name
    assert sorted(o.name for o in user_scene.objects) == objects
    assert user_scene.frame_current == user_frame and user_scene.render.engine == user_engine
    assert [s.name for s in bpy.data.scenes] == [scene_name]


def test_build_tracks_every_new_datablock_and_cleanup_removes_them() -> None:
    before = datablock_counts()
    built = builder.build_scene(make_spec(**VARIED_SPECS[0]), "job-a")
    grown = {k: v - before[k] for k, v in datablock_counts().items() if v != before[k]}
    assert grown["objects"] >= len(SHAPES) + 2 and grown["meshes"] >= len(SHAPES)
    assert sum(grown.values()) == len({i.as_pointer() for i in built.ids})
    assert built.scene != bpy.context.scene
    built.cleanup()
    built.cleanup()  # twice is harmless
    assert datablock_counts() == before


def test_failed_build_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    before = datablock_counts()

    def broken_camera(spec, built):  # noqa: ANN001, ANN202
        raise RuntimeError("camera broke")

    monkeypatch.setattr(builder, "build_camera", broken_camera)
    with pytest.raises(RuntimeError, match="camera broke"):
        builder.build_scene(make_spec(**VARIED_SPECS[0]), "job-b")
    assert datablock_counts() == before


def test_two_jobs_with_the_same_names_do_not_collide() -> None:
    first = builder.build_scene(make_spec(), "same")
    second = builder.build_scene(make_spec(), "same")
    assert first.scene != second.scene
    cube_1 = [o for o in first.scene.objects if o.type == "MESH" and o.name.startswith("cube")]
    cube_2 = [o for o in second.scene.objects if o.type == "MESH" and o.name.startswith("cube")]
    assert len(cube_1) == len(cube_2) == 1 and cube_1[0] != cube_2[0]
    first.cleanup()
    assert len(second.scene.objects) > 0 and cube_2[0].name  # the second job's data is intact
    second.cleanup()


@pytest.mark.parametrize("primitive,size", [("cube", (1, 1, 1)), ("sphere", (1, 1, 1)),
                                            ("cylinder", (1, 1, 1)), ("cone", (1, 1, 1)),
                                            ("torus", (1, 1, 0.3)), ("plane", (1, 1, 0))])
def test_primitives_are_one_metre_and_centred(primitive: str, size: tuple[float, float, float]) -> None:
    built = builder.build_scene(make_spec(objects=[{"primitive": primitive, "scale": {"x": 2, "y": 1, "z": 1}}]),
                                "geo")
    try:
        obj = next(o for o in built.scene.objects if o.name.startswith(primitive))
        xs, ys, zs = zip(*(v.co for v in obj.data.vertices), strict=True)
        assert (max(xs) - min(xs), max(ys) - min(ys), max(zs) - min(zs)) == pytest.approx(size, abs=0.02)
        assert (max(zs) + min(zs)) / 2 == pytest.approx(0.0, abs=0.02)
        assert tuple(obj.scale) == pytest.approx((2, 1, 1))
    finally:
        built.cleanup()


def test_material_sockets_and_colours() -> None:
    spec = make_spec(objects=[{"primitive": "cube", "material": {"base_color": "#ff0000", "metallic": 0.7,
                                                                 "emission_strength": 2.0, "transmission": 0.4}}])
    built = builder.build_scene(spec, "mat")
    try:
        obj = next(o for o in built.scene.objects if o.type == "MESH" and o.name.startswith("cube"))
        bsdf = next(n for n in obj.data.materials[0].node_tree.nodes if n.type == "BSDF_PRINCIPLED")
        base = compat.principled_input(bsdf, "base_color").default_value
        assert tuple(base)[:3] == pytest.approx((1.0, 0.0, 0.0))
        assert compat.principled_input(bsdf, "metallic").default_value == pytest.approx(0.7)
        assert compat.principled_input(bsdf, "emission_strength").default_value == pytest.approx(2.0)
        assert tuple(compat.principled_input(bsdf, "emission").default_value)[:3] == pytest.approx((1, 0, 0))
        assert compat.principled_input(bsdf, "transmission").default_value == pytest.approx(0.4)
    finally:
        built.cleanup()


def test_turntable_camera_orbits_and_spin_turns_objects() -> None:
    built = builder.build_scene(make_spec(animation={"kind": "turntable", "frames": 4}), "tt")
    try:
        cam = built.scene.camera
        positions = []
        for frame in (1, 2, 3):
            built.set_frame(frame)
            positions.append(tuple(cam.location))
        assert positions[0] != pytest.approx(positions[1])
        # Half a turn later the camera is on the other side of the look-at point (0, 0, 0.5).
        assert positions[2][0] == pytest.approx(-positions[0][0], abs=1e-3)
        assert positions[2][2] == pytest.approx(positions[0][2], abs=1e-3)
    finally:
        built.cleanup()
    built = builder.build_scene(make_spec(animation={"kind": "spin", "frames": 4}), "spin")
    try:
        cube = next(o for o in built.scene.objects if o.name.startswith("cube"))
        built.set_frame(3)
        assert cube.rotation_euler[2] == pytest.approx(3.14159, abs=1e-3)
    finally:
        built.cleanup()


def test_compat_engine_ids_are_valid_here() -> None:
    scene = bpy.context.scene
    for engine in ("cycles", "workbench", "eevee"):
        ident = compat.engine_id(scene, engine)
        scene.render.engine = ident
        assert scene.render.engine == ident
    assert compat.engine_id(scene, "eevee") in ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT")


def test_prepare_module_mode_turns_online_access_on_and_is_idempotent() -> None:
    first = headless.prepare_module_mode()
    second = headless.prepare_module_mode()
    system = bpy.context.preferences.system
    if hasattr(system, "use_online_access"):
        assert system.use_online_access is True
        assert second["online_access"] in ("already on", "left to the command line")
    assert first["version"] == second["version"] == bpy.app.version_string
    assert "cycles" in bpy.context.preferences.addons
