"""SceneSpec: bounds, clamping, rejection messages, and OpenAI strict structured-output rules."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from pydantic import ValidationError

from slack_ai_addon.core.scene_spec import (
    MAX_OBJECTS,
    MAX_RESOLUTION,
    MAX_SAMPLES,
    SceneSpec,
    SpecError,
    hex_to_linear_rgba,
    hex_to_rgb,
    make_strict_schema,
    parse_scene_spec,
)


def base() -> dict[str, Any]:
    return SceneSpec(objects=[{"primitive": "cube"}]).to_json_dict()  # type: ignore[list-item]


# ------------------------------------------------------------------ clamping and rejection

@pytest.mark.parametrize(("path", "value", "clamped"), [
    (("output", "width"), 999_999, MAX_RESOLUTION),
    (("output", "height"), 1, 16),
    (("output", "samples"), 0, 1),
    (("output", "samples"), 10**7, MAX_SAMPLES),
    (("animation", "frames"), 5000, 600),
    (("animation", "fps"), 1000, 60),
    (("camera", "orbit", "elevation_deg"), 120.0, 89.0),
    (("floor", "size"), 0.0, 1.0),
    (("objects", 0, "material", "metallic"), 3.0, 1.0),
    (("objects", 0, "location", "x"), -1e9, -1000.0),
    (("objects", 0, "scale", "z"), 0.0, 0.001),
    (("world", "strength"), -5.0, 0.0),
])
def test_clamp_with_warning_naming_the_field(path: tuple[Any, ...], value: Any, clamped: Any) -> None:
    data = base()
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    spec, warnings = parse_scene_spec(data)
    got: Any = spec.to_json_dict()
    for part in path:
        got = got[part]
    assert got == clamped
    dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    assert any(w.startswith(f"{dotted}=") and "clamped" in w for w in warnings), warnings


def test_in_range_has_no_warnings() -> None:
    spec, warnings = parse_scene_spec(base())
    assert warnings == [] and spec.objects[0].primitive.value == "cube"


def test_validate_rejects_out_of_range_naming_the_field() -> None:
    data = base()
    data["output"]["width"] = 999_999
    with pytest.raises(ValidationError) as err:
        SceneSpec.model_validate(data)
    assert "width" in str(err.value)
    with pytest.raises(SpecError) as spec_err:
        parse_scene_spec(data, clamp=False)
    assert "output.width" in str(spec_err.value) and "output.width" in spec_err.value.fields


@pytest.mark.parametrize(("mutate", "field_name"), [
    (lambda d: d["objects"][0].__setitem__("primitive", "dragon"), "objects[0].primitive"),
    (lambda d: d["objects"][0]["material"].__setitem__("base_color", "red"), "objects[0].material.base_color"),
    (lambda d: d["floor"].__setitem__("kind", "lava"), "floor.kind"),
    (lambda d: d["output"].__setitem__("engine", "octane"), "output.engine"),
    (lambda d: d.__setitem__("python", "import os"), "python"),
    (lambda d: d["objects"][0].__setitem__("text", "x" * 500), "objects[0].text"),
    (lambda d: d.__setitem__("objects", [{"primitive": "cube"}] * (MAX_OBJECTS + 1)), "objects"),
    (lambda d: d["output"].__setitem__("width", "wide"), "output.width"),
])
def test_rejection_names_the_field(mutate: Any, field_name: str) -> None:
    data = base()
    mutate(data)
    with pytest.raises(SpecError) as err:
        parse_scene_spec(data)
    assert field_name in str(err.value)
    assert field_name in err.value.fields


def test_not_an_object() -> None:
    with pytest.raises(SpecError):
        parse_scene_spec(["cube"])


def test_colours() -> None:
    assert hex_to_rgb("#ff8000") == pytest.approx((1.0, 128 / 255, 0.0))
    r, g, b, a = hex_to_linear_rgba("#808080")
    assert r == pytest.approx(0.2159, abs=1e-3) and a == 1.0
    with pytest.raises(SpecError):
        hex_to_rgb("red")


# ------------------------------------------------------------------ strict-mode checker

SUPPORTED_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "enum", "anyOf", "$ref", "$defs",
    "description", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minItems", "maxItems", "const", "format", "title",
})
FORBIDDEN_KEYWORDS = frozenset({"default", "allOf", "not", "if", "then", "else", "dependentRequired",
                                "dependentSchemas", "oneOf", "patternProperties", "unevaluatedProperties"})
MAX_DEPTH = 10
MAX_PROPERTIES = 5000
MAX_ENUM_VALUES = 1000
MAX_NAME_CHARS = 120_000


def strict_mode_problems(schema: dict[str, Any]) -> list[str]:
    """Every way `schema` breaks OpenAI's structured-output strict rules (empty: it is fine).

    Rules (OpenAI's Structured Outputs guide): the root is an object, not anyOf; every object
    has additionalProperties false and lists ALL its properties in required; no `default` or
    other unsupported keywords; at most 10 levels of nesting, 5000 properties in total, 1000
    enum values, and 120k characters of property names and enum values.
    """
    problems: list[str] = []
    defs = schema.get("$defs", {})
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("root must be an object and not anyOf")
    totals = {"properties": 0, "enum": 0, "chars": 0}

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return defs[ref.split("/")[-1]]  # type: ignore[no-any-return]
        return node

    def walk(node: Any, where: str, depth: int, seen: tuple[str, ...]) -> None:
        if not isinstance(node, dict):
            problems.append(f"{where}: a schema must be an object")
            return
        for key in node:
            if key in FORBIDDEN_KEYWORDS:
                problems.append(f"{where}: unsupported keyword {key!r}")
            elif key not in SUPPORTED_KEYWORDS:
                problems.append(f"{where}: unknown keyword {key!r}")
        if "$ref" in node:
            name = node["$ref"].split("/")[-1]
            if name in seen:  # recursion is allowed; count it once
                return
            walk(resolve(node), f"{where}->{name}", depth, (*seen, name))
            return
        if "enum" in node:
            totals["enum"] += len(node["enum"])
            totals["chars"] += sum(len(str(v)) for v in node["enum"])
        for sub in node.get("anyOf", []):
            walk(sub, f"{where}|anyOf", depth, seen)
        if "items" in node:
            walk(node["items"], f"{where}[]", depth, seen)
        if node.get("type") == "object" or "properties" in node:
            if depth + 1 > MAX_DEPTH:
                problems.append(f"{where}: nesting deeper than {MAX_DEPTH}")
            props = node.get("properties", {})
            if node.get("additionalProperties") is not False:
                problems.append(f"{where}: additionalProperties must be false")
            if sorted(node.get("required", [])) != sorted(props):
                problems.append(f"{where}: required must list every property")
            totals["properties"] += len(props)
            totals["chars"] += sum(len(k) for k in props)
            for key, sub in props.items():
                walk(sub, f"{where}.{key}", depth + 1, seen)

    walk(schema, "root", 0, ())
    if totals["properties"] > MAX_PROPERTIES:
        problems.append(f"{totals['properties']} properties > {MAX_PROPERTIES}")
    if totals["enum"] > MAX_ENUM_VALUES:
        problems.append(f"{totals['enum']} enum values > {MAX_ENUM_VALUES}")
    if totals["chars"] > MAX_NAME_CHARS:
        problems.append("too many characters in names and enum values")
    return problems


def test_scene_spec_schema_is_strict() -> None:
    assert strict_mode_problems(SceneSpec.model_json_schema()) == []


def test_schema_has_no_defaults_or_titles_anywhere() -> None:
    text = str(SceneSpec.model_json_schema())
    assert "'default'" not in text and "'title'" not in text


def test_nullable_optionals_are_required_and_nullable() -> None:
    schema = SceneSpec.model_json_schema()
    camera = schema["$defs"]["CameraSpec"]
    assert "location" in camera["required"]
    assert {"type": "null"} in camera["properties"]["location"]["anyOf"]


@pytest.mark.parametrize(("broken", "problem"), [
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, "additionalProperties"),
    ({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a"],
      "additionalProperties": False}, "required"),
    ({"type": "object", "properties": {"a": {"type": "string", "default": "x"}}, "required": ["a"],
      "additionalProperties": False}, "default"),
    ({"anyOf": [{"type": "object"}]}, "root"),
    ({"type": "object", "properties": {"a": {"allOf": []}}, "required": ["a"], "additionalProperties": False},
     "allOf"),
    ({"type": "object", "properties": {"a": {"enum": list(range(1001))}}, "required": ["a"],
      "additionalProperties": False}, "enum"),
])
def test_checker_catches_violations(broken: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in strict_mode_problems(broken))


def test_checker_catches_deep_nesting() -> None:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(12):
        node = {"type": "object", "properties": {"n": node}, "required": ["n"], "additionalProperties": False}
    assert any("nesting" in p for p in strict_mode_problems(node))


def test_make_strict_schema_fixes_a_plain_pydantic_schema() -> None:
    plain = {"type": "object", "title": "T", "properties": {"a": {"type": "integer", "default": 3, "title": "A"}}}
    fixed = make_strict_schema(plain)
    assert strict_mode_problems(fixed) == []
    assert "default" in plain["properties"]["a"]  # the input is not modified


# ------------------------------------------------------------------ round trip from the schema

def instance_from_schema(schema: dict[str, Any], rng: random.Random) -> Any:
    """Random JSON that satisfies the strict schema (what a model in strict mode may answer)."""
    defs = schema.get("$defs", {})

    def gen(node: dict[str, Any], depth: int) -> Any:
        if "$ref" in node:
            return gen(defs[node["$ref"].split("/")[-1]], depth)
        if "anyOf" in node:
            options = node["anyOf"]
            return gen(options[rng.randrange(len(options))], depth)
        if "enum" in node:
            return rng.choice(node["enum"])
        kind = node.get("type")
        if kind == "object":
            return {k: gen(v, depth + 1) for k, v in node["properties"].items()}
        if kind == "array":
            hi = min(node.get("maxItems", 3), 3 if depth < 3 else 1)
            return [gen(node["items"], depth + 1) for _ in range(rng.randint(node.get("minItems", 0), hi))]
        if kind == "integer":
            return rng.randint(int(node.get("minimum", -100)), int(node.get("maximum", 100)))
        if kind == "number":
            return rng.uniform(float(node.get("minimum", -100.0)), float(node.get("maximum", 100.0)))
        if kind == "string":
            if node.get("pattern") == "^#[0-9a-fA-F]{6}$":
                return "#" + "".join(rng.choice("0123456789abcdefABCDEF") for _ in range(6))
            return "".join(rng.choice("abc xyz") for _ in range(rng.randint(0, 10)))
        if kind == "null":
            return None
        if kind == "boolean":
            return rng.random() < 0.5
        raise AssertionError(f"unhandled schema node {node}")

    return gen(schema, 0)


@pytest.mark.parametrize("seed", range(25))
def test_schema_valid_json_is_accepted(seed: int) -> None:
    schema = SceneSpec.model_json_schema()
    data = instance_from_schema(schema, random.Random(seed))
    spec = SceneSpec.model_validate(data)
    assert SceneSpec.model_validate(copy.deepcopy(spec.to_json_dict())) == spec
    parsed, warnings = parse_scene_spec(data)
    assert parsed == spec and warnings == []


def test_default_spec_round_trips() -> None:
    spec = SceneSpec()
    assert SceneSpec.model_validate(spec.to_json_dict()) == spec
    assert not spec.is_animation


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_from_an_llm_fall_back_to_the_default_not_a_bound(value: float) -> None:
    data = SceneSpec().to_json_dict()
    data["output"]["time_limit_s"] = value
    data["output"]["samples"] = value
    spec, warnings = parse_scene_spec(data)
    assert spec.output.time_limit_s == 300.0 and spec.output.samples == 32
    assert any("time_limit_s" in w and "not a number" in w for w in warnings)
