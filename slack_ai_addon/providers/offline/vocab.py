"""Word lists for the offline interpreter: shapes, counts, materials, sizes and filler words.

Kept apart from the grammar in `parse.py` so the vocabulary can grow without touching
the parsing logic. All keys are lower case; multi-word keys are tuples of words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ...core.scene_spec import Primitive

log = logging.getLogger(__name__)

# Shape nouns: word(s) -> (primitive, plural). Multi-word names are matched first.
_SHAPES: dict[Primitive, tuple[list[str], list[str]]] = {
    Primitive.CUBE: (["cube", "box", "block", "crate", "dice", "die", "brick"],
                     ["cubes", "boxes", "blocks", "crates", "bricks"]),
    Primitive.SPHERE: (["sphere", "ball", "orb", "globe", "planet", "bubble", "marble ball"],
                       ["spheres", "balls", "orbs", "globes", "planets", "bubbles"]),
    Primitive.ICO_SPHERE: (["icosphere", "ico sphere", "icosahedron", "geodesic sphere", "low poly sphere",
                            "lowpoly sphere", "geosphere"],
                           ["icospheres", "ico spheres", "icosahedrons", "icosahedra", "geodesic spheres",
                            "low poly spheres", "geospheres"]),
    Primitive.CYLINDER: (["cylinder", "tube", "can", "pillar", "column", "pipe", "drum", "soda can", "tin can"],
                         ["cylinders", "tubes", "cans", "pillars", "columns", "pipes", "drums"]),
    Primitive.CONE: (["cone", "pyramid", "traffic cone", "spike"],
                     ["cones", "pyramids", "traffic cones", "spikes"]),
    Primitive.TORUS: (["torus", "donut", "doughnut", "ring", "bagel", "ring donut"],
                      ["tori", "toruses", "donuts", "doughnuts", "rings", "bagels"]),
    Primitive.PLANE: (["plane", "flat square", "tile", "panel"], ["planes", "tiles", "panels"]),
    Primitive.MONKEY: (["monkey", "suzanne", "monkey head", "blender monkey", "chimp", "ape"],
                       ["monkeys", "monkey heads", "suzannes", "chimps", "apes"]),
}

SHAPE_WORDS: dict[tuple[str, ...], tuple[Primitive, bool]] = {}
for _prim, (_singular, _plural) in _SHAPES.items():
    for _w in _singular:
        SHAPE_WORDS[tuple(_w.split())] = (_prim, False)
    for _w in _plural:
        SHAPE_WORDS[tuple(_w.split())] = (_prim, True)

# Words that stand for "some object" without naming one: a cube (singular) or a mix (plural).
GENERIC_SINGULAR = frozenset({"thing", "object", "shape", "item", "something", "primitive", "solid"})
GENERIC_PLURAL = frozenset({"things", "objects", "shapes", "items", "primitives", "solids"})
GENERIC_MIX = (Primitive.CUBE, Primitive.SPHERE, Primitive.CYLINDER, Primitive.CONE, Primitive.TORUS,
               Primitive.ICO_SPHERE, Primitive.MONKEY)

# Nouns that introduce text: `the word "hi"`, `text HELLO`, `a sign saying "open"`.
TEXT_NOUNS = frozenset({"text", "word", "words", "letters", "title", "sign", "label", "caption", "message",
                        "saying", "says", "reading", "reads", "spelling", "lettering", "writing"})

NUMBER_WORDS: dict[str, int] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
    "thousand": 1000, "million": 1_000_000, "single": 1, "lone": 1, "solitary": 1, "both": 2,
    "dozen": 12, "dozens": 24, "several": 4, "few": 3, "many": 6, "multiple": 4, "numerous": 8,
    "lots": 8, "bunch": 5, "couple": 2, "pair": 2, "trio": 3, "triple": 3, "quartet": 4, "hundreds": 200,
}
# Counts that need "of" after them ("a pair of", "a couple of", "lots of", "a bunch of").
COUNT_NEEDS_OF = frozenset({"pair", "couple", "lots", "bunch", "dozens", "hundreds", "trio", "quartet"})
TENS = frozenset({"twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"})


@dataclass(frozen=True)
class MaterialWord:
    """What a material word sets; None leaves the field alone."""

    color: str | None = None
    metallic: float | None = None
    roughness: float | None = None
    emission: float | None = None
    transmission: float | None = None
    warning: str = ""


MATERIAL_WORDS: dict[str, MaterialWord] = {
    "metallic": MaterialWord(metallic=1.0, roughness=0.3), "metal": MaterialWord(metallic=1.0, roughness=0.3),
    "chrome": MaterialWord("#e8e8e8", 1.0, 0.05), "chromed": MaterialWord("#e8e8e8", 1.0, 0.05),
    "mirror": MaterialWord("#f0f0f0", 1.0, 0.02), "mirrored": MaterialWord("#f0f0f0", 1.0, 0.02),
    "gold": MaterialWord("#ffd700", 1.0, 0.25), "golden": MaterialWord("#ffd700", 1.0, 0.25),
    "silver": MaterialWord("#c0c0c0", 1.0, 0.2), "copper": MaterialWord("#b87333", 1.0, 0.3),
    "bronze": MaterialWord("#cd7f32", 1.0, 0.35), "brass": MaterialWord("#b5a642", 1.0, 0.3),
    "steel": MaterialWord("#a8a9ad", 1.0, 0.35), "iron": MaterialWord("#6e6e6e", 1.0, 0.5),
    "aluminium": MaterialWord("#d0d5db", 1.0, 0.3), "aluminum": MaterialWord("#d0d5db", 1.0, 0.3),
    "glossy": MaterialWord(roughness=0.08), "shiny": MaterialWord(roughness=0.1),
    "polished": MaterialWord(roughness=0.05), "lacquered": MaterialWord(roughness=0.1),
    "reflective": MaterialWord(roughness=0.05), "smooth": MaterialWord(roughness=0.2),
    "matte": MaterialWord(roughness=0.9, metallic=0.0), "matt": MaterialWord(roughness=0.9, metallic=0.0),
    "rough": MaterialWord(roughness=0.95), "satin": MaterialWord(roughness=0.45),
    "plastic": MaterialWord(roughness=0.35, metallic=0.0), "rubber": MaterialWord(roughness=0.95, metallic=0.0),
    "ceramic": MaterialWord(roughness=0.15, metallic=0.0), "porcelain": MaterialWord("#f4f1ea", 0.0, 0.15),
    "glass": MaterialWord(metallic=0.0, roughness=0.03, transmission=1.0),
    "transparent": MaterialWord(metallic=0.0, roughness=0.03, transmission=1.0),
    "clear": MaterialWord(metallic=0.0, roughness=0.03, transmission=1.0),
    "crystal": MaterialWord(metallic=0.0, roughness=0.02, transmission=1.0),
    "translucent": MaterialWord(metallic=0.0, roughness=0.4, transmission=0.8),
    "frosted": MaterialWord(metallic=0.0, roughness=0.5, transmission=1.0),
    "glowing": MaterialWord(emission=5.0), "glows": MaterialWord(emission=5.0),
    "emissive": MaterialWord(emission=5.0), "luminous": MaterialWord(emission=5.0),
    "neon": MaterialWord(emission=10.0), "fluorescent": MaterialWord(emission=8.0),
    "incandescent": MaterialWord(emission=10.0), "radiant": MaterialWord(emission=5.0),
    "wooden": MaterialWord("#8b5a2b", 0.0, 0.7, warning="wood is shown as a plain brown colour"),
    "wood": MaterialWord("#8b5a2b", 0.0, 0.7, warning="wood is shown as a plain brown colour"),
    "marble": MaterialWord("#f0efe9", 0.0, 0.15, warning="marble is shown as a plain glossy white"),
    "stone": MaterialWord("#8a8a85", 0.0, 0.9), "concrete": MaterialWord("#9b9b96", 0.0, 0.95),
    "clay": MaterialWord("#c8734a", 0.0, 0.9), "ice": MaterialWord("#dff4ff", 0.0, 0.1, transmission=0.9),
    "jelly": MaterialWord(None, 0.0, 0.2, transmission=0.7),
}

# Size words -> uniform scale factor; comparatives scale relative to the previous size in edits.
SIZE_WORDS: dict[str, float] = {
    "tiny": 0.4, "miniature": 0.4, "mini": 0.5, "small": 0.6, "little": 0.6, "smallish": 0.75,
    "medium": 1.0, "normal": 1.0, "regular": 1.0, "big": 1.6, "large": 1.6, "huge": 2.5, "giant": 2.5,
    "enormous": 3.0, "massive": 3.0, "gigantic": 3.0, "colossal": 3.5,
}
COMPARATIVE_SIZES: dict[str, float] = {"bigger": 1.5, "larger": 1.5, "smaller": 1 / 1.5, "tinier": 0.5,
                                       "huger": 2.0}
# Stretch words -> per-axis factors (x, y, z).
STRETCH_WORDS: dict[str, tuple[float, float, float]] = {
    "tall": (1.0, 1.0, 2.0), "taller": (1.0, 1.0, 1.5), "short": (1.0, 1.0, 0.5), "flat": (1.0, 1.0, 0.3),
    "wide": (1.8, 1.8, 1.0), "wider": (1.4, 1.4, 1.0), "thin": (0.5, 0.5, 1.0), "skinny": (0.5, 0.5, 1.0),
    "long": (2.0, 1.0, 1.0), "fat": (1.5, 1.5, 1.0), "squat": (1.3, 1.3, 0.6),
}

SIDE_WORDS: dict[str, int] = {"left": -1, "middle": 0, "center": 0, "centre": 0, "right": 1}

# Words that carry no meaning for a scene; never reported as not understood.
STOP_WORDS = frozenset("""
a an the of with and or on in at to for from by is are be been being it its it's that this these those
some any please pls me my i i'm im you your can could would will shall should might may make render draw
show create give generate build model put place there here scene image picture photo photograph shot view
all each every very really just like into onto over under near nearby next beside besides as so then also
plus them they we us let let's lets want wanna need see look looking nice cool pretty beautiful lovely
awesome gorgeous amazing simple basic made using use get set have has having something somewhat kind sort
quite rather bit slightly little one ones do does done doing how what which who where when why while
thanks thank hey hi hello ok okay yes no not now same other another more less most again together
standing sitting lying resting placed sitting positioned arranged floating hovering up down front back
behind top bottom side sides off out within inside outside around about above below up only
colour color coloured colored painted shade tone tint finish material texture surface style styled
version look looks looking rendered rendering shown show showing featuring feature features containing
contains include includes including having has plain simple realistic photorealistic detailed
add remove delete change turn replace swap instead rid drop erase include extra switch adjust
keep leave everything else rest into become becomes
3d cgi blender quick nicely tidy neatly evenly equally just even exactly approximately roughly about
""".split())

# Words a user may use to mean "all the objects" in an edit.
ALL_REFERENCES = frozenset({"it", "them", "everything", "all", "objects", "things", "shapes", "both",
                            "each", "every", "whole", "thing", "object", "shape", "scene", "they", "ones"})
