"""The fake OpenAI server refuses what OpenAI's strict Structured Outputs refuse, through the
real `openai` SDK on loopback.

Expected answers come from OpenAI's documentation and from errors the real API returned
(docs/TESTING.md lists them): a 400 `invalid_request_error` on `response_format`, whose
message starts "Invalid schema for response_format '<name>': " and names the problem. The
fake's own strings are never used as the expectation."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from slack_ai_addon.core.scene_spec import SceneSpec
from tests.fakes.fake_openai import FakeOpenAI

pytestmark = pytest.mark.timeout(60)

ACCEPTED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral", "mixed"]},
        "score": {"type": "number", "minimum": -1, "maximum": 1},
        "note": {"type": ["string", "null"], "description": "optional: nullable, still required"},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "maxItems": 5},
        "color": {"anyOf": [{"type": "string", "pattern": "^#[0-9a-f]{6}$"}, {"type": "null"}]},
    },
    "required": ["sentiment", "score", "note", "tags", "color"],
    "additionalProperties": False,
    "$defs": {"tag": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"],
                      "additionalProperties": False}},
}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("openai", api_key="sk-test") as server:
        yield server


@pytest.fixture
def client(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=10)


def _ask(client: openai.OpenAI, schema: Any, name: str = "answer", strict: bool = True) -> Any:
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}})


def _refused(client: openai.OpenAI, schema: Any, name: str = "answer") -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as err:
        _ask(client, schema, name)
    exc = err.value
    assert exc.status_code == 400
    body = exc.response.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == "response_format"
    assert body["error"]["message"].startswith(f"Invalid schema for response_format '{name}': ")
    return exc


def _nested(levels: int) -> dict[str, Any]:
    """An object schema with `levels` objects nested one inside the other (the root included)."""
    node: dict[str, Any] = {"type": "object", "properties": {"leaf": {"type": "string"}}, "required": ["leaf"],
                            "additionalProperties": False}
    for _ in range(levels - 1):
        node = {"type": "object", "properties": {"child": node}, "required": ["child"], "additionalProperties": False}
    return node


def test_a_strict_schema_within_the_rules_is_answered(client: openai.OpenAI) -> None:
    answer = _ask(client, ACCEPTED)
    data = json.loads(answer.choices[0].message.content or "")
    assert set(data) == {"sentiment", "score", "note", "tags", "color"}
    assert _ask(client, _nested(5)).choices[0].finish_reason == "stop"


def test_the_projects_own_schemas_pass_strict_mode(client: openai.OpenAI) -> None:
    from slack_ai_addon.providers.analysis import ANALYSIS_SCHEMA
    from slack_ai_addon.providers.intent import INTENT_SCHEMA

    for name, schema in (("scene_spec", SceneSpec.model_json_schema()), ("sentiment", ANALYSIS_SCHEMA),
                         ("intent", INTENT_SCHEMA)):
        assert _ask(client, schema, name).choices[0].message.content


def test_an_object_without_additional_properties_false_is_refused(client: openai.OpenAI) -> None:
    schema = copy.deepcopy(ACCEPTED)
    del schema["additionalProperties"]
    exc = _refused(client, schema)
    assert "'additionalProperties' is required to be supplied and to be false" in exc.message
    # Nested objects too, and `true` is no better than missing.
    schema = copy.deepcopy(ACCEPTED)
    schema["$defs"]["tag"]["additionalProperties"] = True
    exc = _refused(client, schema)
    assert "In context=('$defs', 'tag'), 'additionalProperties' is required to be supplied and to be false" \
        in exc.message


def test_a_property_missing_from_required_is_refused(client: openai.OpenAI) -> None:
    schema = copy.deepcopy(ACCEPTED)
    schema["required"].remove("note")
    exc = _refused(client, schema)
    assert "'required' is required to be supplied and to be an array including every key in properties" \
        in exc.message
    assert "Missing 'note'" in exc.message


@pytest.mark.parametrize("schema", [
    {"type": "array", "items": {"type": "string"}},
    {"anyOf": [ACCEPTED, {"type": "null"}]},
])
def test_the_root_must_be_an_object(client: openai.OpenAI, schema: dict[str, Any]) -> None:
    exc = _refused(client, schema)
    assert "object" in exc.message


@pytest.mark.parametrize("keyword", ["allOf", "not", "if", "dependentRequired", "dependentSchemas"])
def test_unsupported_composition_keywords_are_refused(client: openai.OpenAI, keyword: str) -> None:
    schema = copy.deepcopy(ACCEPTED)
    value: Any = {"properties": {"sentiment": {"const": "positive"}}}
    if keyword == "allOf":
        value = [value]
    elif keyword == "dependentRequired":
        value = {"note": ["tags"]}
    elif keyword == "dependentSchemas":
        value = {"note": {"required": ["tags"]}}
    schema[keyword] = value
    exc = _refused(client, schema)
    assert f"'{keyword}'" in exc.message and "not permitted" in exc.message


def test_nesting_deeper_than_the_limit_is_refused(client: openai.OpenAI) -> None:
    # Up to 10 levels are allowed; 12 is over whichever way the levels are counted.
    exc = _refused(client, _nested(12))
    assert "nesting" in exc.message


def test_too_many_properties_enum_values_or_characters_are_refused(client: openai.OpenAI) -> None:
    many = {f"p{i}": {"type": "string"} for i in range(5001)}  # at most 5000 object properties
    _refused(client, {"type": "object", "properties": many, "required": list(many), "additionalProperties": False})
    enum = [f"v{i}" for i in range(1001)]  # at most 1000 enum values
    _refused(client, {"type": "object", "properties": {"e": {"type": "string", "enum": enum}}, "required": ["e"],
                      "additionalProperties": False})
    long_value = "x" * 120_001  # at most 120,000 characters of names and enum values
    _refused(client, {"type": "object", "properties": {"e": {"type": "string", "enum": [long_value]}},
                      "required": ["e"], "additionalProperties": False})


def test_the_same_schema_without_strict_is_not_checked(client: openai.OpenAI) -> None:
    schema = copy.deepcopy(ACCEPTED)
    del schema["additionalProperties"]
    assert _ask(client, schema, strict=False).choices[0].message.content


def test_a_bad_schema_name_is_refused(client: openai.OpenAI) -> None:
    # Names are a-z, A-Z, 0-9, underscores and dashes, at most 64 characters.
    for name in ("scene spec", "n" * 65):
        with pytest.raises(openai.BadRequestError) as err:
            _ask(client, ACCEPTED, name)
        error = err.value.response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == "response_format.json_schema.name"


def test_a_strict_tool_is_held_to_the_same_rules(client: openai.OpenAI) -> None:
    params = copy.deepcopy(ACCEPTED)
    del params["additionalProperties"]
    tool = {"type": "function", "function": {"name": "set_scene", "parameters": params, "strict": True}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       tools=[tool])  # type: ignore[list-item]
    error = err.value.response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "tools[0].function.parameters"
    assert error["message"].startswith("Invalid schema for function 'set_scene': ")
    assert "additionalProperties" in error["message"]
