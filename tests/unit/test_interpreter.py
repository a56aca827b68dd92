"""The offline interpreter: phrasings to spec fields, layout, edits, bad input, fuzzing, intents."""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slack_ai_addon.core.pipeline import Interpretation, SpecInterpreter
from slack_ai_addon.core.scene_spec import MAX_OBJECTS, Primitive, SceneSpec, SpecError
from slack_ai_addon.providers.offline import OfflineInterpreter, offline_intent
from slack_ai_addon.providers.offline.layout import HALF_EXTENTS, half_extents

INTERP = OfflineInterpreter()


def run(text: str, previous: SceneSpec | None = None) -> Interpretation:
    return INTERP.interpret(text, previous=previous)


def field(spec: SceneSpec, path: str) -> Any:
    """Dotted path into the spec's JSON form, e.g. "floor.kind" or "objects.0.primitive"."""
    node: Any = spec.to_json_dict()
    for part in path.split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    return node


def prims(spec: SceneSpec) -> list[str]:
    return [o.primitive.value for o in spec.objects]


def colors(spec: SceneSpec) -> list[str]:
    return [o.material.base_color for o in spec.objects]


def boxes(spec: SceneSpec) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    out = []
    for o in spec.objects:
        hx, hy, hz = half_extents(o.primitive, o.scale.as_tuple(), o.text)
        if o.rotation_deg.z:  # turned about Z: its footprint grows to the xy radius
            hx = hy = math.hypot(hx, hy)
        c = o.location.as_tuple()
        out.append(((c[0] - hx, c[1] - hy, c[2] - hz), (c[0] + hx, c[1] + hy, c[2] + hz)))
    return out


def assert_no_overlap(spec: SceneSpec) -> None:
    for (a, b), (lo1, hi1), (lo2, hi2) in ((pair, *pair_boxes) for pair, pair_boxes in zip(
            itertools.combinations(range(len(spec.objects)), 2),
            itertools.combinations(boxes(spec), 2), strict=True)):
        overlap = all(lo1[k] < hi2[k] - 1e-6 and lo2[k] < hi1[k] - 1e-6 for k in range(3))
        assert not overlap, f"objects {a} and {b} overlap: {spec.objects[a].location} {spec.objects[b].location}"


def assert_on_floor(spec: SceneSpec) -> None:
    for o in spec.objects:
        hz = half_extents(o.primitive, o.scale.as_tuple(), o.text)[2]
        assert o.location.z >= hz - 1e-6, f"{o.name} sinks into the floor"


# ------------------------------------------------------------------ the phrasing table

