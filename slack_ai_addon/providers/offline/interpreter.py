"""`OfflineInterpreter`: the offline grammar's entry point (the passes in `parse.py`, new scenes
here, edits in `edit.py`, placement in `layout.py`)."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable

from ...assets.match import AssetMatcher
from ...assets.service import current_matcher
from ...core.pipeline import Interpretation
from ...core.scene_spec import (
    MAX_OBJECTS,
    MIN_RESOLUTION,
    SceneSpec,
    SpecError,
    parse_scene_spec,
)
from ...textutil import defuse_markup, fit_request
from .assets import unknown_asset_notes
from .edit import apply_edit
from .layout import Arrangement, layout_objects
from .objects import Group, expand_groups, name_objects
from .parse import ANIMATION_SAMPLES, ANIMATION_WIDTH, EXAMPLE, PROVIDER, Parse
from .tokens import hint_text, shorten

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------- the interpreter

class OfflineInterpreter:
    """Deterministic text-to-SceneSpec grammar; the embedded default and the last fallback.

    `interpret("three red spheres in a row on a checkered floor")` makes a full spec;
    with `previous=spec`, the text is an edit of that spec ("make it blue", "add two more
    spheres", "remove the cube", "4k") and the whole new spec is returned.
    """

    provider = PROVIDER

    def __init__(self, assets: Callable[[], AssetMatcher] | None = None) -> None:
        # The studio's asset libraries (docs/ASSETS.md): the process's current index unless given.
        self._assets = assets if assets is not None else current_matcher

    def _matcher(self) -> AssetMatcher | None:
        try:
            return self._assets()
        except Exception:  # the index is an extra: requests for primitives work without it
            log.warning("asset index unavailable", exc_info=True)
            return None

    def interpret(self, text: str, *, previous: SceneSpec | None = None,
                  correlation_id: str = "") -> Interpretation:
        """Text (or an edit of `previous`) to a spec. Raises SpecError for unusable input."""
        original = text or ""
        original, cut = fit_request(original)  # also when called directly, not through the pipeline
        warnings = [cut] if cut else []
        if not original.strip():
            raise SpecError(f"There is nothing to render: tell me what you want, e.g. {EXAMPLE}.", ["request"])
        matcher = self._matcher()
        parse = Parse(original, previous, assets=matcher)
        parse.warnings.extend(warnings)
        parse.parse_output()
        parse.parse_assets()
        parse.parse_motion()
        parse.parse_camera()
        parse.parse_floor()
        parse.parse_world()
        parse.parse_lighting()
        parse.parse_arrangement()
        groups = parse.parse_objects()
        seed = zlib.crc32(original.strip().lower().encode("utf-8"))
        if previous is None:
            self._build_new(parse, groups, seed)
        else:
            apply_edit(parse, groups, previous, seed)
        not_understood = parse.leftovers()
        if matcher:
            parse.notes.extend(unknown_asset_notes(matcher, not_understood))
        for obj in parse.data["objects"]:
            obj.pop("_asset_half", None)  # layout's, when an edit did not lay out again
        spec, clamp_warnings = parse_scene_spec(parse.data)
        parse.warnings.extend(clamp_warnings)
        log.debug("offline interpretation", extra={"correlation_id": correlation_id,
                                                     "objects": len(spec.objects),
                                                     "not_understood": len(not_understood)})
        return Interpretation(spec=spec, provider=PROVIDER, warnings=parse.warnings,
                              not_understood=not_understood, notes=parse.notes)



    def _build_new(self, parse: Parse, groups: list[Group], seed: int) -> None:
        groups = [g for g in groups if g.count > 0]
        if not groups:
            leftovers = parse.leftovers()
            suggestions = unknown_asset_notes(parse.assets, leftovers) if parse.assets else []
            if suggestions:
                raise SpecError(f"I could not find anything to render: {'; '.join(suggestions)}. "
                                "`/blender assets` lists the assets.", ["objects"])
            hint = f" (I did not understand: {defuse_markup(hint_text(leftovers))})" if leftovers else ""
            raise SpecError(f'I could not find anything to render in "{shorten(defuse_markup(parse.text))}"{hint}; '
                            f"try {EXAMPLE}. Shapes I know: cube, sphere, ico sphere, cylinder, cone, torus, "
                            f'plane, monkey, and text like \'the word "hi"\'.', ["objects"])
        # "a sphere on a cube": the cube goes under the sphere.
        if any(g.below_previous for g in groups) or parse.stack_on_top:
            ordered: list[Group] = []
            for g in groups:
                if g.below_previous and ordered:
                    ordered.insert(len(ordered) - 1, g)
                else:
                    ordered.append(g)
            groups = ordered
            if parse.stack_on_top or any(g.below_previous for g in groups):
                parse.arrangement = parse.arrangement or Arrangement.STACK
        if any(g.center for g in groups) and parse.arrangement is None:
            parse.arrangement = Arrangement.CIRCLE
        parse.data["objects"] = objects = expand_groups(parse, groups, MAX_OBJECTS)
        name_objects(objects)
        if parse.arrangement is Arrangement.STACK and len(objects) > 12:
            parse.warn("a stack of more than 12 objects would leave the frame: arranged in a grid instead")
            parse.arrangement = Arrangement.GRID
        layout_objects(parse.data, parse.arrangement, seed, parse.camera, reframe=True)
        self._fast_animation_defaults(parse)

    @staticmethod
    def _fast_animation_defaults(parse: Parse) -> None:
        # A turntable renders every frame: at the still defaults (640x480, 32 samples) a
        # 24-frame GIF takes minutes on a CPU node. Unless the request named a size or a
        # quality, animations default to a preview that answers in seconds; "high quality"
        # or a thread follow-up re-renders it bigger.
        out = parse.data["output"]
        if parse.data["animation"]["kind"] == "none" or parse.res_explicit or parse.quality_explicit:
            return
        out["width"], out["height"] = ANIMATION_WIDTH, max(MIN_RESOLUTION,
                                                            round(ANIMATION_WIDTH * out["height"] / out["width"]))
        out["samples"] = min(out["samples"], ANIMATION_SAMPLES)
        parse.notes.append(f"animations render as a {out['width']}x{out['height']} preview at "
                           f"{out['samples']} samples; ask for \"high quality\" for more")
