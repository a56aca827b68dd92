"""Follow-up edits of a previous spec ("make it blue", "add two more spheres", "remove the cube")."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ...core.scene_spec import (
    MAX_OBJECTS,
    Primitive,
    SceneSpec,
    SpecError,
)
from .colors import color_distance
from .layout import Arrangement, infer_arrangement, layout_objects
from .objects import Group, Mods, expand_groups, make_material, make_scale, name_objects
from .tokens import hint_text, shorten

if TYPE_CHECKING:
    from .parse import Parse


def apply_edit(parse: Parse, groups: list[Group], previous: SceneSpec, seed: int) -> None:
    data = parse.data
    objects: list[dict[str, Any]] = data["objects"]
    before = [dict(o) for o in objects]
    verb = edit_verb(parse.text)
    relayout = parse.arrangement is not None
    rescale = False
    touched = False
    added: list[Group] = []
    removed_any = False
    skip_next = False
    counted = {g.primitive.value for g in groups if g.set_count and g.primitive is not None}
    if counted - {o["primitive"] for o in objects}:
        # "make it three cones" of a cube: the objects named replace the others.
        objects[:] = [o for o in objects if o["primitive"] in counted]
        relayout = touched = True
    for index, g in enumerate(groups):
        if skip_next:
            skip_next = False
            continue
        matches = [o for o in objects if g.primitive is not None and o["primitive"] == g.primitive.value
                   and (g.selector_color is None
                        or color_distance(o["material"]["base_color"], g.selector_color) < 60)]
        if g.set_count:
            set_count_of(parse, objects, g, matches)
            relayout = touched = True
            continue
        if verb == "remove":
            if not matches:
                parse.warn(f"there is no {g.label} to remove")
                continue
            doomed = matches[-g.count:] if g.explicit_count or not g.definite else matches
            for o in doomed:
                objects.remove(o)
            removed_any = relayout = True
            continue
        if g.definite and matches and verb != "add":
            nxt = groups[index + 1] if index + 1 < len(groups) else None
            if not g.mods.any() and nxt is not None and not nxt.definite and nxt.primitive is not None:
                # "turn the cube into a sphere", "replace the cube with a red cone"
                for o in matches:
                    o["primitive"] = nxt.primitive.value
                    o["text"] = nxt.text if nxt.primitive is Primitive.TEXT else None
                    modify_object(o, nxt.mods)
                skip_next = relayout = touched = True
                continue
            for o in matches:
                modify_object(o, g.mods)
            rescale = rescale or g.mods.size is not None or g.mods.relative_size is not None \
                or g.mods.stretch is not None
            touched = touched or g.mods.any()
            continue
        if g.definite and not matches and verb != "add":
            parse.warn(f"there is no {g.label} in the scene to change")
            continue
        added.append(g)
    if added:
        room = MAX_OBJECTS - len(objects)
        if room <= 0:
            parse.warn(f"objects is limited to {MAX_OBJECTS}; nothing was added")
        else:
            for g in added:
                if g.primitive is not None and not g.mods.any():
                    template = next((o for o in reversed(objects) if o["primitive"] == g.primitive.value), None)
                else:
                    template = None
                new = expand_groups(parse, [g], room)
                for o in new:
                    if template is not None:
                        o["material"] = dict(template["material"])
                        o["scale"] = dict(template["scale"])
                objects.extend(new)
                room -= len(new)
            if verb != "add":
                parse.warn("new objects were added to the scene; say 'instead of' or 'remove' to replace")
            relayout = True
    if parse.set_total is not None and objects:
        set_total(parse, objects, parse.set_total)
        relayout = touched = True
    leftover = parse.leftover_mods
    if leftover.any():
        for o in objects:
            modify_object(o, leftover)
        touched = True
        rescale = rescale or leftover.size is not None or leftover.relative_size is not None \
            or leftover.stretch is not None
    if verb == "remove" and not removed_any and not groups and parse.leftovers():
        pass
    if not objects:
        raise SpecError("That would leave nothing to render: the edit removed every object.", ["objects"])
    if relayout or rescale:
        name_objects(objects)
        arrangement = parse.arrangement or infer_arrangement(before) if len(before) > 1 else parse.arrangement
        if arrangement is Arrangement.SINGLE and len(objects) > 1:
            arrangement = None
        layout_objects(data, arrangement, seed, parse.camera, reframe=True)
    elif parse.camera or parse.data["output"] != previous.output.model_dump(mode="json"):
        # Camera words, or a new aspect ratio: frame the same objects again.
        layout_objects(data, infer_arrangement(objects), seed, parse.camera, reframe=True) \
            if infer_arrangement(objects) is not Arrangement.SCATTER else None
    if not (touched or relayout or rescale or parse.changed or added):
        words = parse.leftovers()
        raise SpecError(f'I could not tell what to change in "{shorten(parse.text)}"'
                        + (f" (not understood: {hint_text(words)})" if words else "")
                        + '; try "make it blue", "add two more spheres", "remove the cube", "bigger", '
                          '"4k", "make it spin" or "sunset lighting".', ["request"])

def set_count_of(parse: Parse, objects: list[dict[str, Any]], g: Group,
               matches: list[dict[str, Any]]) -> None:
    """Exactly g.count objects of g's shape: the extra ones go, missing ones are copies of the
    last one (or new ones when there is none); g's modifiers apply to all of them."""
    target = g.count
    kept = matches[:target]
    doomed = matches[target:]
    if doomed:
        objects[:] = [o for o in objects if not any(o is d for d in doomed)]
    room = MAX_OBJECTS - len(objects)
    extra = target - len(kept)
    if extra > room:
        parse.warn(f"{target} {g.label} were asked for; objects is limited to {MAX_OBJECTS}, "
                   f"so {len(kept) + max(0, room)} were made")
        extra = max(0, room)
    copies: list[dict[str, Any]] = []
    if extra > 0 and kept:
        template = kept[-1]
        copies = [copy.deepcopy(template) for _ in range(extra)]
        at = next(k for k, o in enumerate(objects) if o is template) + 1
        objects[at:at] = copies
    elif extra > 0:
        objects.extend(expand_groups(parse, [replace(g, count=extra)], room))
    if g.mods.any():
        for o in kept + copies:
            modify_object(o, g.mods)

