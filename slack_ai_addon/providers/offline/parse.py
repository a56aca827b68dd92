"""The parse passes of the offline interpreter: natural language to spec fields, no LLM.

The interpreter (`interpreter.py`) is the last link of the provider chain and the embedded
default, so it must never fail on odd input: anything it cannot use is reported in
`Interpretation.not_understood`, clamps and assumptions become warnings, and only input with
nothing renderable (or an explicit request outside the spec's bounds, such as "resolution
999999") raises `SpecError`.

The parse runs in passes over the tokens; each pass marks the tokens it used, so a word is
never read twice ("2 seconds" is a duration, not a count; "red and white checkered floor" is
the floor, not two objects). Order: output settings, motion, camera, floor, world, lighting,
arrangement, then the objects themselves; whatever is left and is not a filler word is
reported back.
"""

from __future__ import annotations

import re
from typing import Any

from ...assets.match import AssetHit, AssetMatcher
from ...core.scene_spec import (
    MAX_FPS,
    MAX_FRAMES,
    MAX_RESOLUTION,
    MAX_SAMPLES,
    MAX_TEXT_LEN,
    MIN_RESOLUTION,
    Primitive,
    SceneSpec,
    SpecError,
)
from .assets import asset_ref, object_ref, parse_assets
from .colors import MAX_COLOR_WORDS, color_distance, lookup_color
from .edit import edit_verb
from .layout import Arrangement
from .objects import Group, Mods
from .tokens import ARTICLES, BARE_SHADES, CLAUSE_BREAKS, clip_phrase, tokenize
from .vocab import (
    ALL_REFERENCES,
    COMPARATIVE_SIZES,
    COUNT_NEEDS_OF,
    GENERIC_PLURAL,
    GENERIC_SINGULAR,
    MATERIAL_WORDS,
    NUMBER_WORDS,
    SHAPE_WORDS,
    SIDE_WORDS,
    SIZE_WORDS,
    STOP_WORDS,
    STRETCH_WORDS,
    TENS,
    TEXT_NOUNS,
)

PROVIDER = "offline"
MAX_NOT_UNDERSTOOD = 20
DRAFT_SAMPLES = 8
ANIMATION_WIDTH = 320  # preview size for animations without an explicit size or quality
ANIMATION_SAMPLES = 16
HIGH_SAMPLES = 128
ULTRA_SAMPLES = 512
DEFAULT_PLURAL_COUNT = 3
EXAMPLE = '"a red cube on a checkered floor"'


# --------------------------------------------------------------------------- the parser