CASES: list[tuple[str, dict[str, Any]]] = [
    ("a red cube", {"prims": ["cube"], "colors": ["#ff0000"]}),
    ("a ball", {"prims": ["sphere"]}),
    ("an orb", {"prims": ["sphere"]}),
    ("a sphere", {"prims": ["sphere"]}),
    ("a box", {"prims": ["cube"]}),
    ("a donut", {"prims": ["torus"]}),
    ("a torus", {"prims": ["torus"]}),
    ("a gold ring", {"prims": ["torus"], "objects.0.material.metallic": 1.0}),
    ("suzanne", {"prims": ["monkey"]}),
    ("a monkey head", {"prims": ["monkey"]}),
    ("a cylinder", {"prims": ["cylinder"]}),
    ("a soda can", {"prims": ["cylinder"]}),
    ("a tube", {"prims": ["cylinder"]}),
    ("a cone", {"prims": ["cone"]}),
    ("a pyramid", {"prims": ["cone"], "warning": "cone"}),
    ("a plane", {"prims": ["plane"]}),
    ("an ico sphere", {"prims": ["ico_sphere"]}),
    ("an icosphere", {"prims": ["ico_sphere"]}),
    ('text "HELLO"', {"prims": ["text"], "objects.0.text": "HELLO"}),
    ('the word "hi" in neon pink', {"prims": ["text"], "objects.0.text": "hi",
                                    "objects.0.material.emission_strength": 10.0}),
    ("three spheres", {"prims": ["sphere"] * 3}),
    ("5 cubes", {"prims": ["cube"] * 5}),
    ("a pair of cones", {"prims": ["cone"] * 2}),
    ("a dozen balls", {"prims": ["sphere"] * 12}),
    ("twenty one cubes", {"prims": ["cube"] * 21}),
    ("a red cube and a blue sphere", {"prims": ["cube", "sphere"], "colors": ["#ff0000", "#0000ff"]}),
    ("a light blue sphere and a dark red cube", {"colors": ["#add8e6", "#8b0000"]}),
    ("a cube on a checkered floor", {"floor.kind": "checkered"}),
    ("a cube on a chessboard", {"floor.kind": "checkered"}),
    ("a cube on a red and white checkerboard floor", {"floor.kind": "checkered", "floor.color": "#ff0000",
                                                      "floor.color2": "#ffffff"}),
    ("a cube on a white floor", {"floor.kind": "plain", "floor.color": "#ffffff", "colors": ["#cccccc"]}),
    ("a cube on a grid floor", {"floor.kind": "grid"}),
    ("a floating cube", {"floor.kind": "none"}),
    ("a cube with no floor", {"floor.kind": "none"}),
    ("a cube, black background", {"world.kind": "color", "world.color": "#000000"}),
    ("a cube under a clear sky", {"world.kind": "sky"}),
    ("a cube at sunset", {"lighting.rig": "sunset"}),
    ("a cube at night", {"lighting.rig": "night"}),
    ("a cube with soft lighting", {"lighting.rig": "soft"}),
    ("a cube, overcast", {"lighting.rig": "soft"}),
    ("a cube, studio lighting", {"lighting.rig": "studio"}),
    ("a rotating cube", {"animation.kind": "spin", "output.format": "gif"}),
    ("a spinning cube as an mp4", {"animation.kind": "spin", "output.format": "mp4"}),
    ("a cube, turntable", {"animation.kind": "turntable", "output.format": "gif"}),
    ("a cube, the camera circles around it", {"animation.kind": "turntable"}),
    ("a bouncing ball", {"animation.kind": "bounce", "prims": ["sphere"]}),
    ("a spinning cube for 3 seconds", {"animation.frames": 36}),
    ("a cube turntable, 48 frames", {"animation.frames": 48}),
    ("a video of a cube", {"output.format": "mp4", "animation.kind": "turntable"}),
    ("a huge sphere", {"objects.0.scale.x": 2.5, "objects.0.location.z": 1.25}),
    ("a tiny cube", {"objects.0.scale.x": 0.4}),
    ("a cube in 4k", {"output.width": 3840, "output.height": 2160}),
    ("a cube at 1080p", {"output.width": 1920, "output.height": 1080}),
    ("a cube, 720p", {"output.width": 1280, "output.height": 720}),
    ("a cube 800x600", {"output.width": 800, "output.height": 600}),
    ("a cube, square", {"output.width": 480, "output.height": 480}),
    ("a cube in portrait", {"output.width": 480, "output.height": 640}),
    ("a draft cube", {"output.samples": 8, "output.width": 320}),
    ("a cube, quick preview", {"output.samples": 8}),
    ("a cube, high quality", {"output.samples": 128}),
    ("a cube in eevee", {"output.engine": "eevee"}),
    ("a cube using workbench", {"output.engine": "workbench"}),
    ("a cube with cycles", {"output.engine": "cycles"}),
    ("a cube as a jpeg", {"output.format": "jpeg"}),
    ("a cube, png", {"output.format": "png"}),
    ("a metallic sphere", {"objects.0.material.metallic": 1.0}),
    ("a chrome sphere", {"objects.0.material.metallic": 1.0, "objects.0.material.roughness": 0.05}),
    ("a glass sphere", {"objects.0.material.transmission": 1.0}),
    ("a glowing cube", {"objects.0.material.emission_strength": 5.0}),
    ("a matte cube", {"objects.0.material.roughness": 0.9}),
    ("a glossy cube", {"objects.0.material.roughness": 0.08}),
    ("a copper cylinder", {"objects.0.material.metallic": 1.0, "colors": ["#b87333"]}),
    ("a sphere on top of a cube", {"prims": ["cube", "sphere"], "objects.1.location.z": 1.5}),
    ("a checkered cube", {"prims": ["cube"], "floor.kind": "plain"}),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_phrasing_table(text: str, expected: dict[str, Any]) -> None:
    result = run(text)
    spec = result.spec
    for key, want in expected.items():
        if key == "prims":
            assert prims(spec) == want
        elif key == "colors":
            assert colors(spec) == want
        elif key == "warning":
            assert any(want in w for w in result.warnings), result.warnings
        else:
            got = field(spec, key)
            assert got == pytest.approx(want) if isinstance(want, float) else got == want, (key, got)
    assert result.provider == "offline"
    assert SceneSpec.model_validate(spec.to_json_dict()) == spec
    assert_no_overlap(spec)
    assert_on_floor(spec)


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_checker_material_on_object() -> None:
    spec = run("a checkered cube").spec
    assert spec.objects[0].material.checker is not None


def test_implements_protocol() -> None:
    interpreter: SpecInterpreter = INTERP
    assert interpreter.interpret("a cube").spec.objects


# ------------------------------------------------------------------ determinism and counts

@pytest.mark.parametrize("text", ["a dozen balls scattered randomly", "three red cubes and a torus in a circle",
                                  "seven things"])
def test_same_text_same_spec(text: str) -> None:
    assert run(text).spec == run(text).spec
    assert run(text).spec.to_json_dict() == OfflineInterpreter().interpret(text).spec.to_json_dict()


def test_plural_without_count_assumes_three_and_says_so() -> None:
    result = run("spheres")
    assert prims(result.spec) == ["sphere"] * 3
    assert any("3" in w for w in result.warnings)


def test_count_capped_at_max_objects_with_warning() -> None:
    result = run("500 cubes")
    assert len(result.spec.objects) == MAX_OBJECTS
    assert any("limited to 50" in w for w in result.warnings)
    assert_no_overlap(result.spec)


def test_generic_plural_makes_a_mix() -> None:
    spec = run("five random shapes").spec
    assert len(spec.objects) == 5
    assert len(set(prims(spec))) == 5


# ------------------------------------------------------------------ colours

# The 148 CSS Color Module Level 4 named colours, copied from the W3C list (not from the
# interpreter's own table, so a typo there fails here).
W3C_NAMED_COLORS = dict(pair.split("=") for pair in """
    aliceblue=f0f8ff antiquewhite=faebd7 aqua=00ffff aquamarine=7fffd4 azure=f0ffff beige=f5f5dc bisque=ffe4c4
    black=000000 blanchedalmond=ffebcd blue=0000ff blueviolet=8a2be2 brown=a52a2a burlywood=deb887 cadetblue=5f9ea0
    chartreuse=7fff00 chocolate=d2691e coral=ff7f50 cornflowerblue=6495ed cornsilk=fff8dc crimson=dc143c
    cyan=00ffff darkblue=00008b darkcyan=008b8b darkgoldenrod=b8860b darkgray=a9a9a9 darkgreen=006400
    darkgrey=a9a9a9 darkkhaki=bdb76b darkmagenta=8b008b darkolivegreen=556b2f darkorange=ff8c00 darkorchid=9932cc
    darkred=8b0000 darksalmon=e9967a darkseagreen=8fbc8f darkslateblue=483d8b darkslategray=2f4f4f
    darkslategrey=2f4f4f darkturquoise=00ced1 darkviolet=9400d3 deeppink=ff1493 deepskyblue=00bfff dimgray=696969
    dimgrey=696969 dodgerblue=1e90ff firebrick=b22222 floralwhite=fffaf0 forestgreen=228b22 fuchsia=ff00ff
    gainsboro=dcdcdc ghostwhite=f8f8ff gold=ffd700 goldenrod=daa520 gray=808080 green=008000 greenyellow=adff2f
    grey=808080 honeydew=f0fff0 hotpink=ff69b4 indianred=cd5c5c indigo=4b0082 ivory=fffff0 khaki=f0e68c
    lavender=e6e6fa lavenderblush=fff0f5 lawngreen=7cfc00 lemonchiffon=fffacd lightblue=add8e6 lightcoral=f08080
    lightcyan=e0ffff lightgoldenrodyellow=fafad2 lightgray=d3d3d3 lightgreen=90ee90 lightgrey=d3d3d3
    lightpink=ffb6c1 lightsalmon=ffa07a lightseagreen=20b2aa lightskyblue=87cefa lightslategray=778899
    lightslategrey=778899 lightsteelblue=b0c4de lightyellow=ffffe0 lime=00ff00 limegreen=32cd32 linen=faf0e6
    magenta=ff00ff maroon=800000 mediumaquamarine=66cdaa mediumblue=0000cd mediumorchid=ba55d3 mediumpurple=9370db
    mediumseagreen=3cb371 mediumslateblue=7b68ee mediumspringgreen=00fa9a mediumturquoise=48d1cc
    mediumvioletred=c71585 midnightblue=191970 mintcream=f5fffa mistyrose=ffe4e1 moccasin=ffe4b5 navajowhite=ffdead
    navy=000080 oldlace=fdf5e6 olive=808000 olivedrab=6b8e23 orange=ffa500 orangered=ff4500 orchid=da70d6
    palegoldenrod=eee8aa palegreen=98fb98 paleturquoise=afeeee palevioletred=db7093 papayawhip=ffefd5
    peachpuff=ffdab9 peru=cd853f pink=ffc0cb plum=dda0dd powderblue=b0e0e6 purple=800080 rebeccapurple=663399
    red=ff0000 rosybrown=bc8f8f royalblue=4169e1 saddlebrown=8b4513 salmon=fa8072 sandybrown=f4a460 seagreen=2e8b57
    seashell=fff5ee sienna=a0522d silver=c0c0c0 skyblue=87ceeb slateblue=6a5acd slategray=708090 slategrey=708090
    snow=fffafa springgreen=00ff7f steelblue=4682b4 tan=d2b48c teal=008080 thistle=d8bfd8 tomato=ff6347
    turquoise=40e0d0 violet=ee82ee wheat=f5deb3 white=ffffff whitesmoke=f5f5f5 yellow=ffff00 yellowgreen=9acd32
""".split())


def test_the_w3c_list_is_complete() -> None:
    assert len(W3C_NAMED_COLORS) == 148


@pytest.mark.parametrize(("name", "hex_rgb"), sorted(W3C_NAMED_COLORS.items()))
def test_every_css_colour(name: str, hex_rgb: str) -> None:
    assert run(f"a {name} cube").spec.objects[0].material.base_color == "#" + hex_rgb


@pytest.mark.parametrize(("phrase", "expected"), [("light blue", "#add8e6"), ("dark red", "#8b0000"),
                                                   ("dark slate gray", "#2f4f4f"), ("hot pink", "#ff69b4"),
                                                   ("light-green", "#90ee90"), ("sky blue", "#87ceeb")])
def test_multiword_colours(phrase: str, expected: str) -> None:
    assert run(f"a {phrase} sphere").spec.objects[0].material.base_color == expected


def test_shade_words_change_lightness() -> None:
    pink = run("a pink cube").spec.objects[0].material.base_color
    dark = run("a dark pink cube").spec.objects[0].material.base_color
    pale = run("a pale green cube").spec.objects[0].material.base_color

    def lum(c: str) -> float:
        return sum(int(c[k:k + 2], 16) for k in (1, 3, 5))

    assert lum(dark) < lum(pink)
    assert lum(pale) > lum("#008000")  # CSS green


def test_hex_colour() -> None:
    assert run("a #12ab34 cube").spec.objects[0].material.base_color == "#12ab34"


# ------------------------------------------------------------------ arrangements

@pytest.mark.parametrize("text", ["6 cubes in a row", "eight spheres in a circle", "nine cones in a grid",
                                  "a stack of 4 boxes", "a dozen balls scattered randomly",
                                  "3 huge spheres and 4 tiny cubes", "five spheres around a cube",
                                  "a row of tall cylinders and wide cubes", "40 monkeys scattered"])
def test_arrangements_distinct_and_non_overlapping(text: str) -> None:
    spec = run(text).spec
    locations = {o.location.as_tuple() for o in spec.objects}
    assert len(locations) == len(spec.objects)
    assert_no_overlap(spec)
    assert_on_floor(spec)


def test_row_is_along_x() -> None:
    spec = run("4 cubes in a row").spec
    assert {o.location.y for o in spec.objects} == {0.0}
    xs = [o.location.x for o in spec.objects]
    assert xs == sorted(xs)


def test_circle_is_equidistant() -> None:
    spec = run("six spheres in a circle").spec
    radii = [math.hypot(o.location.x, o.location.y) for o in spec.objects]
    assert max(radii) - min(radii) < 1e-3 and min(radii) > 0.5


def test_around_puts_the_centre_object_in_the_middle() -> None:
    spec = run("five spheres around a cube").spec
    cube = next(o for o in spec.objects if o.primitive is Primitive.CUBE)
    assert (cube.location.x, cube.location.y) == (0.0, 0.0)


def test_stack_rests_each_on_the_one_below() -> None:
    spec = run("a tower of three cubes").spec
    zs = [o.location.z for o in spec.objects]
    assert zs == pytest.approx([0.5, 1.5, 2.5])


def test_left_and_right() -> None:
    spec = run("a blue sphere on the right and a red cube on the left").spec
    sphere = next(o for o in spec.objects if o.primitive is Primitive.SPHERE)
    cube = next(o for o in spec.objects if o.primitive is Primitive.CUBE)
    assert cube.location.x < sphere.location.x


def test_camera_frames_bigger_scenes_from_further_away() -> None:
    one = run("a cube").spec
    many = run("12 cubes in a row").spec
    assert many.camera.orbit.distance > one.camera.orbit.distance * 2
    assert one.camera.location is None  # the builder orbits the look-at point


def test_camera_sees_every_corner() -> None:
    # Project each object's box through the orbit camera: all corners inside the frame.
    for text in ["a cube", "12 cubes in a row", "a tower of 5 cubes", "a dozen balls scattered", "a cube, 1080p",
                 "a cube in portrait", "3 cubes in a row, turntable"]:
        spec = run(text).spec
        cam = spec.camera
        el, az = math.radians(cam.orbit.elevation_deg), math.radians(cam.orbit.azimuth_deg)
        back = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
        right = (-math.sin(az), math.cos(az), 0.0)
        up = (-math.sin(el) * math.cos(az), -math.sin(el) * math.sin(az), math.cos(el))
        w, h = spec.output.width, spec.output.height
        tan_long = 18.0 / cam.lens_mm
        tan_h = tan_long if w >= h else tan_long * w / h
        tan_v = tan_long if h >= w else tan_long * h / w
        target = cam.look_at.as_tuple()
        for lo, hi in boxes(spec):
            for corner in itertools.product(*zip(lo, hi, strict=True)):
                p = [corner[k] - target[k] for k in range(3)]
                depth = cam.orbit.distance - sum(p[k] * back[k] for k in range(3))
                assert abs(sum(p[k] * right[k] for k in range(3))) <= depth * tan_h + 1e-6, text
                assert abs(sum(p[k] * up[k] for k in range(3))) <= depth * tan_v + 1e-6, text


# ------------------------------------------------------------------ not understood

def test_unknown_words_are_reported_not_dropped() -> None:
    result = run("a red cube and a purple elephant wearing a hat")
    assert prims(result.spec) == ["cube"]
    assert result.spec.objects[0].material.base_color == "#ff0000"  # "purple" belonged to the elephant
    joined = " ".join(result.not_understood)
    assert "elephant" in joined and "hat" in joined


def test_stop_words_are_not_reported() -> None:
    result = run("please render me a really nice red cube on the floor")
    assert result.not_understood == []


def test_nothing_renderable_raises_helpful_spec_error() -> None:
    with pytest.raises(SpecError) as err:
        run("a purple elephant")
    assert "elephant" in str(err.value) and "red cube" in str(err.value)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "the and of"])