def modify_object(obj: dict[str, Any], mods: Mods) -> None:
    obj["material"] = make_material(mods, obj["material"])
    if mods.checker is False and obj["material"].get("checker") and mods.color is not None:
        obj["material"]["checker"]["color2"] = obj["material"]["checker"]["color2"]
    if mods.size is not None or mods.relative_size is not None or mods.stretch is not None:
        scale = make_scale(mods, (obj["scale"]["x"], obj["scale"]["y"], obj["scale"]["z"]))
        obj["scale"] = {"x": scale[0], "y": scale[1], "z": scale[2]}



def set_total(parse: Parse, objects: list[dict[str, Any]], wanted: int) -> None:
    """ "5 of them": drop objects from the end, or copy each in turn beside itself."""
    target = min(wanted, MAX_OBJECTS)
    if wanted > MAX_OBJECTS:
        parse.warn(f"{wanted} objects were asked for; objects is limited to {MAX_OBJECTS}, "
                   f"so {MAX_OBJECTS} were made")
    if target <= len(objects):
        del objects[target:]
        return
    originals = list(objects)
    extra = target - len(originals)
    out: list[dict[str, Any]] = []
    for k, o in enumerate(originals):
        out.append(o)
        out.extend(copy.deepcopy(o) for _ in range(extra // len(originals) + (k < extra % len(originals))))
    objects[:] = out


def edit_verb(text: str) -> str:
    low = f" {text.lower()} "
    if re.search(r"\b(remove|delete|get rid of|take away|take out|drop|erase|without|no more|lose|ditch)\b", low):
        return "remove"
    if re.search(r"\b(add|also|plus|another|more|include|put in|throw in|with an? extra|extra)\b", low):
        return "add"
    return "modify"