class Parse:
    def __init__(self, text: str, previous: SceneSpec | None, assets: AssetMatcher | None = None) -> None:
        self.text = text
        self.previous = previous
        self.edit = previous is not None
        self.data: dict[str, Any] = (previous or SceneSpec()).to_json_dict()
        self.toks, self.quotes = tokenize(text)
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.changed = False  # an edit that changed something
        self.res_explicit = False
        self.quality_explicit = False
        self.world_explicit = False
        self.format_explicit = False
        self.anim_explicit = False
        self.frames_explicit = False
        self.arrangement: Arrangement | None = None
        self.stack_on_top = False
        self.camera: dict[str, float] = {}
        self.draft = False
        self.leftover_mods = Mods()  # edits: modifiers with no object named apply to all
        self.set_total: int | None = None  # edits: "5 of them" sets the number of objects
        # Asset phrases found by parse_assets (offline/assets.py), by their first token.
        self.assets = assets
        self.asset_objects: dict[int, tuple[AssetHit, int, float | None]] = {}
        self.asset_materials: dict[int, tuple[AssetHit, int]] = {}
        self.asset_append = False

    def parse_assets(self) -> None:
        if self.assets is not None:
            parse_assets(self, self.assets)

    # ---------------------------------------------------------------- helpers
    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def color_at(self, i: int) -> tuple[str, int, list[str]] | None:
        """(hex, end, words) of the longest colour phrase at free position i."""
        if self.toks.free(i) and self.toks.toks[i].kind == "hex":
            return self.toks.w(i), i + 1, [self.toks.w(i)]
        for n in range(MAX_COLOR_WORDS, 0, -1):
            words = []
            for k in range(n):
                if not self.toks.free(i + k) or self.toks.toks[i + k].kind != "word":
                    break
                words.append(self.toks.w(i + k))
            if len(words) != n:
                continue
            color = lookup_color(words)
            if color is not None:
                return color, i + n, words
        return None

    def shape_at(self, i: int) -> tuple[Primitive | None, bool, int] | None:
        """(primitive, plural, end) of a shape noun at i; primitive None for a generic plural."""
        if i in self.asset_objects:
            hit, end, _height = self.asset_objects[i]
            return Primitive.ASSET, hit.plural, end
        for n in (3, 2, 1):
            phrase = tuple(self.toks.w(i + k) for k in range(n))
            if all(self.toks.free(i + k) for k in range(n)) and phrase in SHAPE_WORDS:
                prim, plural = SHAPE_WORDS[phrase]
                return prim, plural, i + n
        word = self.toks.w(i)
        if self.toks.free(i) and word in GENERIC_SINGULAR and not (self.edit and word in ALL_REFERENCES):
            return Primitive.CUBE, False, i + 1
        if self.toks.free(i) and word in GENERIC_PLURAL and not self.edit:
            return None, True, i + 1
        return None

    def check_range(self, path: str, value: float, lo: float, hi: float, what: str) -> None:
        if not lo <= value <= hi:
            shown = int(value) if float(value).is_integer() else value
            raise SpecError(f"{path}={shown} is out of range: {what} must be between {lo:g} and {hi:g}. "
                            f"Ask for less, e.g. \"1920x1080\" or \"4k\".", [path])

    # ------------------------------------------------------------- pass 1: output
    def parse_output(self) -> None:
        out = self.data["output"]
        t = self.toks
        width: float | None = None
        height: float | None = None
        for i in range(len(t)):
            if not t.free(i):
                continue
            w = t.w(i)
            tok = t.toks[i]
            if tok.kind == "res":
                a, b = re.split(r"x", tok.low)
                width, height = float(a), float(b)
                t.take(i, i + 1)
                continue
            num = t.num(i)
            if num is not None:
                value, suffix = num
                if suffix == "k" and value > 0:
                    known = {2: (2560, 1440), 4: (3840, 2160), 5: (5120, 2880), 8: (7680, 4320)}
                    width, height = known.get(int(value), (value * 960, value * 540))
                    t.take(i, i + 1)
                elif suffix == "p" and value >= 100:
                    height, width = value, round(value * 16 / 9 / 2) * 2
                    t.take(i, i + 1)
                elif suffix in ("px", "pixels"):
                    width = value
                    t.take(i, i + 1)
                    if t.w(i + 1) in ("wide", "across", "width"):
                        t.take(i + 1, i + 2)
                    elif t.w(i + 1) in ("tall", "high", "height"):
                        width, height = None, value
                        t.take(i + 1, i + 2)
                elif not suffix and t.w(i + 1) in ("x", "by") and t.num(i + 2) and value >= 16:
                    other = t.num(i + 2)
                    assert other is not None
                    width, height = value, other[0]
                    t.take(i, i + 3)
                    if t.w(i + 3) in ("px", "pixels"):
                        t.take(i + 3, i + 4)
                elif not suffix and t.w(i + 1) in ("px", "pixels", "pixel"):
                    width = value
                    t.take(i, i + 2)
                    if t.w(i + 2) in ("wide", "across"):
                        t.take(i + 2, i + 3)
                    elif t.w(i + 2) in ("tall", "high"):
                        width, height = None, value
                        t.take(i + 2, i + 3)
                elif not suffix and t.w(i + 1) in ("samples", "sample", "spp"):
                    self.check_range("output.samples", value, 1, MAX_SAMPLES, "samples")
                    out["samples"] = int(value)
                    t.take(i, i + 2)
                continue
            if w in ("resolution", "res", "width", "height", "samples"):
                j = i + 1
                while t.w(j) in ("of", "at", "to", "=", ":", "is", "be"):
                    j += 1
                if t.toks[j].kind == "res" if 0 <= j < len(t) and t.free(j) else False:
                    a, b = t.w(j).split("x")
                    width, height = float(a), float(b)
                    t.take(i, j + 1)
                    continue
                nxt = t.num(j)
                if nxt is None:
                    if w == "resolution" and self.edit and t.w(j) in ("higher", "more", "up"):
                        width, height = out["width"] * 2, out["height"] * 2
                        t.take(i, j + 1)
                    continue
                value = nxt[0]
                end = j + 1
                if w in ("resolution", "res") and t.w(j + 1) in ("x", "by") and t.num(j + 2):
                    other = t.num(j + 2)
                    assert other is not None
                    width, height = value, other[0]
                    end = j + 3
                elif w == "height":
                    height = value
                elif w == "samples":
                    self.check_range("output.samples", value, 1, MAX_SAMPLES, "samples")
                    out["samples"] = int(value)
                else:
                    width = value
                t.take(i, end)
                if t.w(end) in ("px", "pixels"):
                    t.take(end, end + 1)
        for phrase, (pw, ph) in {("full", "hd"): (1920, 1080), ("fhd",): (1920, 1080), ("uhd",): (3840, 2160),
                                 ("hd",): (1280, 720), ("qhd",): (2560, 1440), ("ultra", "hd"): (3840, 2160)}.items():
            for s, e, _ in t.find({phrase: None}):
                width, height = pw, ph
                t.take(s, e)
        if width is not None or height is not None:
            if width is not None:
                self.check_range("output.width", width, MIN_RESOLUTION, MAX_RESOLUTION, "the width in pixels")
            if height is not None:
                self.check_range("output.height", height, MIN_RESOLUTION, MAX_RESOLUTION, "the height in pixels")
            aspect = out["height"] / out["width"]
            if width is not None and height is None:
                height = max(MIN_RESOLUTION, round(width * aspect))
            if height is not None and width is None:
                width = min(MAX_RESOLUTION, max(MIN_RESOLUTION, round(height / aspect)))
            assert width is not None and height is not None
            out["width"], out["height"] = int(width), int(min(height, MAX_RESOLUTION))
            self.res_explicit = True
            self.changed = True
        self._aspect_words(out)
        self._quality_words(out)
        self._engine_and_format(out)

    def _aspect_words(self, out: dict[str, Any]) -> None:
        t = self.toks
        for i in range(len(t)):
            w = t.w(i)
            if not t.free(i):
                continue
            if w == "square" and self.shape_at(i + 1) is None:
                side = min(out["width"], out["height"])
                out["width"] = out["height"] = side
            elif w in ("portrait", "vertical"):
                if out["width"] > out["height"]:
                    out["width"], out["height"] = out["height"], out["width"]
            elif w in ("landscape", "widescreen", "cinematic"):
                long_side = max(out["width"], out["height"])
                out["width"], out["height"] = long_side, max(MIN_RESOLUTION, round(long_side * 9 / 16))
            else:
                continue
            t.take(i, i + 1)
            self.changed = True
            for follow in ("format", "aspect", "ratio", "image", "frame", "orientation", "mode"):
                if t.match(i + 1, (follow,)):
                    t.take(i + 1, i + 2)

    def _quality_words(self, out: dict[str, Any]) -> None:
        t = self.toks
        phrases: dict[tuple[str, ...], str] = {
            ("draft",): "draft", ("preview",): "draft", ("quick", "preview"): "draft", ("low", "quality"): "draft",
            ("lower", "quality"): "lower", ("low", "res"): "draft", ("lowres",): "draft", ("rough", "draft"): "draft",
            ("fewer", "samples"): "lower", ("less", "samples"): "lower", ("faster",): "lower",
            ("high", "quality"): "high", ("hq",): "high", ("high", "detail"): "high", ("final",): "high",
            ("best", "quality"): "high", ("production", "quality"): "high", ("highest", "quality"): "ultra",
            ("max", "quality"): "ultra", ("maximum", "quality"): "ultra", ("ultra", "quality"): "ultra",
            ("higher", "quality"): "higher", ("better", "quality"): "higher", ("more", "samples"): "higher",
            ("improve", "quality"): "higher", ("quality", "up"): "higher", ("better",): "higher",
            ("sharper",): "higher", ("cleaner",): "higher", ("less", "noise"): "higher", ("less", "noisy"): "higher",
            ("noisy",): "lower",
        }
        for s, e, kind in t.find(phrases):
            if kind == "better" and not self.edit:
                continue
            t.take(s, e)
            self.changed = True
            self.quality_explicit = True
            if kind == "draft":
                self.draft = True
                out["samples"] = DRAFT_SAMPLES
                if not self.res_explicit:
                    out["width"], out["height"] = 320, max(MIN_RESOLUTION, round(320 * out["height"] / out["width"]))
            elif kind == "high":
                out["samples"] = max(out["samples"], HIGH_SAMPLES)
            elif kind == "ultra":
                out["samples"] = max(out["samples"], ULTRA_SAMPLES)
            elif kind == "higher":
                out["samples"] = min(MAX_SAMPLES, max(HIGH_SAMPLES, out["samples"] * 4))
                if self.edit and not self.res_explicit and out["width"] < 640:
                    out["width"], out["height"] = out["width"] * 2, out["height"] * 2
            elif kind == "lower":
                out["samples"] = max(1, out["samples"] // 4)
            if t.w(e) in ("render", "quality", "mode", "version"):
                t.take(e, e + 1)

    def _engine_and_format(self, out: dict[str, Any]) -> None:
        t = self.toks
        engines: dict[tuple[str, ...], str] = {
            ("cycles",): "cycles", ("eevee",): "eevee", ("eevee", "next"): "eevee", ("workbench",): "workbench",
            ("path", "traced"): "cycles", ("path", "tracing"): "cycles", ("raytraced",): "cycles",
            ("ray", "traced"): "cycles", ("realtime",): "eevee", ("real", "time"): "eevee",
            ("solid", "mode"): "workbench", ("solid", "shading"): "workbench", ("clay", "render"): "workbench",
        }
        for s, e, engine in t.find(engines):
            out["engine"] = engine
            t.take(s, e)
            self.changed = True
            if t.w(e) in ("engine", "renderer", "render"):
                t.take(e, e + 1)
        formats: dict[tuple[str, ...], str] = {
            ("jpeg",): "jpeg", ("jpg",): "jpeg", ("png",): "png", ("mp4",): "mp4", ("video",): "mp4",
            ("movie",): "mp4", ("h264",): "mp4", ("film",): "mp4", ("clip",): "mp4", ("gif",): "gif",
            ("animated", "gif"): "gif", ("webm",): "mp4?", ("mov",): "mp4?", ("avi",): "mp4?",
            ("tiff",): "png?", ("exr",): "png?", ("webp",): "png?",
        }
        for s, e, fmt in t.find(formats):
            t.take(s, e)
            self.changed = True
            if fmt.endswith("?"):
                self.warn(f"{t.w(s)} is not offered; using {fmt[:-1]}")
                fmt = fmt[:-1]
            out["format"] = fmt
            self.format_explicit = True
            if t.w(e) in ("file", "format", "output"):
                t.take(e, e + 1)

    # ------------------------------------------------------------- pass 2: motion
    def parse_motion(self) -> None:
        anim = self.data["animation"]
        t = self.toks
        # fps first: "2 seconds at 24 fps" needs the rate to count the frames.
        for i in range(len(t)):
            num = t.num(i)
            if num is None:
                continue
            value, suffix = num
            if suffix == "fps" or (not suffix and t.w(i + 1) in ("fps", "framerate")):
                self.check_range("animation.fps", value, 1, MAX_FPS, "frames per second")
                anim["fps"] = int(value)
                t.take(i, i + (1 if suffix else 2))
                self.changed = True
        for i in range(len(t)):
            num = t.num(i)
            if num is None:
                continue
            value, suffix = num
            unit = suffix or t.w(i + 1)
            end = i + 1 if suffix else i + 2
            if unit in ("s", "sec", "secs", "second", "seconds"):
                frames = value * anim["fps"]
                self.check_range("animation.frames", frames, 2, MAX_FRAMES,
                                 f"the number of frames (seconds x {anim['fps']} fps)")
                anim["frames"] = int(round(frames))
            elif unit in ("frame", "frames", "f"):
                self.check_range("animation.frames", value, 2, MAX_FRAMES, "the number of frames")
                anim["frames"] = int(value)
            elif unit in ("minute", "minutes", "min", "mins"):
                self.check_range("animation.frames", value * 60 * anim["fps"], 2, MAX_FRAMES,
                                 f"the number of frames (seconds x {anim['fps']} fps)")
            else:
                continue
            t.take(i, end)
            if t.w(end) in ("long", "loop", "animation"):
                t.take(end, end + 1)
            self.frames_explicit = True
            self.changed = True
        kinds: dict[tuple[str, ...], str] = {}
        phrase: tuple[str, ...]
        for w in ("rotating", "rotate", "rotates", "rotation", "spinning", "spin", "spins", "twirling", "twirl",
                  "turning", "revolving", "revolve", "revolves", "whirling", "spinny", "rotated"):
            kinds[(w,)] = "spin"
        for w in ("turntable", "orbit", "orbiting", "orbits", "360"):
            kinds[(w,)] = "turntable"
        for phrase in (("camera", "circles"), ("camera", "orbits"), ("camera", "rotates"), ("camera", "rotating"),
                       ("camera", "moves", "around"), ("camera", "moving", "around"), ("camera", "circling"),
                       ("camera", "goes", "around"), ("fly", "around"), ("flying", "around"), ("all", "around"),
                       ("rotating", "camera"), ("orbiting", "camera"), ("orbit", "camera"), ("circle", "around"),
                       ("360", "degree"), ("360", "degrees"), ("360", "view"), ("walk", "around"),
                       ("camera", "spins"), ("spinning", "camera"), ("camera", "orbit"), ("camera", "circle")):
            kinds[phrase] = "turntable"
        for w in ("bouncing", "bounce", "bounces", "bouncy", "jumping", "jump", "jumps", "hopping", "hop",
                  "hops", "bobbing", "bounced"):
            kinds[(w,)] = "bounce"
        for w in ("animated", "animation", "animate", "moving", "motion", "looping", "loop", "animating"):
            kinds[(w,)] = "any"
        for phrase in (("stop", "rotating"), ("stop", "spinning"), ("stop", "moving"), ("stop", "bouncing"),
                       ("stop", "the", "animation"), ("no", "animation"), ("not", "moving"), ("still",),
                       ("static",), ("freeze",), ("don't", "spin"), ("dont", "spin"), ("no", "spin"),
                       ("no", "motion"), ("without", "animation"), ("stop", "it"), ("stop", "the", "rotation"),
                       ("not", "rotating"), ("not", "spinning"), ("no", "rotation"), ("stop",), ("still", "image")):
            kinds[phrase] = "none"
        chosen: str | None = None
        for s, e, kind in t.find(kinds):
            t.take(s, e)
            self.changed = True
            if kind == "any":
                chosen = chosen or "any"
            elif chosen in (None, "any") or kind == "none":
                chosen = kind
            if t.w(e) in ("around", "animation", "slowly", "quickly", "fast", "slow", "continuously", "forever"):
                t.take(e, e + 1)
        if chosen == "any":
            chosen = anim["kind"] if anim["kind"] != "none" else "turntable"
            if anim["kind"] == "none":
                self.warn("an animation was asked for without a motion: made a turntable (camera orbit)")
        if chosen is None and self.data["output"]["format"] in ("mp4", "gif") and self.format_explicit \
                and anim["kind"] == "none":
            chosen = "turntable"
            self.warn(f"a {self.data['output']['format']} needs motion: made a turntable (camera orbit)")
        if chosen is None and self.frames_explicit and anim["kind"] == "none":
            chosen = "turntable"
            self.warn("a duration was given without a motion: made a turntable (camera orbit)")
        if chosen is not None:
            anim["kind"] = chosen
            self.anim_explicit = True
        out = self.data["output"]
        if anim["kind"] != "none" and out["format"] in ("png", "jpeg"):
            if self.format_explicit:
                self.warn(f"{out['format']} is a still format: the animation is rendered as a gif instead")
            out["format"] = "gif"
        elif anim["kind"] == "none" and out["format"] in ("mp4", "gif") and self.anim_explicit:
            out["format"] = "png"

    # ------------------------------------------------------------- pass 3: camera
    def parse_camera(self) -> None:
        phrases: dict[tuple[str, ...], tuple[str, float]] = {
            ("from", "above"): ("elevation", 60.0), ("top", "down"): ("elevation", 85.0),
            ("overhead",): ("elevation", 75.0), ("bird's", "eye"): ("elevation", 70.0),
            ("birds", "eye"): ("elevation", 70.0), ("low", "angle"): ("elevation", 6.0),
            ("from", "below"): ("elevation", 3.0), ("eye", "level"): ("elevation", 8.0),
            ("close", "up"): ("distance", 0.75), ("closeup",): ("distance", 0.75), ("zoom", "in"): ("distance", 0.75),
            ("closer",): ("distance", 0.75), ("zoomed", "in"): ("distance", 0.75),
            ("wide", "shot"): ("distance", 1.6), ("far", "away"): ("distance", 1.6), ("zoom", "out"): ("distance", 1.5),
            ("further", "away"): ("distance", 1.5), ("zoomed", "out"): ("distance", 1.5),
            ("from", "the", "front"): ("azimuth", -90.0), ("front", "view"): ("azimuth", -90.0),
            ("from", "the", "side"): ("azimuth", 0.0), ("side", "view"): ("azimuth", 0.0),
            ("from", "behind"): ("azimuth", 90.0), ("wide", "angle"): ("lens", 24.0),
            ("telephoto",): ("lens", 100.0), ("fisheye",): ("lens", 12.0),
        }
        for s, e, (what, value) in self.toks.find(phrases):
            self.toks.take(s, e)
            self.camera[what] = value
            self.changed = True
            if self.toks.w(e) in ("view", "shot", "angle", "lens"):
                self.toks.take(e, e + 1)

    # ------------------------------------------------------------- pass 4: floor
    _FLOOR_NOUNS = frozenset({"floor", "ground", "groundplane", "surface", "tabletop", "table", "checkerboard",
                              "chessboard", "checkers", "tiles", "pavement"})
    _CHECKER_WORDS = frozenset({"checkered", "checker", "checked", "chequered", "checkerboard", "chessboard",
                                "tiled", "checkers", "chess", "checkerd"})

    def parse_floor(self) -> None:
        t = self.toks
        floor = self.data["floor"]
        none_phrases = {("no", "floor"): 1, ("without", "a", "floor"): 1, ("without", "floor"): 1,
                        ("floorless",): 1, ("floating",): 1, ("hovering",): 1, ("in", "mid", "air"): 1,
                        ("in", "midair"): 1, ("in", "the", "air"): 1, ("no", "ground"): 1, ("levitating",): 1,
                        ("remove", "the", "floor"): 1, ("hide", "the", "floor"): 1, ("in", "space"): 2,
                        ("in", "outer", "space"): 2, ("delete", "the", "floor"): 1, ("without", "the", "floor"): 1}
        for s, e, kind in t.find(none_phrases):
            t.take(s, e)
            floor["kind"] = "none"
            self.changed = True
            if kind == 2 and not self.world_explicit:
                self.data["world"].update(kind="color", color="#000000", strength=1.0)
                self.world_explicit = True
        for i in range(len(t)):
            if not t.free(i):
                continue
            w = t.w(i)
            is_noun = w in self._FLOOR_NOUNS
            grid_floor = w == "grid" and (t.w(i - 1) in ("a", "the") and t.w(i - 2) == "on"
                                          or t.w(i + 1) in ("floor", "ground", "pattern", "lines"))
            if not (is_noun or grid_floor) and self._bare_pattern(i):
                # "a cube, checkered" / "a cube, grid": a pattern with no noun of its own is the
                # floor's, as "a cube, checkerboard" is.
                t.take(i, i + 1)
                self._set_floor_pattern("grid" if w == "grid" else "checkered", floor)
                continue
            if not (is_noun or grid_floor):
                continue
            if w in ("surface", "table", "tabletop", "tiles", "pavement") and t.w(i - 1) not in (
                    "a", "the", "on") and not self._floor_modifier_before(i):
                continue
            self._floor_phrase(i, floor)

    def _bare_pattern(self, i: int) -> bool:
        """A pattern word standing alone in its clause after a comma: "a cube, checkered"."""
        t = self.toks
        if not (t.w(i) in self._CHECKER_WORDS or t.w(i) == "grid"):
            return False
        before, after = t.w(i - 1), t.w(i + 1)
        alone_after = after in ("", ",", ";", ".", "!", "?") or (i + 1 < len(t) and not t.free(i + 1))
        return before in (",", ";") and alone_after

    def _set_floor_pattern(self, kind: str, floor: dict[str, Any]) -> None:
        """A checkered or grid floor in the default colours (or the previous ones in an edit)."""
        self.changed = True
        keep = self.edit and self.previous is not None and self.previous.floor.kind.value == kind
        if not keep:
            floor["kind"] = kind
            floor["color"], floor["color2"] = "#e8e8e8", "#202020"
            floor["tiles"] = max(1, min(200, round(floor["size"] / 1.0)))

    def _floor_modifier_before(self, i: int) -> bool:
        w = self.toks.w(i - 1)
        return w in self._CHECKER_WORDS or w in ("plain", "grid") or lookup_color([w]) is not None

    def _floor_phrase(self, noun: int, floor: dict[str, Any]) -> None:
        t = self.toks
        start = noun
        end = noun + 1
        colors: list[str] = []
        kind: str | None = None
        if t.w(noun) in ("checkerboard", "chessboard", "checkers", "tiles"):
            kind = "checkered"
        if t.w(noun) == "grid":
            kind = "grid"
            if t.w(noun + 1) in ("floor", "ground", "pattern", "lines"):
                end = noun + 2
        while t.free(end) and t.w(end) in self._FLOOR_NOUNS:  # "checkerboard floor"
            end += 1
        # Walk left over the floor's modifiers, stopping at anything else.
        j = noun - 1
        while j >= 0 and t.free(j):
            w = t.w(j)
            if w in self._CHECKER_WORDS:
                kind = "checkered"
            elif w == "grid":
                kind = kind or "grid"
            elif w in ("plain", "solid", "simple", "flat", "smooth"):
                kind = kind or "plain"
            elif w in ("and", "pattern", "patterned", "colored", "coloured", "tiled", "big", "large", "huge",
                       "small", "fine", "infinite", "endless", "shiny", "glossy", "reflective", "matte"):
                pass
            elif w in ("wooden", "wood"):
                colors.insert(0, "#8b5a2b")
            else:
                found = None
                for n in range(min(MAX_COLOR_WORDS, j + 1), 0, -1):
                    words = [t.w(k) for k in range(j - n + 1, j + 1)]
                    if all(t.free(k) and t.toks[k].kind in ("word", "hex") for k in range(j - n + 1, j + 1)):
                        c = lookup_color(words) if t.toks[j].kind == "word" else t.w(j)
                        if c is not None:
                            found = (c, n)
                            break
                if found is None:
                    break
                colors.insert(0, found[0])
                j -= found[1] - 1
            start = j
            j -= 1
        # "floor in red", "floor is white"; in edits also "make the floor red".
        k = end
        if t.w(k) in ("is", "in", "colored", "coloured", "painted", "of", "to", "be") or self.edit:
            k2 = k + 1 if t.w(k) in ("is", "in", "colored", "coloured", "painted", "of", "to", "be") else k
            if t.w(k2) in ("checkered", "checkerboard", "chequered", "checked"):
                kind = "checkered"
                k2 += 1
            found_color = self.color_at(k2)
            while found_color is not None:
                colors.append(found_color[0])
                end = found_color[1]
                found_color = self.color_at(end + 1) if t.w(end) == "and" else None
            if kind == "checkered" and end < k2:
                end = k2
        # "on a checkered floor": take the article and preposition too.
        while start > 0 and t.free(start - 1) and t.w(start - 1) in ("a", "an", "the", "on", "over", "above"):
            start -= 1
        t.take(start, end)
        self.changed = True
        if kind is None:
            kind = "plain" if floor["kind"] == "none" or not self.edit else floor["kind"]
        floor["kind"] = kind
        if kind in ("checkered", "grid"):
            defaults = ("#e8e8e8", "#202020")
            # An edit that names the pattern the floor already has keeps both of its colours.
            same = bool(self.edit and self.previous and self.previous.floor.kind.value == kind)
            floor["color"] = colors[0] if colors else (floor["color"] if same else defaults[0])
            if len(colors) > 1:
                floor["color2"] = colors[1]
            elif colors or not same:  # a new first colour: pick a second that contrasts with it
                floor["color2"] = defaults[1] if color_distance(floor["color"], defaults[1]) > 80 else "#f0f0f0"
            floor["tiles"] = max(1, min(200, round(floor["size"] / 1.0)))
        elif colors:
            floor["color"] = colors[0]

    # ------------------------------------------------------------- pass 5: world
    def parse_world(self) -> None:
        t = self.toks
        world = self.data["world"]
        for i in range(len(t)):
            if not t.free(i):
                continue
            w = t.w(i)
            if w in ("background", "backdrop", "bg", "backround", "backgroud", "environment"):
                colors, start, end = self._colors_around(i)
                if colors:
                    world.update(kind="color", color=colors[0])
                    self.world_explicit = True
                t.take(start, end)
                self.changed = True
            elif w in ("sky", "skies", "outdoors", "outside", "outdoor") and lookup_color([w, t.w(i + 1)]) is None:
                colors, start, end = self._colors_around(i)
                world["kind"] = "sky"
                if colors and not (len(colors) == 1 and colors[0] == "#0000ff"):  # "blue sky" is the default
                    world["color"] = colors[0]
                else:
                    world.update(color="#3a6fb0", horizon_color="#c8d8ec")
                for j in range(start - 1, max(-1, start - 3), -1):
                    if not (t.free(j) and t.w(j) in ("clear", "open", "cloudless", "a", "the", "under")):
                        break
                    start = j
                t.take(start, end)
                self.world_explicit = True
                self.changed = True
        for s, _e, _ in t.find({("against", "*"): None, ("on", "*"): None}):
            c = self.color_at(s + 1)
            # "against black", "on white" (with no noun after): a background colour.
            if c is not None and self.shape_at(c[1]) is None and not any(
                    self.color_at(k) or self.shape_at(k) or t.w(k) in MATERIAL_WORDS for k in (c[1],)) \
                    and t.w(c[1]) in ("", ",", ".", ";", "and", "with", "background"):
                world.update(kind="color", color=c[0])
                t.take(s, c[1])
                self.world_explicit = True
                self.changed = True

    def _colors_around(self, noun: int) -> tuple[list[str], int, int]:
        """Colours right before a noun ("black background") or after a linking word
        ("background is black", "background of dark blue"); in edits also "background red"."""
        t = self.toks
        colors: list[str] = []
        start, end = noun, noun + 1
        for n in range(MAX_COLOR_WORDS, 0, -1):
            if noun - n < 0:
                continue
            c = self.color_at(noun - n)
            if c is not None and c[1] == noun:
                colors.append(c[0])
                start = noun - n
                break
        if not colors:
            k = end
            link = t.w(k) in ("is", "in", "of", "colored", "coloured", "to", "be", "color", "colour", "=", ":")
            if link or self.edit:
                k2 = k + 1 if link else k
                c = self.color_at(k2)
                if c is not None:
                    colors.append(c[0])
                    end = c[1]
        while start > 0 and t.free(start - 1) and t.w(start - 1) in ("a", "an", "the", "on", "against", "in",
                                                                        "with", "over", "under"):
            start -= 1
        return colors, start, end

    # ------------------------------------------------------------- pass 6: lighting
    def parse_lighting(self) -> None:
        t = self.toks
        lighting = self.data["lighting"]
        world = self.data["world"]
        rigs: dict[tuple[str, ...], str] = {}
        phrase: tuple[str, ...]
        for phrase in (("sunset",), ("at", "sunset"), ("golden", "hour"), ("dusk",), ("at", "dusk"),
                       ("sunrise",), ("at", "sunrise"), ("dawn",), ("at", "dawn"), ("evening",), ("warm",)):
            rigs[phrase] = "sunset"
        for phrase in (("night",), ("at", "night"), ("nighttime",), ("night", "time"), ("moonlight",),
                       ("moonlit",), ("midnight",), ("moody",), ("in", "the", "dark"), ("dark", "scene"),
                       ("dramatic",), ("low", "key")):
            rigs[phrase] = "night"
        for phrase in (("soft", "light"), ("soft", "lighting"), ("soft", "lights"), ("soft", "shadows"),
                       ("softly", "lit"), ("overcast",), ("cloudy",), ("diffuse", "light"), ("diffused",),
                       ("even", "lighting"), ("gentle", "light"), ("gentle", "lighting"), ("soft",),
                       ("softer",), ("high", "key")):
            rigs[phrase] = "soft"
        for phrase in (("studio",), ("three", "point", "lighting"), ("product", "shot"), ("product", "photo"),
                       ("studio", "lights")):
            rigs[phrase] = "studio"
        for phrase in (("daylight",), ("daytime",), ("sunny",), ("sunlight",), ("noon",), ("day",),
                       ("during", "the", "day"), ("broad", "daylight")):
            rigs[phrase] = "day"
        for s, e, rig in t.find(rigs):
            if rig == "soft" and t.w(s) == "soft" and e == s + 1 and self.shape_at(s + 1) is not None:
                continue  # "a soft ball" is a material word, not lighting
            t.take(s, e)
            self.changed = True
            while t.w(e) in ("lighting", "light", "lights", "lit", "setup", "rig", "shadows", "mood", "sky",
                             "colors", "colours", "time"):
                if t.w(e) == "sky" and t.free(e):
                    world["kind"] = "sky"
                t.take(e, e + 1)
                e += 1
            if rig == "day":
                lighting["rig"] = "studio"
                if not self.world_explicit:
                    world.update(kind="sky", color="#3a6fb0", horizon_color="#c8d8ec", strength=1.0)
                continue
            lighting["rig"] = rig
            if self.world_explicit:
                continue
            if rig == "sunset":
                world.update(kind="sky", color="#3b4a7a", horizon_color="#ff9a56", strength=1.0)
            elif rig == "night":
                world.update(kind="color", color="#05070f", strength=1.0)
            elif rig == "soft" and t.w(s) in ("overcast", "cloudy"):
                world.update(kind="color", color="#9aa3ad", strength=1.0)
        for i in range(len(t)):
            if t.free(i) and t.w(i) in ("lighting", "lights", "lit", "light") and t.w(i + 1) in (
                    "", ",", ".", "and") and t.w(i - 1) in ("with", "good", "nice", "great", "", ","):
                t.take(i, i + 1)  # a bare "with nice lighting": the default rig already is that

    # ------------------------------------------------------------- pass 7: arrangement
    def parse_arrangement(self) -> None:
        phrases: dict[tuple[str, ...], Arrangement] = {}
        p: tuple[str, ...]
        for p in (("in", "a", "row"), ("in", "a", "line"), ("row", "of"), ("line", "of"), ("lined", "up"),
                  ("line", "up"), ("side", "by", "side"), ("next", "to", "each", "other"), ("in", "line"),
                  ("in", "a", "straight", "line"), ("in", "row"), ("row",), ("lineup",), ("aligned",),
                  ("beside", "each", "other"), ("horizontally",), ("in", "a", "line", "up")):
            phrases[p] = Arrangement.ROW
        for p in (("in", "a", "circle"), ("in", "a", "ring"), ("circle", "of"), ("ring", "of"), ("circular",),
                  ("in", "circle"), ("in", "a", "circular", "pattern"), ("circle",), ("around", "a", "circle"),
                  ("in", "a", "round")):
            phrases[p] = Arrangement.CIRCLE
        for p in (("in", "a", "grid"), ("grid", "of"), ("grid",), ("array", "of"), ("rows", "and", "columns"),
                  ("in", "rows"), ("in", "a", "square"), ("matrix", "of"), ("array",)):
            phrases[p] = Arrangement.GRID
        for p in (("stacked",), ("stack", "of"), ("stack",), ("tower", "of"), ("tower",), ("pile", "of"),
                  ("pyramid", "of"),
                  ("piled",), ("piled", "up"), ("stacked", "up"), ("on", "top", "of", "each", "other"),
                  ("on", "top", "of", "one", "another"), ("one", "on", "top", "of", "another"),
                  ("one", "above", "the", "other"), ("vertically",), ("stacked", "on", "top", "of", "each", "other")):
            phrases[p] = Arrangement.STACK
        for p in (("scattered",), ("scatter",), ("randomly",), ("random",), ("at", "random"), ("everywhere",),
                  ("strewn",), ("all", "over"), ("sprinkled",), ("spread", "out"), ("spread",),
                  ("randomly", "placed"), ("scattered", "around"), ("all", "over", "the", "place")):
            phrases[p] = Arrangement.SCATTER
        for s, e, arrangement in self.toks.find(phrases):
            self.toks.take(s, e)
            self.arrangement = arrangement
            self.changed = True
            if self.toks.w(e) in ("arrangement", "pattern", "formation", "layout", "placed", "arranged"):
                self.toks.take(e, e + 1)

    # ------------------------------------------------------------- pass 8: objects
    def _modifier_at(self, i: int, mods: Mods) -> int | None:
        """Read one modifier (colour, material, size, side) at i into `mods`; end index or None."""
        t = self.toks
        w = t.w(i)
        c = self.color_at(i)
        if c is not None and not (c[1] == i + 1 and w in MATERIAL_WORDS):
            mods.color = c[0]
            mods.words.extend(c[2])
            if c[2][0] in ("neon", "glowing", "fluorescent"):  # "neon pink" is a colour that glows
                mods.emission = MATERIAL_WORDS[c[2][0]].emission
            return c[1]
        if not t.free(i):
            return None
        if w in MATERIAL_WORDS:
            mw = MATERIAL_WORDS[w]
            mods.metallic = mw.metallic if mw.metallic is not None else mods.metallic
            mods.roughness = mw.roughness if mw.roughness is not None else mods.roughness
            mods.emission = mw.emission if mw.emission is not None else mods.emission
            mods.transmission = mw.transmission if mw.transmission is not None else mods.transmission
            mods.material_color = mw.color or mods.material_color
            if mw.warning:
                self.warn(mw.warning)
            mods.words.append(w)
            return i + 1
        if w in self._CHECKER_WORDS or w in ("striped", "patterned"):
            mods.checker = True
            mods.words.append(w)
            if w in ("striped", "patterned"):
                self.warn(f"'{w}' is shown as a checker pattern")
            return i + 1
        if w in BARE_SHADES and self._group_ahead(i + 1):
            # "two dark spheres": no colour named, so the shade applies to the default colour
            # (only before a shape: "a dark background" is not the cube's).
            mods.shade = w
            mods.words.append(w)
            return i + 1
        if w in SIZE_WORDS:
            mods.size = SIZE_WORDS[w]
            mods.words.append(w)
            return i + 1
        if w in COMPARATIVE_SIZES:
            if self.edit:
                mods.relative_size = (mods.relative_size or 1.0) * COMPARATIVE_SIZES[w]
            else:
                mods.size = SIZE_WORDS["big"] if COMPARATIVE_SIZES[w] > 1 else SIZE_WORDS["small"]
            mods.words.append(w)
            end = i + 1
            while t.w(end) in ("and", "much", "even", "bit", "a") and t.w(end + 1) in COMPARATIVE_SIZES:
                end += 1
            return end
        if w in ("twice", "double") and t.match(i + 1, ("as", "big")) or w in ("double",) and t.w(i + 1) == "size":
            mods.relative_size = 2.0 if self.edit else None
            mods.size = None if self.edit else 2.0
            mods.words.append(w)
            return i + 3 if t.w(i + 1) == "as" else i + 2
        if w == "half" and t.w(i + 1) == "size":
            mods.relative_size = 0.5
            return i + 2
        if w in STRETCH_WORDS:
            sx, sy, sz = mods.stretch or (1.0, 1.0, 1.0)
            fx, fy, fz = STRETCH_WORDS[w]
            mods.stretch = (sx * fx, sy * fy, sz * fz)
            mods.words.append(w)
            return i + 1
        if w in SIDE_WORDS and t.w(i - 1) in ("the", "on", "to", "at", "in") or w in ("leftmost", "rightmost"):
            mods.side = SIDE_WORDS.get(w, -1 if w == "leftmost" else 1)
            mods.words.append(w)
            return i + 1
        if w in ("very", "really", "extra", "super", "slightly", "quite", "somewhat", "fairly") and (
                t.w(i + 1) in SIZE_WORDS or t.w(i + 1) in MATERIAL_WORDS or t.w(i + 1) in STRETCH_WORDS):
            return i + 1
        return None

    def _count_at(self, i: int) -> tuple[int, int] | None:
        """(count, end) of a count expression at i: "three", "5", "a dozen", "a pair of", "twenty one"."""
        t = self.toks
        if not t.free(i):
            return None
        w = t.w(i)
        num = t.num(i)
        if num is not None:
            value, suffix = num
            if suffix or not float(value).is_integer():
                return None
            return int(min(value, 10**6)), i + 1
        if w == "half" and t.match(i + 1, ("a", "dozen")):
            return 6, i + 3
        if w in ("a", "an") and t.w(i + 1) in NUMBER_WORDS and t.free(i + 1) and t.w(i + 1) != "one":
            inner = self._count_at(i + 1)
            if inner is not None and t.w(i + 1) in ("dozen", "pair", "couple", "few", "bunch", "trio", "quartet",
                                                      "hundred", "thousand", "lot"):
                return inner[0], inner[1]
        if w == "a" and t.w(i + 1) == "lot" and t.w(i + 2) == "of":
            return NUMBER_WORDS["lots"], i + 3
        if w not in NUMBER_WORDS:
            return None
        value = NUMBER_WORDS[w]
        end = i + 1
        if w in TENS and t.free(end) and t.w(end) in NUMBER_WORDS and NUMBER_WORDS[t.w(end)] < 10 \
                and t.w(end) not in COUNT_NEEDS_OF:
            value += NUMBER_WORDS[t.w(end)]
            end += 1
        if w in ("hundred", "thousand") and end > i + 1:
            pass
        if t.w(end) == "of" and (w in COUNT_NEEDS_OF or w in ("dozen", "few", "several", "many", "hundred")):
            end += 1
        elif w in COUNT_NEEDS_OF and w not in ("dozens", "hundreds"):
            return None if w in ("lots", "bunch") else (value, end)
        return value, end

    def parse_objects(self) -> list[Group]:
        t = self.toks
        groups: list[Group] = []
        pending = Mods()
        pending_count: tuple[int, bool] | None = None  # (count, explicit)
        pending_definite = False
        relation: str = ""  # "on" -> next group below the previous; "around" -> next group is the centre
        unknown_since: int | None = None
        stale = False  # an unknown word followed the pending modifiers ("a purple ELEPHANT")
        count_start = -1  # where the pending count's words begin
        last_shape_end = -1
        i = 0
        n = len(t)

        def flush_to_last() -> None:
            nonlocal pending, stale
            if stale:  # "a red cube and a purple elephant": purple was the elephant's, not the cube's
                pending, stale = Mods(), False
            if pending.any() and groups:
                groups[-1].mods = groups[-1].mods.merged(pending)
                pending = Mods()
            elif pending.any() and self.edit:  # "make it blue": for every object
                self.leftover_mods = self.leftover_mods.merged(pending)
                pending = Mods()

        while i < n:
            if i in self.asset_materials:  # "with the neon green material": a modifier
                hit, end = self.asset_materials[i]
                pending.asset_material = asset_ref(hit.entry, append=self.asset_append)
                pending.words.append(hit.entry.name)
                i = end
                continue
            if not t.free(i) and i not in self.asset_objects:
                i += 1
                continue
            w = t.w(i)
            tok = t.toks[i]
            # Text objects: `the word "hi"`, `text HELLO`, or a bare quoted string.
            if tok.kind == "quote" or (w in TEXT_NOUNS and self._text_body(i) is not None):
                body, start_body, end = self._text_body(i) if tok.kind != "quote" else (
                    self.quotes[int(w[3:-2])], i, i + 1)  # type: ignore[misc]
                del start_body
                count, explicit = pending_count or (1, False)
                groups.append(Group(Primitive.TEXT, 1, pending, text=body[:MAX_TEXT_LEN].strip() or "text",
                                     label="text", definite=pending_definite, explicit_count=explicit))
                if count > 1:
                    self.warn("text is made once; the count was ignored")
                if len(body) > MAX_TEXT_LEN:
                    self.warn(f"objects[].text was cut to {MAX_TEXT_LEN} characters")
                t.take(i, end)
                pending, pending_count, pending_definite, stale = Mods(), None, False, False
                i = end
                continue
            shape = self.shape_at(i)
            if shape is not None and groups and last_shape_end == i and groups[-1].primitive is shape[0] \
                    and shape[0] is not Primitive.ASSET:
                # "a suzanne monkey head": two names for one object.
                t.take(i, shape[2])
                i = last_shape_end = shape[2]
                continue
            if shape is not None:
                prim, plural, end = shape
                last_shape_end = end
                count, explicit = pending_count or ((DEFAULT_PLURAL_COUNT, False) if plural else (1, False))
                if plural and not explicit and pending_count is None and not pending_definite:
                    self.warn(f"no number given for '{' '.join(t.w(k) for k in range(i, end))}': made "
                              f"{DEFAULT_PLURAL_COUNT}")
                if prim is Primitive.CONE and t.w(i).startswith("pyramid"):
                    self.warn("pyramids are made as cones (a 4-sided cone is not available)")
                if t.w(i) in ("thing", "object", "shape", "item", "something", "primitive", "solid"):
                    self.warn(f"'{t.w(i)}' is not a shape I know: made a cube")
                definite = pending_definite and pending_count is None
                group = Group(prim, count, pending, label=" ".join(t.w(k) for k in range(i, end)),
                               definite=definite, explicit_count=explicit)
                if prim is Primitive.ASSET:
                    group.asset = object_ref(self, i)
                if self.edit and definite:
                    # In an edit, words before "the ... cube" pick objects; words after change them.
                    group.selector_color, group.mods = pending.color, Mods()
                if self.edit and pending_count is not None and (
                        self._sets_count(count_start, end)
                        or explicit and groups and groups[-1].set_count):  # "make it 2 cubes and 2 spheres"
                    group.set_count = True
                if relation == "on" and groups:
                    group.below_previous = True
                elif relation == "around":
                    group.center = True
                relation = ""
                groups.append(group)
                t.take(i, end)
                if plural and w not in ("spheres",) and t.w(end) == "of":
                    pass
                pending, pending_count, pending_definite, stale = Mods(), None, False, False
                unknown_since = None
                i = end
                continue
            if w in ("one", "ones") and groups and pending.any() and pending_count is None \
                    and self.shape_at(i + 1) is None:
                # "a red cube and a blue one": the same shape again.
                last = groups[-1]
                groups.append(Group(last.primitive, 1 if w == "one" else DEFAULT_PLURAL_COUNT, pending,
                                     text=last.text, label=last.label, asset=last.asset))
                t.take(i, i + 1)
                pending, pending_count, stale = Mods(), None, False
                i += 1
                continue
            counted = self._count_at(i)
            if counted is not None and not (w == "one" and pending_count is not None):
                value, end = counted
                total_end = self._count_of_all(i, end) if self.edit else None
                if total_end is not None:  # "5 of them"
                    self.set_total = value
                    t.take(i, total_end)
                    i = total_end
                    continue
                pending_count = (value, w not in ("a", "an"))
                count_start = i
                if stale:  # a new noun phrase: the unknown one's modifiers stay behind
                    pending, stale = Mods(), False
                t.take(i, end)
                i = end
                continue
            if w in ("a", "an") and self.shape_at(i + 1) is not None or w in ("a", "an") and (
                    self._modifier_at(i + 1, Mods()) is not None):
                pending_count = (1, False)
                if stale:
                    pending, stale = Mods(), False
                t.take(i, i + 1)
                i += 1
                continue
            if w in ("the", "those", "these", "that", "this"):
                if stale:
                    pending, stale = Mods(), False
                pending_definite = True
                t.take(i, i + 1)
                i += 1
                continue
            end_mod = self._modifier_at(i, pending)
            if end_mod is not None:
                t.take(i, end_mod)
                i = end_mod
                continue
            rel_end = None
            for phrase, rel in ((("on", "top", "of"), "on"), (("on",), "on"), (("atop",), "on"),
                                (("above",), "on"), (("balanced", "on"), "on"), (("sitting", "on"), "on"),
                                (("resting", "on"), "on"), (("around",), "around"), (("surrounding",), "around"),
                                (("encircling",), "around"), (("circling",), "around")):
                e = t.match(i, phrase)
                if e is not None and groups:
                    relation, rel_end = rel, e
                    break
            if rel_end is not None:
                if relation == "on" and not self._group_ahead(rel_end):
                    relation = ""
                    if t.w(i) == "on" and t.w(i + 1) == "top":
                        self.stack_on_top = True
                        t.take(i, i + 2)
                        i += 2
                        continue
                    i += 1
                    continue
                flush_to_last()
                t.take(i, rel_end)
                i = rel_end
                continue
            if t.match(i, ("surrounded", "by")) and groups:
                groups[-1].center = True
                t.take(i, i + 2)
                i += 2
                continue
            if w in CLAUSE_BREAKS or tok.kind == "punct":
                flush_to_last()
                pending_count, pending_definite = None, False
                i += 1
                continue
            if w in STOP_WORDS:
                i += 1
                continue
            # An unknown word may be a noun ("a purple elephant") or an adjective ("5 weird
            # cubes"). The count and the modifiers before it are kept for a shape that follows
            # at once, but marked stale: a clause break or a new noun phrase drops them, so
            # "purple" never colours the previous or the next object.
            if unknown_since is None:
                unknown_since = i
            stale = stale or pending.any() or pending_count is not None or pending_definite
            i += 1
        flush_to_last()
        return groups

    _THEM = ("them", "those", "these", "it", "all", "everything")

    def _count_of_all(self, start: int, end: int) -> int | None:
        """End of a count of every object at start..end: "5 of them", "make them 5"; else None.

        Only when nothing follows in the clause: "make two of them red" picks objects instead.
        """
        t = self.toks
        if edit_verb(self.text) != "modify":  # "remove one of them", "add two of them"
            return None
        k = end
        if t.w(end - 1) == "of" and t.w(k) in self._THEM:
            k += 1
        elif t.w(k) == "of" and t.w(k + 1) in self._THEM:
            k += 2
        elif not (t.w(start - 1) == "them" and t.w(start - 2) in ("make", "turn", "change", "set")):
            return None
        if t.w(k) == "instead":
            k += 1
        after = t.w(k)
        if after in ("", "now", "please", "pls") or after in CLAUSE_BREAKS and after not in ("with", "and"):
            return k
        return None

    def _sets_count(self, count_start: int, shape_end: int) -> bool:
        """Edits: does the count before a shape set how many there are ("make it 3 cubes",
        "only one cube", "three cubes instead") rather than add that many?"""
        t = self.toks
        before = t.w(count_start - 1)
        if before in ("only", "just"):
            return True
        if before == "into":
            count_start -= 1
            before = t.w(count_start - 1)
        if before in ("it", "them", "that", "this", "everything") and t.w(count_start - 2) in (
                "make", "turn", "change", "set", "now"):
            return True
        return t.w(shape_end) == "instead" and t.w(shape_end + 1) != "of"

    def _group_ahead(self, i: int) -> bool:
        """True when a shape noun follows within a few words (skipping articles and modifiers)."""
        for k in range(i, min(i + 6, len(self.toks))):
            if self.shape_at(k) is not None:
                return True
            w = self.toks.w(k)
            if w in ARTICLES or self.color_at(k) or w in MATERIAL_WORDS or w in SIZE_WORDS or w in BARE_SHADES \
                    or self._count_at(k):
                continue
            return False
        return False

    def _text_body(self, i: int) -> tuple[str, int, int] | None:
        """For a text noun at i: (body, start, end) from a following quote or a following word."""
        t = self.toks
        j = i + 1
        while t.w(j) in ("saying", "says", "that", "reading", "reads", "of", "spelling", "is", ":", "=", "with"):
            j += 1
        if t.free(j) and t.toks[j].kind == "quote":
            return self.quotes[int(t.w(j)[3:-2])], i, j + 1
        if t.w(i) in ("text", "word", "sign", "title", "saying", "says", "reading", "spelling", "label") \
                and t.free(j) and t.toks[j].kind in ("word", "num") and t.w(j) not in STOP_WORDS \
                and self.shape_at(j) is None and lookup_color([t.w(j)]) is None and t.w(j) not in MATERIAL_WORDS:
            return t.toks[j].raw, i, j + 1
        return None

    # ------------------------------------------------------------- leftovers
    def leftovers(self) -> list[str]:
        """Unused words that mean something, grouped into phrases."""
        t = self.toks
        phrases: list[str] = []
        current: list[str] = []
        for i in range(len(t)):
            w = t.w(i)
            meaningful = t.free(i) and t.toks[i].kind in ("word", "num", "res", "hex") and w not in STOP_WORDS
            if meaningful:
                current.append(t.toks[i].raw)
            elif current and not (t.free(i) and w in STOP_WORDS and t.toks[i].kind == "word"
                                  and w not in ("and", "with") and i + 1 < len(t) and t.free(i + 1)
                                  and t.w(i + 1) not in STOP_WORDS and False):
                phrases.append(clip_phrase(current))
                current = []
            if len(phrases) >= MAX_NOT_UNDERSTOOD:
                break
        if current and len(phrases) < MAX_NOT_UNDERSTOOD:
            phrases.append(clip_phrase(current))
        seen: list[str] = []
        for p in phrases:
            if p.lower() not in (s.lower() for s in seen):
                seen.append(p)
        return seen