def test_empty_input(text: str) -> None:
    with pytest.raises(SpecError):
        run(text)


@pytest.mark.parametrize(("text", "field_name"), [("a cube at resolution 999999", "output.width"),
                                                   ("a cube 100000x100", "output.width"),
                                                   ("a cube in 8k", "output.width"),
                                                   ("a cube, 1000 frames", "animation.frames"),
                                                   ("a cube with 99999 samples", "output.samples"),
                                                   ("a spinning cube for 10 minutes", "animation.frames")])
def test_out_of_range_requests_name_the_field(text: str, field_name: str) -> None:
    with pytest.raises(SpecError) as err:
        run(text)
    assert field_name in str(err.value)
    assert field_name in err.value.fields
    if field_name == "output.width":
        assert "16" in str(err.value) and "4096" in str(err.value)


def test_ten_kilobytes_returns_quickly() -> None:
    # The first 4000 characters ask for 115 objects: 50 are made, and both cuts are reported.
    text = ("a red cube and a blue sphere with some words that mean nothing at all " * 150)[:10_000]
    start = time.perf_counter()
    result = run(text)
    assert time.perf_counter() - start < 2.0
    assert prims(result.spec) == ["cube", "sphere"] * 25
    assert colors(result.spec) == ["#ff0000", "#0000ff"] * 25
    assert any("10000 characters" in w and "first 4000" in w for w in result.warnings), result.warnings
    assert any("limited to 50" in w for w in result.warnings), result.warnings
    assert "words" in result.not_understood and len(result.not_understood) <= 20


