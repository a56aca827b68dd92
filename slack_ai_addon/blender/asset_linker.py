"""Assets from the studio's libraries in a job's scene: linked (or appended) by the builder.

Names in a spec are looked up in the asset index; the file comes from the index only, never
from the spec (so never from Slack or an LLM). Every data-block a load brings in (the
Library, the linked or appended IDs and whatever they pull in) is found by comparing
`bpy.data` before and after, and tracked on the job's `BuiltScene`, so cleanup removes
exactly those.

Placement: a linked object cannot be moved (its transform belongs to the library), so every
placed asset is an empty instancing a collection (the asset collection itself, or a
collection of our own holding the asset object). The empty carries the spec's transform:
the bottom centre of the asset's bounds stands at `location`, scaled to `height_m` when
asked. Copies are more empties instancing the same collection: one load per asset per job.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import bpy
from mathutils import Euler, Vector

from ..assets import service
from ..assets.index import AssetEntry
from ..core.scene_spec import AssetRef, ObjectSpec, SpecError
from ..textutil import defuse_markup
from .asset_reader import DATA_ATTRS, id_bounds

if TYPE_CHECKING:
    from .builder import BuiltScene

log = logging.getLogger(__name__)

PLACEABLE = ("object", "collection")


def _id_collections() -> list[Any]:
    # 5.2's `all_ids` spans every other collection: skipped, or everything counts twice.
    out = []
    for name in dir(bpy.data):
        if name.startswith("_") or name in ("bl_rna", "rna_type", "all_ids", "window_managers", "workspaces",
                                            "screens"):
            continue
        coll = getattr(bpy.data, name, None)
        if isinstance(coll, bpy.types.bpy_prop_collection):
            out.append(coll)
    return out


def _id_pointers() -> set[int]:
    return {idb.as_pointer() for coll in _id_collections() for idb in coll}


def _new_ids(before: set[int]) -> list[Any]:
    return [idb for coll in _id_collections() for idb in coll if idb.as_pointer() not in before]


def _auto_run_on() -> bool:
    try:
        return bool(bpy.context.preferences.filepaths.use_scripts_auto_execute)
    except AttributeError:
        return False


def resolve(ref: AssetRef, types: Sequence[str]) -> AssetEntry:
    """The index entry for a spec's asset reference; SpecError (naming the closest) if none."""
    wanted = [ref.type.value] if ref.type is not None else list(types)
    index = service.current_index()
    entry = index.find(ref.name, library=ref.library, types=wanted)
    if entry is None and index.libraries:
        # A file may have been added or changed since the last refresh: look once more.
        from .asset_reader import refresh_assets

        refresh_assets(index, budget_s=5.0)
        entry = index.find(ref.name, library=ref.library, types=wanted)
    if entry is None:
        closest = service.current_matcher().closest_names(ref.name, types=wanted)
        hint = f" Closest: {', '.join(defuse_markup(n) for n in closest)}." if closest else \
            " `/blender assets` lists them."
        where = f" in library {defuse_markup(ref.library)}" if ref.library else ""
        raise SpecError(f'There is no {"/".join(wanted)} asset named "{defuse_markup(ref.name)}"{where}.{hint}',
                        ["asset"])
    return entry


def load_asset(built: BuiltScene, entry: AssetEntry, *, append: bool) -> Any:
    """The asset's data-block in this Blender session, loaded once per job and tracked."""
    key = (entry.file, entry.type, entry.name, append)
    cached = built.assets.get(key)
    if cached is not None:
        return cached
    if _auto_run_on():
        # Loaded data is evaluated with the rest of the scene: with Auto Run on, driver
        # expressions inside a library file would run. The rule is that nothing from a
        # library runs, and Auto Run is the user's switch for that.
        raise SpecError("Assets are not loaded while Blender's Auto Run Python Scripts is on "
                        "(Preferences > Save & Load); turn it off to use assets.", ["asset"])
    attr = DATA_ATTRS[entry.type]
    before = _id_pointers()
    try:
        libraries: Any = bpy.data.libraries  # the stubs type load() as returning None; it is a context manager
        with libraries.load(entry.file, link=not append, assets_only=True) as (data_from, data_to):
            if entry.name not in getattr(data_from, attr):
                raise SpecError(f'The asset "{defuse_markup(entry.name)}" is no longer in its library file; '
                                "ask again in a moment (the index is refreshed).", ["asset"])
            setattr(data_to, attr, [entry.name])
    except OSError as exc:
        raise SpecError(f'The library file of "{defuse_markup(entry.name)}" cannot be read ({exc}).',
                        ["asset"]) from None
    finally:
        for idblock in _new_ids(before):
            built.track(idblock)
    loaded = getattr(data_to, attr)
    idblock = loaded[0] if loaded else None
    if idblock is None:
        raise SpecError(f'The asset "{defuse_markup(entry.name)}" could not be loaded.', ["asset"])
    built.assets[key] = idblock
    return idblock


def _instance_collection(built: BuiltScene, entry: AssetEntry, idblock: Any) -> Any:
    if entry.type == "collection":
        return idblock
    key = ("wrapper", entry.file, entry.name, idblock.as_pointer())
    wrapper = built.assets.get(key)
    if wrapper is None:
        wrapper = built.track(bpy.data.collections.new(f"{built.job_id} {entry.name}"))
        wrapper.objects.link(idblock)
        built.assets[key] = wrapper
    return wrapper


def build_asset_object(ospec: ObjectSpec, index: int, built: BuiltScene) -> Any:
    """An empty instancing the asset, standing on its bounds at the spec's location."""
    ref = ospec.asset
    if ref is None:
        raise SpecError(f"objects[{index}]: primitive 'asset' needs an asset name", [f"objects[{index}].asset"])
    entry = resolve(ref, PLACEABLE)
    idblock = load_asset(built, entry, append=ref.append)
    coll = _instance_collection(built, entry, idblock)
    bounds = id_bounds(idblock, entry.type) or [-0.5, -0.5, 0.0, 0.5, 0.5, 1.0]
    height = bounds[5] - bounds[2]
    factor = ref.height_m / height if ref.height_m and height > 1e-6 else 1.0
    scale = Vector(ospec.scale.as_tuple()) * factor
    rotation = Euler([math.radians(a) for a in ospec.rotation_deg.as_tuple()])
    pivot = Vector(((bounds[0] + bounds[3]) / 2, (bounds[1] + bounds[4]) / 2, bounds[2]))
    pivot_scaled = Vector((pivot.x * scale.x, pivot.y * scale.y, pivot.z * scale.z))
    empty = built.track(bpy.data.objects.new(f"{ospec.name or entry.name} {index + 1}", None))
    empty.instance_type = "COLLECTION"
    empty.instance_collection = coll
    empty.empty_display_size = 0.1
    empty.rotation_euler = rotation
    empty.scale = scale
    empty.location = Vector(ospec.location.as_tuple()) - rotation.to_matrix() @ pivot_scaled
    built.scene.collection.objects.link(empty)
    return empty


def asset_material(ref: AssetRef, built: BuiltScene) -> Any:
    entry = resolve(ref, ("material",))
    return load_asset(built, entry, append=ref.append)


def asset_world(ref: AssetRef, built: BuiltScene) -> Any:
    entry = resolve(ref, ("world",))
    return load_asset(built, entry, append=ref.append)
