"""Scenes from the studio's own asset libraries (issue 15): the index, requests that name
assets, the renders by their pixels, cleanup after many jobs, and scripts that never run."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import bpy
import numpy as np
import pytest
from PIL import Image

from slack_ai_addon.assets import service
from slack_ai_addon.assets.index import AssetIndex, library_roots
from slack_ai_addon.blender import asset_reader
from slack_ai_addon.core.scene_spec import SpecError
from slack_ai_addon.providers.offline import OfflineInterpreter

from .asset_library import CATALOGS, build_library, write_props
from .helpers import datablock_counts

pytestmark = pytest.mark.blender

TINY = " at 96x72 draft in workbench"  # the offline grammar's own words for a tiny, quick render


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_library(tmp_path_factory.mktemp("assets") / "studio")


@pytest.fixture
def index(library: dict[str, Path], tmp_path: Path) -> Iterator[AssetIndex]:
    idx = service.configure(folders=str(library["props"].parent), cache_path=tmp_path / "cache" / "index.json")
    asset_reader.refresh_assets(idx, previews=False)
    yield idx
    service.reset()


def _render(render_spec, text: str, job_id: str):  # type: ignore[no-untyped-def]
    spec = OfflineInterpreter().interpret(text).spec
    result, _ = render_spec(spec, job_id=job_id)
    image = next(o for o in result.outputs if o.role == "image")
    return spec, np.asarray(Image.open(image.path).convert("RGB")).astype(int)


def _blobs(mask: np.ndarray) -> list[int]:
    """Sizes of the 4-connected regions of a boolean mask."""
    seen = np.zeros_like(mask, dtype=bool)
    sizes = []
    h, w = mask.shape
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        stack, size = [(y0, x0)], 0
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        sizes.append(size)
    return sizes


def test_index_lists_assets_with_catalog_and_tags_and_rereads_a_changed_file(
        library: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "index.json"
    idx = AssetIndex(library_roots(str(library["props"].parent)), cache)
    report = asset_reader.refresh_assets(idx, previews=False)
    assert report.read == 2 and report.failed == 0
    by_name = {e.name: e for e in idx.entries()}
    lamp, barrel, neon = by_name["Hero Lamp"], by_name["Oak Barrel"], by_name["Neon Green"]
    assert (lamp.type, lamp.catalog, sorted(lamp.tags)) == ("object", "Props/Lighting", ["hero", "light"])
    assert lamp.description == "The lamp from the hero shot"
    assert (barrel.type, barrel.catalog, sorted(barrel.tags)) == ("collection", "Props/Containers", ["barrel", "wood"])
    assert (neon.type, neon.catalog, sorted(neon.tags)) == ("material", "Materials/Glow", ["emissive", "glow"])
    assert by_name["Dusk"].type == "world" and by_name["Dusk"].catalog == CATALOGS["skies"][1]
    assert lamp.size == pytest.approx((0.5, 0.5, 1.6), abs=1e-4)
    assert barrel.bounds == pytest.approx([-0.35, -0.35, 0.0, 0.35, 0.35, 0.9], abs=1e-3)  # minus the offset
    assert json.loads(cache.read_text())["files"].keys() == {str(library["props"]), str(library["looks"])}

    # A second index on the same cache reads nothing; an unchanged refresh reads nothing.
    again = AssetIndex(library_roots(str(library["props"].parent)), cache)
    assert {e.name for e in again.entries()} == set(by_name)
    assert again.refresh(lambda *_: pytest.fail("an unchanged file was read")).read == 0

    # Change one file: only it is read again, and the new tag shows.
    write_props(library["props"], lamp_tags=("light", "hero", "brass"))
    os.utime(library["props"], ns=(time.time_ns(), time.time_ns() + 10**9))
    report = asset_reader.refresh_assets(again, previews=False)
    assert report.read == 1
    assert sorted(again.find("hero lamp").tags) == ["brass", "hero", "light"]  # type: ignore[union-attr]
    assert not bpy.data.libraries and "Hero Lamp" not in bpy.data.objects


def test_hero_lamp_stands_on_the_checkered_floor_in_magenta(index: AssetIndex, render_spec) -> None:
    spec, px = _render(render_spec, "the hero lamp on a checkered floor" + TINY, "lamp")
    (obj,) = spec.objects
    assert obj.primitive.value == "asset" and obj.asset and obj.asset.name == "Hero Lamp"
    assert obj.location.z == 0.0  # its bounds' bottom stands on the floor
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    magenta = (r > 150) & (b > 150) & (g < 90)
    assert magenta.sum() > 100
    ys, xs = np.nonzero(magenta)
    foot = ys.max()
    below = px[min(foot + 3, px.shape[0] - 1), int(np.median(xs[ys == foot]))]
    assert abs(int(below[0]) - int(below[2])) < 40 and not (below[0] > 150 and below[2] > 150)  # floor, not lamp
    # The lamp's foot is on the floor: floor pixels continue right under it, and no gap of
    # background separates them (the background here is the dark default world).
    assert px[foot + 1:foot + 4, xs[ys == foot]].mean() > 20


def test_three_oak_barrels_in_a_row_are_three_separate_blobs(index: AssetIndex, render_spec) -> None:
    spec, px = _render(render_spec, "three oak barrels in a row" + TINY, "barrels")
    assert [o.asset.name for o in spec.objects if o.asset] == ["Oak Barrel"] * 3
    assert len({o.location.x for o in spec.objects}) == 3
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    orange = (r > 120) & (r - b > 80) & (g < r - 40)
    sizes = [s for s in _blobs(orange) if s >= 15]
    assert len(sizes) == 3, sizes


def test_cube_with_the_neon_green_material_is_green_and_glows(index: AssetIndex, render_spec) -> None:
    text = "a cube with the neon green material at 64x48, 4 samples, night lighting"
    spec, px = _render(render_spec, text, "neon")
    assert spec.objects[0].material.asset and spec.objects[0].material.asset.name == "Neon Green"
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    green = (g > 200) & (r < 120) & (b < 120)
    # At night the only bright green can come from the material's own emission.
    assert green.sum() > 40, int(green.sum())


def test_unknown_asset_names_the_closest(index: AssetIndex) -> None:
    with pytest.raises(SpecError) as err:
        OfflineInterpreter().interpret("the hero chair")
    assert '"Hero Lamp"' in str(err.value) and "hero chair" in str(err.value)
    interp = OfflineInterpreter().interpret("a red cube and the hero chair")
    assert [o.primitive.value for o in interp.spec.objects] == ["cube"]  # nothing in the chair's place
    assert any("Hero Lamp" in n for n in interp.notes)


def test_20_asset_jobs_leave_nothing_and_never_run_scripts(index: AssetIndex, library: dict[str, Path],
                                                           render_spec) -> None:
    scene = bpy.context.scene
    user_obj = bpy.data.objects.new("Hero Lamp", bpy.data.meshes.new("user mesh"))  # the same name as an asset
    scene.collection.objects.link(user_obj)
    before = datablock_counts()
    requests = ["the hero lamp", "two oak barrels", "a cube with the neon green material",
                "a sphere under the dusk sky", "the hero lamp 2 m tall, appended"]
    for i in range(20):
        spec = OfflineInterpreter().interpret(requests[i % len(requests)] + " at 32x24 draft in workbench").spec
        result, _ = render_spec(spec, job_id=f"asset-job-{i}")
        assert result.stopped == "" and result.outputs
    assert datablock_counts() == before
    assert len(bpy.data.libraries) == 0 and not [t for t in bpy.data.texts]
    assert bpy.context.scene == scene and [o.name for o in scene.objects] == ["Hero Lamp"]
    assert scene.objects[0].data.name == "user mesh"
    assert not library["marker"].exists()  # the registered script in looks.blend never ran
    assert not bpy.context.preferences.filepaths.use_scripts_auto_execute


def test_appended_and_sized_asset(index: AssetIndex) -> None:
    from slack_ai_addon.blender import builder

    spec = OfflineInterpreter().interpret("a 2 m tall hero lamp, appended").spec
    assert spec.objects[0].asset and spec.objects[0].asset.append and spec.objects[0].asset.height_m == 2.0
    before = datablock_counts()
    built = builder.build_scene(spec, "sized")
    try:
        (empty,) = [o for o in built.scene.objects if o.instance_type == "COLLECTION"]
        assert empty.scale[2] == pytest.approx(2.0 / 1.6)
        lamp = empty.instance_collection.objects[0]
        assert lamp.library is None  # appended: a local copy
        assert not bpy.data.libraries or all(lib in built.ids for lib in bpy.data.libraries)
    finally:
        built.cleanup()
    assert datablock_counts() == before


def test_jobs_refresh_the_index_between_them_within_a_budget(index: AssetIndex, library: dict[str, Path],
                                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from slack_ai_addon.blender import builder

    from .asset_library import write_many

    extra = library["props"].parent / "extra"
    write_many(extra, 1)  # a file added after the index was built: "Bench Prop 000"
    monkeypatch.setattr(asset_reader, "_last_periodic", -1e9)
    before = datablock_counts()
    built = builder.build_scene(OfflineInterpreter().interpret("a red cube").spec, "refresh")
    built.cleanup()
    assert datablock_counts() == before  # preview renders clean up like jobs
    index = service.current_index()  # now with Blender's own libraries (Preferences > File Paths) too
    assert index.find("bench prop 000") is not None
    made = [e for e in index.entries() if e.preview]
    assert made and all(Path(e.preview).is_file() for e in made)
    lamp = index.find("hero lamp")
    if lamp and lamp.preview:  # rendered within the budget: the lamp's preview is magenta
        px = np.asarray(Image.open(lamp.preview).convert("RGB")).astype(int)
        assert ((px[..., 0] > 150) & (px[..., 2] > 150) & (px[..., 1] < 90)).sum() > 50
    # Within the interval nothing is read again, whatever changed.
    write_many(extra, 2)
    builder.build_scene(OfflineInterpreter().interpret("a cube").spec, "again").cleanup()
    assert service.current_index().find("bench prop 001") is None


def test_a_registered_script_comes_along_with_its_asset_and_still_does_not_run(
        index: AssetIndex, library: dict[str, Path]) -> None:
    from slack_ai_addon.blender import builder

    for text in ("a cube with the neon green material", "a cube with the neon green material, appended"):
        built = builder.build_scene(OfflineInterpreter().interpret(text).spec, "script")
        try:
            # The library's registered text block is loaded with the material that points at it...
            assert [t.use_module for t in bpy.data.texts] == [True]
        finally:
            built.cleanup()
        # ...and never ran, linked or appended; cleanup takes it away again.
        assert not library["marker"].exists() and not bpy.data.texts


def test_slash_render_of_assets_through_slack(index: AssetIndex, tmp_path: Path) -> None:
    """`/render the hero lamp ...` over Socket Mode with real Blender: the uploaded image has the
    magenta lamp; `/render the hero chair` answers with the closest asset and renders nothing."""
    import io
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
    from test_agent_harness import close_harness, make_harness

    from slack_ai_addon.blender.renderer import BlenderSceneRenderer

    from .test_slack_real_render import _drain_until

    channel = "C0ASSETS"
    h = make_harness(tmp_path)
    h.runtime.pipeline.deps.renderer = BlenderSceneRenderer(save_blend=False)
    h.runtime.pipeline.deps.interpreter = OfflineInterpreter()
    try:
        h.agent.start()
        assert h.agent.wait_until_connected(10)
        h.srv.send_slash_command("/render", "the hero lamp on a checkered floor" + TINY, user_id="U1",
                                 channel_id=channel)
        ts = _drain_until(h, lambda: h.bot_messages(channel), 10, "placeholder")[0]["ts"]
        _drain_until(h, lambda: h.final_update(ts), 60, "final update")
        (image,) = [f for f in h.srv.files.values() if f.thread_ts == ts and f.filename.endswith(".png")]
        px = np.asarray(Image.open(io.BytesIO(image.data)).convert("RGB")).astype(int)
        assert ((px[..., 0] > 150) & (px[..., 2] > 150) & (px[..., 1] < 90)).sum() > 100

        h.srv.send_slash_command("/render", "the hero chair", user_id="U1", channel_id=channel)
        reply = _drain_until(h, lambda: [m for m in h.srv.calls() if "Hero Lamp" in str(m.params)
                                         and "hero chair" in str(m.params)], 20, "closest-asset reply")
        assert reply
        assert len([f for f in h.srv.files.values() if f.filename.endswith(".png")]) == 1  # nothing rendered
    finally:
        close_harness(h)
