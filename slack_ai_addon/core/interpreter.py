"""The offline interpreter: natural language to a `SceneSpec` with a deterministic grammar, no LLM.

It is the last link of the provider chain and the embedded default, so it must never fail on
odd input: anything it cannot use is reported in `Interpretation.not_understood`, clamps and
assumptions become warnings, and only input with nothing renderable (or an explicit request
outside the spec's bounds, such as "resolution 999999") raises `SpecError`.

The parse runs in passes over the tokens; each pass marks the tokens it used, so a word is
never read twice ("2 seconds" is a duration, not a count; "red and white checkered floor" is
the floor, not two objects). Order: output settings, motion, camera, floor, world, lighting,
arrangement, then the objects themselves; whatever is left and is not a filler word is
reported back.

`offline_intent(text)` classifies a message (render/edit/analyze/help/status/chitchat) by
keywords for the Slack agent when no LLM is available.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import zlib
from dataclasses import dataclass, field, replace
from typing import Any

from .interp_colors import MAX_COLOR_WORDS, apply_shade, color_distance, lookup_color
from .interp_layout import Arrangement, Placed, arrange, bounds, fit_distance, half_extents
from .interp_vocab import (
    ALL_REFERENCES,
    COMPARATIVE_SIZES,
    COUNT_NEEDS_OF,
    GENERIC_MIX,
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
from .jobs import MAX_REQUEST_CHARS
from .pipeline import Interpretation
from .scene_spec import (
    MAX_FPS,
    MAX_FRAMES,
    MAX_OBJECTS,
    MAX_RESOLUTION,
    MAX_SAMPLES,
    MAX_TEXT_LEN,
    MIN_RESOLUTION,
    Primitive,
    SceneSpec,
    SpecError,
    parse_scene_spec,
)

log = logging.getLogger(__name__)

PROVIDER = "offline"
MAX_NOT_UNDERSTOOD = 20
DRAFT_SAMPLES = 8
ANIMATION_WIDTH = 320  # preview size for animations without an explicit size or quality
ANIMATION_SAMPLES = 16
HIGH_SAMPLES = 128
ULTRA_SAMPLES = 512
DEFAULT_PLURAL_COUNT = 3
EXAMPLE = '"a red cube on a checkered floor"'

_QUOTE_RE = re.compile(r'"([^"]{0,400})"|\u201c([^\u201d]{0,400})\u201d'
                       r"|(?<![A-Za-z0-9])'([^']{1,200})'(?![A-Za-z0-9])")
_TOKEN_RE = re.compile(
    r"(?P<quote>__q\d+__)"
    r"|(?P<hex>#[0-9a-fA-F]{6})(?![0-9a-fA-F])"
    r"|(?P<res>\d{1,9}\s*[x\u00d7]\s*\d{1,9})(?![0-9])"
    r"|(?P<num>\d{1,12}(?:\.\d+)?[a-zA-Z]*)"
    r"|(?P<word>[a-zA-Z][a-zA-Z0-9]*(?:'[a-zA-Z]+)?)"
    r"|(?P<punct>[,;.!?&+:=/()])"
)
_NUM_RE = re.compile(r"^(\d+(?:\.\d+)?)([a-z]*)$")
_CLAUSE_BREAKS = frozenset({",", ";", ".", "!", "?", "and", "&", "+", "then", "but", "plus", "also", "with",
                            "while", "(", ")", ":", "/"})
_ARTICLES = frozenset({"a", "an", "the", "some", "another", "this", "that", "these", "those", "my", "its"})
# Shade words that also work alone, before a shape with no colour: "a dark cube" is a dark grey.
_BARE_SHADES = frozenset({"dark", "light", "pale", "bright", "pastel", "deep"})


# ------------------------------------------------------------------------------ tokens

@dataclass
class _Tok:
    raw: str
    low: str
    kind: str  # quote | hex | res | num | word | punct


class _Tokens:
    """Tokens with a `used` mark per position; passes match phrases only over unused tokens."""

    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.used = [False] * len(toks)

    def __len__(self) -> int:
        return len(self.toks)

    def w(self, i: int) -> str:
        return self.toks[i].low if 0 <= i < len(self.toks) else ""

    def free(self, i: int) -> bool:
        return 0 <= i < len(self.toks) and not self.used[i]

    def take(self, start: int, end: int) -> None:
        for k in range(start, end):
            self.used[k] = True

    def match(self, i: int, words: tuple[str, ...]) -> int | None:
        """End index if the free tokens at i spell `words` ("*" matches any one word), else None."""
        for k, word in enumerate(words):
            j = i + k
            if not self.free(j):
                return None
            if word != "*" and self.toks[j].low != word:
                return None
        return i + len(words)

    def find(self, phrases: dict[tuple[str, ...], Any]) -> list[tuple[int, int, Any]]:
        """All non-overlapping occurrences of any phrase, longest first at each position."""
        ordered = sorted(phrases, key=len, reverse=True)
        out: list[tuple[int, int, Any]] = []
        i = 0
        while i < len(self.toks):
            for phrase in ordered:
                end = self.match(i, phrase)
                if end is not None:
                    out.append((i, end, phrases[phrase]))
                    i = end - 1
                    break
            i += 1
        return out

    def num(self, i: int) -> tuple[float, str] | None:
        """(value, suffix) of a number token at a free position."""
        if not self.free(i) or self.toks[i].kind != "num":
            return None
        m = _NUM_RE.match(self.toks[i].low)
        if not m:
            return None
        return float(m.group(1)), m.group(2)


def _tokenize(text: str) -> tuple[_Tokens, list[str]]:
    quotes: list[str] = []

    def keep(m: re.Match[str]) -> str:
        quotes.append(next(g for g in m.groups() if g is not None))
        return f" __q{len(quotes) - 1}__ "

    text = _QUOTE_RE.sub(keep, text)
    toks = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup or "word"
        raw = m.group(0)
        low = re.sub(r"\s+", "", raw.lower()).replace("\u00d7", "x") if kind == "res" else raw.lower()
        toks.append(_Tok(raw, low, kind))
    return _Tokens(toks), quotes


# ------------------------------------------------------------------------- object groups

@dataclass
class _Mods:
    """Modifiers collected before (or after) a shape noun."""

    color: str | None = None
    metallic: float | None = None
    roughness: float | None = None
    emission: float | None = None
    transmission: float | None = None
    material_color: str | None = None  # from "gold", "wooden": used when no colour is named
    checker: bool = False
    size: float | None = None
    relative_size: float | None = None
    stretch: tuple[float, float, float] | None = None
    side: int | None = None
    shade: str | None = None  # "a dark cube": a shade word with no colour name shades the default
    words: list[str] = field(default_factory=list)

    def any(self) -> bool:
        return bool(self.words)

    def merged(self, later: _Mods) -> _Mods:
        """These modifiers overridden by the ones in `later` that are set."""
        out = replace(self, words=[*self.words, *later.words])
        for name in ("color", "metallic", "roughness", "emission", "transmission", "material_color", "size",
                     "relative_size", "stretch", "side", "shade"):
            value = getattr(later, name)
            if value is not None:
                setattr(out, name, value)
        out.checker = self.checker or later.checker
        return out


@dataclass
class _Group:
    primitive: Primitive | None  # None: generic plural ("three shapes") -> a mix
    count: int
    mods: _Mods
    text: str | None = None
    label: str = ""
    definite: bool = False  # "the sphere": a reference to existing objects in an edit
    explicit_count: bool = False
    below_previous: bool = False  # "a sphere ON a cube": this group goes under the previous one
    center: bool = False  # "spheres AROUND a cube"
    selector_color: str | None = None  # edits: "the RED cube" picks red cubes
    set_count: bool = False  # edits: "make it 3 cubes", "only one cube", "3 cubes instead" set the count


# --------------------------------------------------------------------------- the parser

class _Parse:
    def __init__(self, text: str, previous: SceneSpec | None) -> None:
        self.text = text
        self.previous = previous
        self.edit = previous is not None
        self.data: dict[str, Any] = (previous or SceneSpec()).to_json_dict()
        self.toks, self.quotes = _tokenize(text)
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
        self.leftover_mods = _Mods()  # edits: modifiers with no object named apply to all
        self.set_total: int | None = None  # edits: "5 of them" sets the number of objects

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
            floor["color"] = colors[0] if colors else (floor["color"] if self.edit and self.previous and
                                                       self.previous.floor.kind.value == kind else defaults[0])
            floor["color2"] = colors[1] if len(colors) > 1 else (
                defaults[1] if color_distance(floor["color"], defaults[1]) > 80 else "#f0f0f0")
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
    def _modifier_at(self, i: int, mods: _Mods) -> int | None:
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
        if w in _BARE_SHADES and self._group_ahead(i + 1):
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

    def parse_objects(self) -> list[_Group]:
        t = self.toks
        groups: list[_Group] = []
        pending = _Mods()
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
                pending, stale = _Mods(), False
            if pending.any() and groups:
                groups[-1].mods = groups[-1].mods.merged(pending)
                pending = _Mods()
            elif pending.any() and self.edit:  # "make it blue": for every object
                self.leftover_mods = self.leftover_mods.merged(pending)
                pending = _Mods()

        while i < n:
            if not t.free(i):
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
                groups.append(_Group(Primitive.TEXT, 1, pending, text=body[:MAX_TEXT_LEN].strip() or "text",
                                     label="text", definite=pending_definite, explicit_count=explicit))
                if count > 1:
                    self.warn("text is made once; the count was ignored")
                if len(body) > MAX_TEXT_LEN:
                    self.warn(f"objects[].text was cut to {MAX_TEXT_LEN} characters")
                t.take(i, end)
                pending, pending_count, pending_definite, stale = _Mods(), None, False, False
                i = end
                continue
            shape = self.shape_at(i)
            if shape is not None and groups and last_shape_end == i and groups[-1].primitive is shape[0]:
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
                group = _Group(prim, count, pending, label=" ".join(t.w(k) for k in range(i, end)),
                               definite=definite, explicit_count=explicit)
                if self.edit and definite:
                    # In an edit, words before "the ... cube" pick objects; words after change them.
                    group.selector_color, group.mods = pending.color, _Mods()
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
                pending, pending_count, pending_definite, stale = _Mods(), None, False, False
                unknown_since = None
                i = end
                continue
            if w in ("one", "ones") and groups and pending.any() and pending_count is None \
                    and self.shape_at(i + 1) is None:
                # "a red cube and a blue one": the same shape again.
                last = groups[-1]
                groups.append(_Group(last.primitive, 1 if w == "one" else DEFAULT_PLURAL_COUNT, pending,
                                     text=last.text, label=last.label))
                t.take(i, i + 1)
                pending, pending_count, stale = _Mods(), None, False
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
                    pending, stale = _Mods(), False
                t.take(i, end)
                i = end
                continue
            if w in ("a", "an") and self.shape_at(i + 1) is not None or w in ("a", "an") and (
                    self._modifier_at(i + 1, _Mods()) is not None):
                pending_count = (1, False)
                if stale:
                    pending, stale = _Mods(), False
                t.take(i, i + 1)
                i += 1
                continue
            if w in ("the", "those", "these", "that", "this"):
                if stale:
                    pending, stale = _Mods(), False
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
            if w in _CLAUSE_BREAKS or tok.kind == "punct":
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
        if _edit_verb(self.text) != "modify":  # "remove one of them", "add two of them"
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
        if after in ("", "now", "please", "pls") or after in _CLAUSE_BREAKS and after not in ("with", "and"):
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
            if w in _ARTICLES or self.color_at(k) or w in MATERIAL_WORDS or w in SIZE_WORDS or w in _BARE_SHADES \
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
                phrases.append(_clip_phrase(current))
                current = []
            if len(phrases) >= MAX_NOT_UNDERSTOOD:
                break
        if current and len(phrases) < MAX_NOT_UNDERSTOOD:
            phrases.append(_clip_phrase(current))
        seen: list[str] = []
        for p in phrases:
            if p.lower() not in (s.lower() for s in seen):
                seen.append(p)
        return seen


MAX_REPORTED_WORD = 40  # characters of one not-understood word ("x" * 10240 is one word)
MAX_HINT_CHARS = 300  # characters of the not-understood hint in a SpecError message


def _clip_phrase(words: list[str], limit: int = 6) -> str:
    # A run of unknown words can be thousands long ("blah blah ..."), and so can one word
    # with no spaces: messages stay short either way.
    clipped = [w if len(w) <= MAX_REPORTED_WORD else w[:MAX_REPORTED_WORD - 1] + "\u2026" for w in words[:limit]]
    return " ".join(clipped) + (" \u2026" if len(words) > limit else "")


def _hint(words: list[str], limit: int = 5) -> str:
    """The first not-understood phrases for an error message, at most MAX_HINT_CHARS long."""
    text = ", ".join(words[:limit])
    return text if len(text) <= MAX_HINT_CHARS else text[:MAX_HINT_CHARS - 1] + "\u2026"


# ------------------------------------------------------------------------ building objects

def _material(mods: _Mods, base: dict[str, Any] | None = None) -> dict[str, Any]:
    mat: dict[str, Any] = dict(base) if base else {"base_color": "#cccccc", "metallic": 0.0, "roughness": 0.5,
                                                   "emission_strength": 0.0, "transmission": 0.0, "checker": None}
    if mods.color is not None:
        mat["base_color"] = mods.color
    elif mods.material_color is not None:
        mat["base_color"] = mods.material_color
    elif mods.transmission and not base:
        mat["base_color"] = "#f4f8ff"
    if mods.shade is not None and mods.color is None:
        mat["base_color"] = _shaded(mat["base_color"], mods.shade)
    for key, value in (("metallic", mods.metallic), ("roughness", mods.roughness),
                       ("emission_strength", mods.emission), ("transmission", mods.transmission)):
        if value is not None:
            mat[key] = value
    if mods.checker:
        mat["checker"] = {"color2": "#1a1a1a" if color_distance(mat["base_color"], "#1a1a1a") > 80 else "#f0f0f0",
                          "scale": 8.0}
    return mat


def _shaded(color: str, shade: str) -> str:
    """A bare shade word applied to a colour; on a grey, "bright" lightens as "light" does."""
    shaded = apply_shade(color, shade)
    if shaded == color and shade in ("bright", "pale", "pastel", "light"):
        shaded = apply_shade(color, "light")
    return shaded


def _scale(mods: _Mods, base: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> tuple[float, float, float]:
    if mods.size is not None:
        base = (mods.size, mods.size, mods.size)
    if mods.relative_size is not None:
        base = (base[0] * mods.relative_size, base[1] * mods.relative_size, base[2] * mods.relative_size)
    if mods.stretch is not None:
        base = (base[0] * mods.stretch[0], base[1] * mods.stretch[1], base[2] * mods.stretch[2])
    return (min(max(base[0], 0.05), 20.0), min(max(base[1], 0.05), 20.0), min(max(base[2], 0.05), 20.0))


def _object_name(obj: dict[str, Any]) -> str:
    prim = str(obj["primitive"])
    return "text" if prim == "text" else prim.replace("_", " ")


def _new_object(prim: Primitive, mods: _Mods, text: str | None = None,
                template: dict[str, Any] | None = None) -> dict[str, Any]:
    base = (template["scale"]["x"], template["scale"]["y"], template["scale"]["z"]) if template else (1.0, 1.0, 1.0)
    scale = _scale(mods, base)
    obj: dict[str, Any] = {
        "primitive": prim.value, "name": prim.value.replace("_", " "),
        "location": {"x": 0.0, "y": 0.0, "z": 0.0}, "rotation_deg": {"x": 0.0, "y": 0.0, "z": 0.0},
        "scale": {"x": scale[0], "y": scale[1], "z": scale[2]},
        "material": _material(mods, template["material"] if template else None),
        "text": text if prim is Primitive.TEXT else None,
    }
    if mods.side is not None:
        obj["_side"] = mods.side
    return obj


def _infer_arrangement(objects: list[dict[str, Any]]) -> Arrangement:
    """Guess how a previous spec's objects were arranged, to lay them out again after an edit."""
    if len(objects) <= 1:
        return Arrangement.SINGLE
    xs = [o["location"]["x"] for o in objects]
    ys = [o["location"]["y"] for o in objects]
    if max(xs) - min(xs) < 1e-6 and max(ys) - min(ys) < 1e-6:
        return Arrangement.STACK
    if max(ys) - min(ys) < 1e-6:
        return Arrangement.ROW
    cx, cy = sum(xs) / len(xs), sum(ys) / len(ys)
    radii = [math.hypot(x - cx, y - cy) for x, y in zip(xs, ys, strict=True)]
    if max(radii) - min(radii) < 1e-3 or sum(1 for r in radii if r < 1e-6) == 1:
        return Arrangement.CIRCLE
    if any(abs(o["rotation_deg"]["z"]) > 1e-6 for o in objects):
        return Arrangement.SCATTER
    return Arrangement.GRID


