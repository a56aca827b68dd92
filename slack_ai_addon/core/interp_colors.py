"""Colour names for the offline interpreter: every CSS colour, common extras, and shade words.

Names are stored without spaces ("lightblue"), so "light blue", "light-blue" and
"lightblue" all find the CSS value; shade words ("dark", "pale", ...) that do not form a
CSS name change the lightness/saturation of the base colour instead.
"""

from __future__ import annotations

import colorsys
import logging

log = logging.getLogger(__name__)

CSS_COLORS: dict[str, str] = {
    "aliceblue": "#f0f8ff", "antiquewhite": "#faebd7", "aqua": "#00ffff", "aquamarine": "#7fffd4",
    "azure": "#f0ffff", "beige": "#f5f5dc", "bisque": "#ffe4c4", "black": "#000000",
    "blanchedalmond": "#ffebcd", "blue": "#0000ff", "blueviolet": "#8a2be2", "brown": "#a52a2a",
    "burlywood": "#deb887", "cadetblue": "#5f9ea0", "chartreuse": "#7fff00", "chocolate": "#d2691e",
    "coral": "#ff7f50", "cornflowerblue": "#6495ed", "cornsilk": "#fff8dc", "crimson": "#dc143c",
    "cyan": "#00ffff", "darkblue": "#00008b", "darkcyan": "#008b8b", "darkgoldenrod": "#b8860b",
    "darkgray": "#a9a9a9", "darkgreen": "#006400", "darkgrey": "#a9a9a9", "darkkhaki": "#bdb76b",
    "darkmagenta": "#8b008b", "darkolivegreen": "#556b2f", "darkorange": "#ff8c00", "darkorchid": "#9932cc",
    "darkred": "#8b0000", "darksalmon": "#e9967a", "darkseagreen": "#8fbc8f", "darkslateblue": "#483d8b",
    "darkslategray": "#2f4f4f", "darkslategrey": "#2f4f4f", "darkturquoise": "#00ced1",
    "darkviolet": "#9400d3", "deeppink": "#ff1493", "deepskyblue": "#00bfff", "dimgray": "#696969",
    "dimgrey": "#696969", "dodgerblue": "#1e90ff", "firebrick": "#b22222", "floralwhite": "#fffaf0",
    "forestgreen": "#228b22", "fuchsia": "#ff00ff", "gainsboro": "#dcdcdc", "ghostwhite": "#f8f8ff",
    "gold": "#ffd700", "goldenrod": "#daa520", "gray": "#808080", "green": "#008000",
    "greenyellow": "#adff2f", "grey": "#808080", "honeydew": "#f0fff0", "hotpink": "#ff69b4",
    "indianred": "#cd5c5c", "indigo": "#4b0082", "ivory": "#fffff0", "khaki": "#f0e68c",
    "lavender": "#e6e6fa", "lavenderblush": "#fff0f5", "lawngreen": "#7cfc00", "lemonchiffon": "#fffacd",
    "lightblue": "#add8e6", "lightcoral": "#f08080", "lightcyan": "#e0ffff",
    "lightgoldenrodyellow": "#fafad2", "lightgray": "#d3d3d3", "lightgreen": "#90ee90",
    "lightgrey": "#d3d3d3", "lightpink": "#ffb6c1", "lightsalmon": "#ffa07a", "lightseagreen": "#20b2aa",
    "lightskyblue": "#87cefa", "lightslategray": "#778899", "lightslategrey": "#778899",
    "lightsteelblue": "#b0c4de", "lightyellow": "#ffffe0", "lime": "#00ff00", "limegreen": "#32cd32",
    "linen": "#faf0e6", "magenta": "#ff00ff", "maroon": "#800000", "mediumaquamarine": "#66cdaa",
    "mediumblue": "#0000cd", "mediumorchid": "#ba55d3", "mediumpurple": "#9370db",
    "mediumseagreen": "#3cb371", "mediumslateblue": "#7b68ee", "mediumspringgreen": "#00fa9a",
    "mediumturquoise": "#48d1cc", "mediumvioletred": "#c71585", "midnightblue": "#191970",
    "mintcream": "#f5fffa", "mistyrose": "#ffe4e1", "moccasin": "#ffe4b5", "navajowhite": "#ffdead",
    "navy": "#000080", "oldlace": "#fdf5e6", "olive": "#808000", "olivedrab": "#6b8e23",
    "orange": "#ffa500", "orangered": "#ff4500", "orchid": "#da70d6", "palegoldenrod": "#eee8aa",
    "palegreen": "#98fb98", "paleturquoise": "#afeeee", "palevioletred": "#db7093",
    "papayawhip": "#ffefd5", "peachpuff": "#ffdab9", "peru": "#cd853f", "pink": "#ffc0cb",
    "plum": "#dda0dd", "powderblue": "#b0e0e6", "purple": "#800080", "rebeccapurple": "#663399",
    "red": "#ff0000", "rosybrown": "#bc8f8f", "royalblue": "#4169e1", "saddlebrown": "#8b4513",
    "salmon": "#fa8072", "sandybrown": "#f4a460", "seagreen": "#2e8b57", "seashell": "#fff5ee",
    "sienna": "#a0522d", "silver": "#c0c0c0", "skyblue": "#87ceeb", "slateblue": "#6a5acd",
    "slategray": "#708090", "slategrey": "#708090", "snow": "#fffafa", "springgreen": "#00ff7f",
    "steelblue": "#4682b4", "tan": "#d2b48c", "teal": "#008080", "thistle": "#d8bfd8",
    "tomato": "#ff6347", "turquoise": "#40e0d0", "violet": "#ee82ee", "wheat": "#f5deb3",
    "white": "#ffffff", "whitesmoke": "#f5f5f5", "yellow": "#ffff00", "yellowgreen": "#9acd32",
}

# Everyday names that are not CSS (or spelled differently); values from common usage.
EXTRA_COLORS: dict[str, str] = {
    "navyblue": "#000080", "babyblue": "#89cff0", "burgundy": "#800020", "mauve": "#e0b0ff",
    "amber": "#ffbf00", "cream": "#fffdd0", "charcoal": "#36454f", "mustard": "#e1ad01",
    "rose": "#ff007f", "ruby": "#e0115f", "emerald": "#50c878", "sapphire": "#0f52ba", "jade": "#00a86b",
    "scarlet": "#ff2400", "mint": "#98ff98", "peach": "#ffe5b4", "lilac": "#c8a2c8", "bronze": "#cd7f32",
    "copper": "#b87333", "brass": "#b5a642", "golden": "#ffd700", "aubergine": "#3d0734",
    "cobalt": "#0047ab", "cobaltblue": "#0047ab", "bloodred": "#8a0303", "cherry": "#d2042d",
    "cherryred": "#d2042d", "lemon": "#fff700", "lemonyellow": "#fff44f", "sand": "#c2b280",
    "offwhite": "#faf9f6", "ochre": "#cc7722", "rust": "#b7410e",
    "limegreen": "#32cd32", "olivegreen": "#708238", "neongreen": "#39ff14", "neonpink": "#ff10f0",
    "skyblue": "#87ceeb", "pinkish": "#ffc0cb", "reddish": "#cc3333", "bluish": "#3366cc",
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