# ------------------------------------------------------------------ edits

@pytest.fixture
def base() -> SceneSpec:
    return run("a red cube and two green spheres on a checkered floor").spec


def test_edit_recolour_all(base: SceneSpec) -> None:
    spec = run("make it blue", base).spec
    assert colors(spec) == ["#0000ff"] * 3
    assert spec.floor == base.floor


def test_edit_recolour_one_kind(base: SceneSpec) -> None:
    spec = run("make the sphere yellow", base).spec
    assert colors(spec) == ["#ff0000", "#ffff00", "#ffff00"]


def test_edit_selects_by_colour(base: SceneSpec) -> None:
    spec = run("make the green spheres white", base).spec
    assert colors(spec) == ["#ff0000", "#ffffff", "#ffffff"]


def test_edit_add_more_copies_the_existing_look(base: SceneSpec) -> None:
    spec = run("add two more spheres", base).spec
    assert prims(spec) == ["cube"] + ["sphere"] * 4
    assert colors(spec)[-1] == "#008000"
    assert_no_overlap(spec)


def test_edit_add_new_object(base: SceneSpec) -> None:
    spec = run("add a gold torus", base).spec
    assert prims(spec)[-1] == "torus" and spec.objects[-1].material.metallic == 1.0
    assert_no_overlap(spec)