def _layout(data: dict[str, Any], arrangement: Arrangement | None, seed: int, camera: dict[str, float],
            reframe: bool) -> None:
    objects: list[dict[str, Any]] = data["objects"]
    if not objects:
        return
    if arrangement is None:
        arrangement = Arrangement.SINGLE if len(objects) == 1 else (
            Arrangement.ROW if len(objects) <= 5 else Arrangement.GRID)
    # Row order follows "on the left"/"on the right" first, then the order of mention.
    if arrangement is Arrangement.ROW and any("_side" in o for o in objects):
        objects.sort(key=lambda o: o.get("_side", 0))
    center_idx = next((k for k, o in enumerate(objects) if o.get("_center")), None)
    placed = [Placed(half_extents(Primitive(o["primitive"]), tuple(o["scale"].values()), o.get("text")))
              for o in objects]
    ring = [p for k, p in enumerate(placed) if k != center_idx]
    center = placed[center_idx] if center_idx is not None and arrangement is Arrangement.CIRCLE else None
    if center is None:
        ring = placed
    arrange(ring, arrangement, center=center, seed=seed)
    floating = data["floor"]["kind"] == "none" and arrangement is not Arrangement.STACK
    for o, p in zip(objects, placed, strict=True):
        o["location"] = {"x": round(p.x, 4), "y": round(p.y, 4), "z": round(p.z + (0.3 if floating else 0.0), 4)}
        if arrangement is Arrangement.SCATTER:
            o["rotation_deg"]["z"] = round(p.rot_z, 2)
        elif o["rotation_deg"]["z"]:
            o["rotation_deg"]["z"] = 0.0
        o.pop("_side", None)
        o.pop("_center", None)
    if floating:
        for p in placed:
            p.z += 0.3
    cam = data["camera"]
    if cam.get("location") is None and reframe:
        kind = data["animation"]["kind"]
        (x0, y0, z0), (x1, y1, z1) = bounds(placed, spinning=kind == "spin")
        if kind == "bounce":  # the builder lifts each object by max(0.5, 0.8 x its z scale)
            z1 += max(max(0.5, o["scale"]["z"] * 0.8) for o in objects)
        cx, cy, cz = (x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2
        radius = max(0.5, 0.5 * math.dist((x0, y0, z0), (x1, y1, z1)))
        lens = camera.get("lens", cam["lens_mm"])
        out = data["output"]
        tall = (z1 - z0) > 1.5 * max(x1 - x0, y1 - y0)
        elevation = camera.get("elevation", 12.0 if tall else cam["orbit"]["elevation_deg"])
        azimuth = camera.get("azimuth", cam["orbit"]["azimuth_deg"])
        # A turntable sees the scene from every side: fit the worst of eight directions.
        azimuths = [azimuth + k * 45.0 for k in range(8)] if data["animation"]["kind"] == "turntable" else [azimuth]
        distance = fit_distance((x0, y0, z0), (x1, y1, z1), (cx, cy, cz), elevation_deg=elevation,
                                azimuths_deg=azimuths, width=out["width"], height=out["height"], lens_mm=lens)
        distance *= camera.get("distance", 1.0)
        cam["look_at"] = {"x": round(cx, 4), "y": round(cy, 4), "z": round(cz, 4)}
        cam["lens_mm"] = lens
        cam["orbit"]["distance"] = round(min(max(distance, 1.5), 450.0), 3)
        cam["orbit"]["elevation_deg"] = elevation
        cam["orbit"]["azimuth_deg"] = azimuth
        # The floor must reach past the objects and well into the view.
        extent = max(abs(x0), abs(x1), abs(y0), abs(y1))
        floor = data["floor"]
        floor["size"] = round(min(500.0, max(floor["size"], 2 * extent + 2 * distance)), 2)
        if floor["kind"] in ("checkered", "grid"):
            floor["tiles"] = max(1, min(200, round(floor["size"] / max(1.0, radius))))


# ------------------------------------------------------------------------- the interpreter

class OfflineInterpreter:
    """Deterministic text-to-SceneSpec grammar; the embedded default and the last fallback.

    `interpret("three red spheres in a row on a checkered floor")` makes a full spec;
    with `previous=spec`, the text is an edit of that spec ("make it blue", "add two more
    spheres", "remove the cube", "4k") and the whole new spec is returned.
    """

    provider = PROVIDER

    def interpret(self, text: str, *, previous: SceneSpec | None = None,
                  correlation_id: str = "") -> Interpretation:
        """Text (or an edit of `previous`) to a spec. Raises SpecError for unusable input."""
        original = text or ""
        warnings: list[str] = []
        if len(original) > MAX_REQUEST_CHARS:
            warnings.append(f"request was {len(original)} characters; only the first {MAX_REQUEST_CHARS} were read")
            original = original[:MAX_REQUEST_CHARS]
        if not original.strip():
            raise SpecError(f"There is nothing to render: tell me what you want, e.g. {EXAMPLE}.", ["request"])
        parse = _Parse(original, previous)
        parse.warnings.extend(warnings)
        parse.parse_output()
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
            self._apply_edit(parse, groups, previous, seed)
        not_understood = parse.leftovers()
        spec, clamp_warnings = parse_scene_spec(parse.data)
        parse.warnings.extend(clamp_warnings)
        log.debug("offline interpretation", extra={"correlation_id": correlation_id,
                                                     "objects": len(spec.objects),
                                                     "not_understood": len(not_understood)})
        return Interpretation(spec=spec, provider=PROVIDER, warnings=parse.warnings,
                              not_understood=not_understood, notes=parse.notes)

    # ---------------------------------------------------------------- new scenes
    def _expand(self, parse: _Parse, groups: list[_Group], room: int) -> list[dict[str, Any]]:
        """Groups to object dicts, capped at `room` objects in total with a warning."""
        objects: list[dict[str, Any]] = []
        wanted = sum(g.count for g in groups)
        if wanted > room:
            parse.warn(f"{wanted} objects were asked for; objects is limited to {MAX_OBJECTS}, "
                       f"so {room} were made")
        for g in groups:
            for k in range(g.count):
                if len(objects) >= room:
                    return objects
                prim = g.primitive or GENERIC_MIX[k % len(GENERIC_MIX)]
                obj = _new_object(prim, g.mods, g.text)
                if g.center:
                    obj["_center"] = True
                objects.append(obj)
        return objects

    def _build_new(self, parse: _Parse, groups: list[_Group], seed: int) -> None:
        groups = [g for g in groups if g.count > 0]
        if not groups:
            leftovers = parse.leftovers()
            hint = f" (I did not understand: {_hint(leftovers)})" if leftovers else ""
            raise SpecError(f'I could not find anything to render in "{_shorten(parse.text)}"{hint}; '
                            f"try {EXAMPLE}. Shapes I know: cube, sphere, ico sphere, cylinder, cone, torus, "
                            f'plane, monkey, and text like \'the word "hi"\'.', ["objects"])
        # "a sphere on a cube": the cube goes under the sphere.
        if any(g.below_previous for g in groups) or parse.stack_on_top:
            ordered: list[_Group] = []
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
        parse.data["objects"] = objects = self._expand(parse, groups, MAX_OBJECTS)
        self._name_objects(objects)
        if parse.arrangement is Arrangement.STACK and len(objects) > 12:
            parse.warn("a stack of more than 12 objects would leave the frame: arranged in a grid instead")
            parse.arrangement = Arrangement.GRID
        _layout(parse.data, parse.arrangement, seed, parse.camera, reframe=True)
        self._fast_animation_defaults(parse)

    @staticmethod
    def _fast_animation_defaults(parse: _Parse) -> None:
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

    @staticmethod
    def _name_objects(objects: list[dict[str, Any]]) -> None:
        totals: dict[str, int] = {}
        for o in objects:
            totals[_object_name(o)] = totals.get(_object_name(o), 0) + 1
        seen: dict[str, int] = {}
        for o in objects:
            base = _object_name(o)
            seen[base] = seen.get(base, 0) + 1
            o["name"] = (f"{base} {seen[base]}" if totals[base] > 1 else base)[:64]

    # ---------------------------------------------------------------- edits
    def _apply_edit(self, parse: _Parse, groups: list[_Group], previous: SceneSpec, seed: int) -> None:
        data = parse.data
        objects: list[dict[str, Any]] = data["objects"]
        before = [dict(o) for o in objects]
        verb = _edit_verb(parse.text)
        relayout = parse.arrangement is not None
        rescale = False
        touched = False
        added: list[_Group] = []
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
                self._set_count(parse, objects, g, matches)
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
                        self._modify(o, nxt.mods)
                    skip_next = relayout = touched = True
                    continue
                for o in matches:
                    self._modify(o, g.mods)
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
                    new = self._expand(parse, [g], room)
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
            _set_total(parse, objects, parse.set_total)
            relayout = touched = True
        leftover = parse.leftover_mods
        if leftover.any():
            for o in objects:
                self._modify(o, leftover)
            touched = True
            rescale = rescale or leftover.size is not None or leftover.relative_size is not None \
                or leftover.stretch is not None
        if verb == "remove" and not removed_any and not groups and parse.leftovers():
            pass
        if not objects:
            raise SpecError("That would leave nothing to render: the edit removed every object.", ["objects"])
        if relayout or rescale:
            self._name_objects(objects)
            arrangement = parse.arrangement or _infer_arrangement(before) if len(before) > 1 else parse.arrangement
            if arrangement is Arrangement.SINGLE and len(objects) > 1:
                arrangement = None
            _layout(data, arrangement, seed, parse.camera, reframe=True)
        elif parse.camera or parse.data["output"] != previous.output.model_dump(mode="json"):
            # Camera words, or a new aspect ratio: frame the same objects again.
            _layout(data, _infer_arrangement(objects), seed, parse.camera, reframe=True) \
                if _infer_arrangement(objects) is not Arrangement.SCATTER else None
        if not (touched or relayout or rescale or parse.changed or added):
            words = parse.leftovers()
            raise SpecError(f'I could not tell what to change in "{_shorten(parse.text)}"'
                            + (f" (not understood: {_hint(words)})" if words else "")
                            + '; try "make it blue", "add two more spheres", "remove the cube", "bigger", '
                              '"4k", "make it spin" or "sunset lighting".', ["request"])

    def _set_count(self, parse: _Parse, objects: list[dict[str, Any]], g: _Group,
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
            objects.extend(self._expand(parse, [replace(g, count=extra)], room))
        if g.mods.any():
            for o in kept + copies:
                self._modify(o, g.mods)

    @staticmethod
    def _modify(obj: dict[str, Any], mods: _Mods) -> None:
        obj["material"] = _material(mods, obj["material"])
        if mods.checker is False and obj["material"].get("checker") and mods.color is not None:
            obj["material"]["checker"]["color2"] = obj["material"]["checker"]["color2"]
        if mods.size is not None or mods.relative_size is not None or mods.stretch is not None:
            scale = _scale(mods, (obj["scale"]["x"], obj["scale"]["y"], obj["scale"]["z"]))
            obj["scale"] = {"x": scale[0], "y": scale[1], "z": scale[2]}


def _set_total(parse: _Parse, objects: list[dict[str, Any]], wanted: int) -> None:
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


def _edit_verb(text: str) -> str:
    low = f" {text.lower()} "
    if re.search(r"\b(remove|delete|get rid of|take away|take out|drop|erase|without|no more|lose|ditch)\b", low):
        return "remove"
    if re.search(r"\b(add|also|plus|another|more|include|put in|throw in|with an? extra|extra)\b", low):
        return "add"
    return "modify"


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# ------------------------------------------------------------------------------ intent

_ANALYZE_RE = re.compile(r"\b(analy[sz]e|analysis|sentiment|how does (this|that|it) sound|what tone|tone of|"
                         r"the tone|mood of|emotion|feel(ing)? about|is (this|that|it) (positive|negative)|"
                         r"positive or negative|classify)\b")
_HELP_RE = re.compile(r"^\W*(help|usage|commands|examples?|\?+)\W*$|\b(what can you do|how do i|how to use|"
                      r"what do you do|how does this work|what are the commands|show me (the )?commands|"
                      r"help me|can you help)\b")
_STATUS_RE = re.compile(r"\b(status|queue|queued|what are you doing|are you (busy|up|alive|there|running|online)|"
                        r"uptime|ping|my jobs|list jobs|jobs|progress|how long|still working|is it done|eta)\b")
_EDIT_START_RE = re.compile(r"^\W*(?:(?:now|then|please|ok|okay|and|also|can you|could you|pls)\W+)*"
                            r"(make|turn|change|paint|color|colour|add|remove|delete|use|switch|set|increase|"
                            r"decrease|bigger|smaller|larger|higher|lower|more|less|stop|again|redo|rerender|"
                            r"re-render|same|instead|swap|replace|move|rotate it|spin it|zoom|without)\b")
_RENDER_RE = re.compile(r"\b(render|draw|show me|create|generate|paint|model|build|make|give me|i want|"
                        r"picture of|image of|scene)\b")
_CHITCHAT_RE = re.compile(r"^\W*(hi|hello|hey|thanks|thank you|thx|cool|nice|great|good (morning|night|evening)|"
                          r"bye|lol|ok|okay|yo|sup)\W*$")


def _mentions_shape(text: str) -> bool:
    words = re.findall(r"[a-z]+", text)
    if any(w in ("text", "word") for w in words) and ('"' in text or "\u201c" in text):
        return True
    for n in (3, 2, 1):
        for k in range(len(words) - n + 1):
            if tuple(words[k:k + n]) in SHAPE_WORDS:
                return True
    return False


def offline_intent(text: str) -> str:
    """Classify a message by keywords: render, edit, analyze, help, status or chitchat."""
    low = " ".join((text or "").lower().split())[:MAX_REQUEST_CHARS]
    if not low or _CHITCHAT_RE.match(low):
        return "chitchat"
    if _ANALYZE_RE.search(low):
        return "analyze"
    shape = _mentions_shape(low)
    if _HELP_RE.search(low) and not (shape and _RENDER_RE.search(low)):
        return "help"
    edit_start = _EDIT_START_RE.match(low)
    if edit_start:
        rest = low[edit_start.end():]
        # "make a red cube" asks for a new scene; "make it blue" / "make the cube red" edit one.
        if not (edit_start.group(1) in ("make", "paint", "model") and re.match(r"\W*(an?|\d+|one|two|three|four|"
                                                                               r"five|six|some|several)\b", rest)):
            return "edit"
    if shape or _RENDER_RE.search(low) and re.search(r"\b(floor|sky|background|scene|lighting)\b", low):
        return "render"
    if _STATUS_RE.search(low):
        return "status"
    if re.match(r"^\W*(it|them|everything)\b", low) or re.search(r"\b(bigger|smaller|higher quality|4k|"
                                                                r"in eevee|with cycles)\b", low):
        return "edit"
    if _RENDER_RE.search(low):
        return "render"
    return "chitchat"
