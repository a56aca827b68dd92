"""Colour names for the offline interpreter: every CSS colour (Pillow's W3C table), the
project's everyday extras, and shade words.

Names are stored without spaces ("lightblue"), so "light blue", "light-blue" and
"lightblue" all find the CSS value; shade words ("dark", "pale", ...) that do not form a
CSS name change the lightness/saturation of the base colour instead.
"""

from __future__ import annotations

import colorsys
import logging

from PIL import ImageColor

log = logging.getLogger(__name__)


def _css_colors() -> dict[str, str]:
    """The 148 CSS/W3C named colours from Pillow's table, as "#rrggbb".

    Read through `getrgb`, since Pillow caches parsed entries back into `colormap` as tuples.
    """
    out: dict[str, str] = {}
    for name in ImageColor.colormap:
        r, g, b = ImageColor.getrgb(name)[:3]
        out[name] = f"#{r:02x}{g:02x}{b:02x}"
    return out


CSS_COLORS: dict[str, str] = _css_colors()

# The project's own additions: everyday names that are not CSS (or spelled differently);
# values from common usage.
EXTRA_COLORS: dict[str, str] = {
    "navyblue": "#000080", "babyblue": "#89cff0", "burgundy": "#800020", "mauve": "#e0b0ff",
    "amber": "#ffbf00", "cream": "#fffdd0", "charcoal": "#36454f", "mustard": "#e1ad01",
    "rose": "#ff007f", "ruby": "#e0115f", "emerald": "#50c878", "sapphire": "#0f52ba", "jade": "#00a86b",
    "scarlet": "#ff2400", "mint": "#98ff98", "peach": "#ffe5b4", "lilac": "#c8a2c8", "bronze": "#cd7f32",
    "copper": "#b87333", "brass": "#b5a642", "golden": "#ffd700", "aubergine": "#3d0734",
    "cobalt": "#0047ab", "cobaltblue": "#0047ab", "bloodred": "#8a0303", "cherry": "#d2042d",
    "cherryred": "#d2042d", "lemon": "#fff700", "lemonyellow": "#fff44f", "sand": "#c2b280",
    "offwhite": "#faf9f6", "ochre": "#cc7722", "rust": "#b7410e",
    "olivegreen": "#708238", "neongreen": "#39ff14", "neonpink": "#ff10f0",
    "pinkish": "#ffc0cb", "reddish": "#cc3333", "bluish": "#3366cc",
    "greenish": "#33aa55", "yellowish": "#eedd55", "purplish": "#884499", "orangish": "#ff9933",
}

# Shade words: applied to the base colour when "<shade><name>" is not itself a CSS name.
SHADE_WORDS = frozenset({"dark", "light", "pale", "bright", "deep", "pastel", "vivid", "dull", "muted"})

ALL_COLORS: dict[str, str] = {**CSS_COLORS, **EXTRA_COLORS}
MAX_COLOR_WORDS = 4  # "light goldenrod yellow" is the longest CSS name in words (3) plus a shade


def _hex_to_rgb(color: str) -> tuple[float, float, float]:
    return (int(color[1:3], 16) / 255.0, int(color[3:5], 16) / 255.0, int(color[5:7], 16) / 255.0)


def rgb_to_hex(r: float, g: float, b: float) -> str:
    """Floats 0..1 (clamped) to "#rrggbb"."""
    def c(v: float) -> int:
        return max(0, min(255, round(v * 255)))

    return f"#{c(r):02x}{c(g):02x}{c(b):02x}"


def apply_shade(color: str, shade: str) -> str:
    """A shade word applied to a "#rrggbb" colour in HLS space (unknown shades: unchanged)."""
    h, lum, s = colorsys.rgb_to_hls(*_hex_to_rgb(color))
    if shade == "dark":
        lum *= 0.55
    elif shade == "deep":
        lum *= 0.75
        s = min(1.0, s * 1.15)
    elif shade == "light":
        lum += (1.0 - lum) * 0.45
    elif shade in ("pale", "pastel"):
        lum += (1.0 - lum) * 0.6
        s *= 0.7
    elif shade in ("bright", "vivid"):
        s = min(1.0, s * 1.3 + 0.05) if s > 0 else s
        lum = lum + (1.0 - lum) * 0.15 if lum < 0.5 else lum
    elif shade in ("dull", "muted"):
        s *= 0.45
    return rgb_to_hex(*colorsys.hls_to_rgb(h, lum, s))


def lookup_color(words: list[str]) -> str | None:
    """The colour named by `words` (lower case, e.g. ["dark", "slate", "gray"]), or None.

    A CSS/extra name wins ("dark red" is CSS darkred); otherwise a leading shade word
    modifies the rest ("dark pink" darkens pink).
    """
    if not words:
        return None
    joined = "".join(words)
    if joined in ALL_COLORS:
        return ALL_COLORS[joined]
    if words[0] in SHADE_WORDS and len(words) > 1:
        base = lookup_color(words[1:])
        if base is not None:
            return apply_shade(base, words[0])
    return None


def color_distance(a: str, b: str) -> float:
    """Euclidean distance of two "#rrggbb" colours in 0..255 units (tests, selectors)."""
    ra, ga, ba = _hex_to_rgb(a)
    rb, gb, bb = _hex_to_rgb(b)
    return float(((ra - rb) ** 2 + (ga - gb) ** 2 + (ba - bb) ** 2) ** 0.5 * 255.0)