def test_edit_remove(base: SceneSpec) -> None:
    spec = run("remove the cube", base).spec
    assert prims(spec) == ["sphere", "sphere"]
    assert_no_overlap(spec)


def test_edit_remove_everything_is_an_error(base: SceneSpec) -> None:
    with pytest.raises(SpecError):
        run("remove the cube and the spheres", base)


def test_edit_bigger(base: SceneSpec) -> None:
    spec = run("bigger", base).spec
    assert all(o.scale.x == pytest.approx(1.5) for o in spec.objects)
    assert_no_overlap(spec)
    assert_on_floor(spec)
    assert spec.camera.orbit.distance > base.camera.orbit.distance


def test_edit_quality_and_resolution(base: SceneSpec) -> None:
    assert run("higher quality", base).spec.output.samples > base.output.samples
    assert run("4k", base).spec.output.width == 3840
    assert run("draft", base).spec.output.samples == 8


def test_edit_motion(base: SceneSpec) -> None:
    spinning = run("make it spin", base).spec
    assert spinning.animation.kind.value == "spin" and spinning.output.format.value == "gif"
    still = run("stop rotating", spinning).spec
    assert still.animation.kind.value == "none" and still.output.format.value == "png"


def test_edit_engine_floor_lighting(base: SceneSpec) -> None:
    assert run("use eevee", base).spec.output.engine.value == "eevee"
    assert run("grid floor", base).spec.floor.kind.value == "grid"
    assert run("remove the floor", base).spec.floor.kind.value == "none"
    assert run("sunset lighting", base).spec.lighting.rig.value == "sunset"
    assert run("make the floor blue", base).spec.floor.color == "#0000ff"


def test_edit_keeps_everything_else(base: SceneSpec) -> None:
    spec = run("use workbench", base).spec
    assert spec.objects == base.objects and spec.floor == base.floor and spec.camera == base.camera


def test_edit_turn_into(base: SceneSpec) -> None:
    spec = run("turn the cube into a cone", base).spec
    assert prims(spec) == ["cone", "sphere", "sphere"]


def test_unrecognised_edit(base: SceneSpec) -> None:
    with pytest.raises(SpecError) as err:
        run("make it dance", base)
    assert "dance" in str(err.value)
    partial = run("make it blue and dance", base)
    assert colors(partial.spec) == ["#0000ff"] * 3 and "dance" in partial.not_understood



def test_edit_colour_selector_picks_only_that_colour() -> None:
    # Two objects of one shape: "the red cube" is not "every cube".
    before = run("a red cube and a green cube").spec
    assert colors(before) == ["#ff0000", "#008000"]
    spec = run("make the red cube blue", before).spec
    assert prims(spec) == ["cube", "cube"]
    assert colors(spec) == ["#0000ff", "#008000"]


def test_edit_remove_one_of_several() -> None:
    before = run("three spheres").spec
    assert prims(before) == ["sphere", "sphere", "sphere"]
    spec = run("remove one sphere", before).spec
    assert prims(spec) == ["sphere", "sphere"]
    assert_no_overlap(spec)
    mixed = run("remove one sphere", run("a cube and three spheres").spec).spec
    assert prims(mixed) == ["cube", "sphere", "sphere"]


@pytest.mark.parametrize(("text", "edit", "floor"), [
    ("a cube on a red and yellow checkered floor", "make it blue, checkered", ("checkered", "#ff0000", "#ffff00")),
    ("a cube on a blue and white grid floor", "make it red, grid", ("grid", "#0000ff", "#ffffff")),
])
def test_edit_naming_the_same_floor_pattern_keeps_its_colours(text: str, edit: str,
                                                              floor: tuple[str, str, str]) -> None:
    before = run(text).spec
    assert (before.floor.kind.value, before.floor.color, before.floor.color2) == floor
    spec = run(edit, before).spec
    assert (spec.floor.kind.value, spec.floor.color, spec.floor.color2) == floor


@pytest.mark.parametrize(("text", "edit", "floor"), [
    ("a cube on a red and yellow checkered floor", "make the floor checkered", ("checkered", "#ff0000", "#ffff00")),
    ("a cube on a blue and white grid floor", "make the floor grid", ("grid", "#0000ff", "#ffffff")),
])
def test_edit_floor_phrase_with_the_same_pattern_keeps_both_colours(text: str, edit: str,
                                                                    floor: tuple[str, str, str]) -> None:
    before = run(text).spec
    assert (before.floor.kind.value, before.floor.color, before.floor.color2) == floor
    spec = run(edit, before).spec
    assert (spec.floor.kind.value, spec.floor.color, spec.floor.color2) == floor


# "make it 3 cubes" sets how many there are; "add two more" adds. (base text, edit, primitives after)
COUNT_EDITS: list[tuple[str, str, list[str]]] = [
    ("a cube", "make it 3 cubes", ["cube"] * 3),
    ("a cube", "three cubes instead", ["cube"] * 3),
    ("a cube", "make them 3 cubes", ["cube"] * 3),
    ("a cube", "5 of them", ["cube"] * 5),
    ("three cubes", "make it 2 cubes", ["cube"] * 2),
    ("three cubes", "only one cube", ["cube"]),
    ("three cubes", "just two cubes", ["cube"] * 2),
    ("three cubes", "5 of them", ["cube"] * 5),
    ("three cubes", "only 2 of them", ["cube"] * 2),
    ("three cubes", "make them 4", ["cube"] * 4),
    ("three cubes", "make it 2 spheres", ["sphere"] * 2),  # none there: they replace the cubes
    ("three cubes", "make it 2 cubes and 2 spheres", ["cube", "cube", "sphere", "sphere"]),
    ("a red cube and two green spheres", "make it 3 spheres", ["cube"] + ["sphere"] * 3),
    ("a red cube and two green spheres", "only one sphere", ["cube", "sphere"]),
    ("a red cube and two green spheres", "three cubes instead", ["cube"] * 3 + ["sphere"] * 2),
    ("a red cube and two green spheres", "4 of them", ["cube", "cube", "sphere", "sphere"]),
    ("a red cube and two green spheres", "add two more spheres", ["cube"] + ["sphere"] * 4),
    ("a cube", "add two more cubes", ["cube"] * 3),
    ("a cube", "add two spheres", ["cube", "sphere", "sphere"]),
]


@pytest.mark.parametrize(("text", "edit", "expected"), COUNT_EDITS, ids=[f"{c[0]} / {c[1]}" for c in COUNT_EDITS])
def test_edit_sets_or_adds_counts(text: str, edit: str, expected: list[str]) -> None:
    before = run(text).spec
    result = run(edit, before)
    assert prims(result.spec) == expected
    assert result.not_understood == []
    assert not any("were added" in w for w in result.warnings), result.warnings
    assert_no_overlap(result.spec)
    # the copies keep the look of the objects they copy
    for o in result.spec.objects:
        same = [b for b in before.objects if b.primitive == o.primitive]
        if same:
            assert o.material == same[-1].material or o.material in [b.material for b in same]


def test_edit_count_keeps_new_modifiers_and_caps() -> None:
    before = run("a cube").spec
    spec = run("make it 3 red cubes", before).spec
    assert colors(spec) == ["#ff0000"] * 3
    capped = run("make it 1000 cubes", before)
    assert len(capped.spec.objects) == MAX_OBJECTS and any(str(MAX_OBJECTS) in w for w in capped.warnings)
    with pytest.raises(SpecError):
        run("only 0 cubes", before)


# An unknown adjective keeps the count; bare shade words shade the default colour.
@pytest.mark.parametrize(("text", "count", "unknown"), [
    ("5 weird cubes", 5, ["weird"]),
    ("two dark spheres", 2, []),
    ("two bright spheres", 2, []),
    ("three light spheres", 3, []),
    ("two pale cones", 2, []),
    ("3 red weird cubes", 3, ["weird"]),
    ("four strange glass balls", 4, ["strange"]),
])
def test_unknown_adjective_keeps_the_count(text: str, count: int, unknown: list[str]) -> None:
    result = run(text)
    assert len(result.spec.objects) == count
    assert result.not_understood == unknown


@pytest.mark.parametrize(("text", "darker"), [("a dark cube", True), ("two dark spheres", True),
                                              ("a light cube", False), ("two bright spheres", False),
                                              ("a pale sphere", False)])
def test_bare_shade_words_shade_the_default_colour(text: str, darker: bool) -> None:
    default = run("a cube").spec.objects[0].material.base_color
    for color in colors(run(text).spec):
        lum, base = int(color[1:3], 16), int(default[1:3], 16)
        assert (lum < base) if darker else (lum > base), (text, color)


@pytest.mark.parametrize(("text", "expected"), [
    ("a red cube and a purple elephant", ["#ff0000"]),
    ("a purple elephant and a cube", ["#cccccc"]),
    ("a purple elephant near a cube", ["#cccccc"]),
    ("two purple elephants, a cube", ["#cccccc"]),
    ("a cube on a dark background", ["#cccccc"]),
])
def test_unknown_noun_keeps_its_modifiers(text: str, expected: list[str]) -> None:
    assert colors(run(text).spec) == expected


def test_dark_wooden_is_a_darker_brown() -> None:
    wood = colors(run("a wooden cube").spec)[0]
    dark = colors(run("a dark wooden cube").spec)[0]
    assert int(dark[1:3], 16) < int(wood[1:3], 16)


# A run with no spaces is one word: messages stay short anyway. A reported word is cut to
# 40 characters (39 and an ellipsis).
@pytest.mark.parametrize("text", ["x" * 10240, ("z" * 300 + " ") * 30])
@pytest.mark.parametrize("edit", [False, True], ids=["new", "edit"])
def test_long_unknown_words_give_a_short_spec_error(text: str, edit: bool) -> None:
    with pytest.raises(SpecError) as err:
        run(text, run("a cube").spec if edit else None)
    message = str(err.value)
    assert len(message) < 800, len(message)
    assert f"(I did not understand: {text[0] * 39}\u2026" in message or \
        f"(not understood: {text[0] * 39}\u2026" in message  # the word, clipped
    assert text[0] * 100 not in message  # the quoted request is shortened too


@pytest.mark.parametrize("edit", [False, True], ids=["new", "edit"])
def test_long_word_after_a_shape_is_clipped_in_not_understood(edit: bool) -> None:
    result = run("a cube " + "y" * 5000, run("a cube").spec if edit else None)
    assert prims(result.spec) == (["cube", "cube"] if edit else ["cube"])  # an edit that names a cube adds one
    assert result.not_understood == ["y" * 39 + "\u2026"]
    assert any("5007 characters" in w for w in result.warnings), result.warnings


def test_spec_error_hint_is_capped() -> None:
    with pytest.raises(SpecError) as err:
        run(", ".join(" ".join("q" * 30 + f"{k}x{j}" for j in range(6)) for k in range(8)))
    message = str(err.value)
    hint = message[message.index("(I did not understand: "):message.index("); try")]
    assert len(hint) <= 330 and len(message) < 800, message


# A pattern word alone after a comma is the floor's, as "checkerboard" is.
@pytest.mark.parametrize(("text", "floor", "checker_on_cube", "count"), [
    ("a cube, checkered", "checkered", False, 1),
    ("a cube, checkerboard", "checkered", False, 1),
    ("a cube, checker", "checkered", False, 1),
    ("a cube, grid", "grid", False, 1),
    ("a red cube, checkered, rotating", "checkered", False, 1),
    ("a checkered cube", "plain", True, 1),
    ("a cube, red and checkered", "plain", True, 1),
    ("a cube on a checkered floor", "checkered", False, 1),
    ("nine cubes in a grid", "plain", False, 9),
])
def test_bare_pattern_word_is_the_floor(text: str, floor: str, checker_on_cube: bool, count: int) -> None:
    spec = run(text).spec
    assert spec.floor.kind.value == floor
    assert len(spec.objects) == count
    assert (spec.objects[0].material.checker is not None) == checker_on_cube
    if floor != "plain":
        assert spec.floor.color2 and spec.floor.tiles >= 1


def test_bare_grid_is_not_an_arrangement() -> None:
    spec = run("two cubes, grid").spec
    assert spec.floor.kind.value == "grid"
    assert spec.objects[0].location.y == spec.objects[1].location.y  # a row, as with no arrangement


# ------------------------------------------------------------------ fuzzing

_WORDS = ["a", "red", "cube", "three", "spheres", "on", "checkered", "floor", "rotating", "4k", "draft", "and",
          "the", "word", '"hi"', "glass", "huge", "in", "row", "circle", "stack", "of", "999999", "resolution",
          "remove", "make", "it", "blue", "seconds", "frames", "2", "100", "x", "1920x1080", ",", "no", "night"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.lists(st.sampled_from(_WORDS), max_size=25).map(" ".join)))
def test_fuzz_only_spec_errors_and_valid_specs(text: str) -> None:
    try:
        result = run(text)
    except SpecError:
        return
    assert SceneSpec.model_validate(result.spec.to_json_dict()) == result.spec
    assert len(result.spec.objects) <= MAX_OBJECTS


# Which of _WORDS may change which part of a spec in an edit; an edit leaves the rest alone.
_EDIT_FIELDS: list[tuple[str, set[str]]] = [
    ("lighting", {"night"}),
    ("output.samples", {"draft"}),
    ("output.engine", set()),  # no engine word in _WORDS
    ("floor.kind", {"checkered", "floor", "no"}),
    ("output.width", {"4k", "draft", "1920x1080", "resolution", "x"}),
    ("output.height", {"4k", "draft", "1920x1080", "resolution", "x"}),
    ("animation", {"rotating", "frames", "seconds"}),
]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=15).map(" ".join))
def test_fuzz_edits(text: str) -> None:
    base = run("a red cube and two spheres").spec
    try:
        result = run(text, base)
    except SpecError as exc:
        assert 0 < len(str(exc)) < 800
        return
    assert SceneSpec.model_validate(result.spec.to_json_dict()) == result.spec
    assert len(result.spec.objects) <= 50
    assert result.provider == "offline"
    words = set(text.split())
    for path, named_by in _EDIT_FIELDS:
        if not words & named_by:
            assert field(result.spec, path) == field(base, path), (path, text)


def test_edit_keeps_what_it_does_not_name() -> None:
    base = run("a red cube and two spheres at sunset, 800x600, 48 samples").spec
    edited = run("make it blue", base).spec
    assert colors(edited) == ["#0000ff"] * 3
    assert prims(edited) == ["cube", "sphere", "sphere"]
    assert field(edited, "lighting.rig") == "sunset"
    assert (field(edited, "output.width"), field(edited, "output.height")) == (800, 600)
    assert field(edited, "output.samples") == 48


# ------------------------------------------------------------------ geometry contract

def test_half_extents_match_the_builder_convention() -> None:
    # builder.py: every primitive about 1 m across; the torus 0.3 m thick; the plane flat.
    assert HALF_EXTENTS[Primitive.CUBE] == (0.5, 0.5, 0.5)
    assert HALF_EXTENTS[Primitive.TORUS][2] == pytest.approx(0.15)
    assert HALF_EXTENTS[Primitive.PLANE][2] == 0.0


# ------------------------------------------------------------------ intents

@pytest.mark.parametrize(("text", "intent"), [
    ("render a red cube", "render"), ("draw three spheres on a checkered floor", "render"),
    ("show me a spinning donut", "render"), ("a blue torus", "render"), ("make a red cube", "render"),
    ("make it blue", "edit"), ("make the sphere red", "edit"), ("add two more spheres", "edit"),
    ("remove the cube", "edit"), ("bigger", "edit"), ("higher quality", "edit"), ("use eevee", "edit"),
    ("analyze: I love this", "analyze"), ("what's the sentiment of this review", "analyze"),
    ('how does this sound: "we are late again"', "analyze"),
    ("help", "help"), ("what can you do?", "help"), ("status", "status"), ("are you busy?", "status"),
    ("hi", "chitchat"), ("thanks!", "chitchat"), ("the weather is nice today", "chitchat"), ("", "chitchat"),
])
def test_offline_intent(text: str, intent: str) -> None:
    assert offline_intent(text) == intent
