"""Hostile input, without a network: JSON extraction from LLM answers, Socket Mode frames,
and Slack text. Hypothesis runs derandomized (a fixed seed: the same examples every run),
and every parse is timed: nothing may be quadratic or recurse without bound."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slack_ai_addon.agent.router import clean_text
from slack_ai_addon.agent.service import parse_frame
from slack_ai_addon.providers.client import Completion
from slack_ai_addon.providers.errors import InvalidOutput
from slack_ai_addon.providers.spec_interpreter import parse_spec_completion
from slack_ai_addon.providers.structured import MAX_JSON_CHARS, MAX_JSON_DEPTH, extract_json, max_answer_chars
from slack_ai_addon.textutil import clean_control

# About 5,000 examples in all (with tests/e2e/test_hostile_input_e2e.py), a few seconds.
FUZZ = settings(derandomize=True, max_examples=600, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LIVE = ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<https://")


def budget_s(text: str) -> float:
    """50 ms per 10 kB, with a floor for tiny inputs on a busy CI machine."""
    return max(0.05, 0.05 * len(text) / 10_000)


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    try:
        result: Any = fn(*args)
    except InvalidOutput as err:
        result = err
    return result, time.perf_counter() - start


# ------------------------------------------------------------------ JSON extraction: explicit cases

def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("text", [
    '{"a":' * 1600,  # the case: RecursionError before
    nested(1600),  # closed, valid JSON, still too deep
    "[" * 100_000,
    "{ " * 90_000,  # the old search tried a decode from every brace: quadratic
], ids=["open-1600", "closed-1600", "arrays", "braces"])
def test_deep_nesting_is_refused_not_a_recursion_error(text: str) -> None:
    result, took = timed(extract_json, text)
    assert isinstance(result, InvalidOutput), result
    assert "nested deeper than 64" in result.message
    assert took < 0.2, took


def test_depth_limit_is_exact() -> None:
    assert extract_json(nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(InvalidOutput, match="nested deeper"):
        extract_json(nested(MAX_JSON_DEPTH + 1))


@pytest.mark.parametrize("text", [
    json.dumps({"objects": [{"name": "x" * 195_000}]}),  # one long string
    "word " * 39_000 + '{"a": 1}',  # an object after 195 kB of prose
    "{x}" * 66_000 + '{"a": 1}',  # 66,000 balanced spans that are not JSON
    '{"a": "' + "\\\"{" * 60_000 + '"}',  # braces and escaped quotes inside a string
], ids=["long-string", "prose", "many-spans", "escapes"])
def test_200kb_answers_parse_in_well_under_a_second(text: str) -> None:
    assert len(text) <= MAX_JSON_CHARS
    result, took = timed(extract_json, text)
    assert isinstance(result, dict), result
    assert took < budget_s(text), f"{took * 1000:.0f} ms for {len(text)} chars"


def test_too_long_answers_are_refused() -> None:
    result, took = timed(extract_json, '{"a": "' + "x" * MAX_JSON_CHARS + '"}')
    assert isinstance(result, InvalidOutput) and "characters long" in result.message
    assert took < 0.05
    assert max_answer_chars(20) >= 16_384 and max_answer_chars(10**6) == MAX_JSON_CHARS


def test_a_deep_spec_answer_is_invalid_output() -> None:
    with pytest.raises(InvalidOutput):
        parse_spec_completion(Completion(content='{"objects":' * 1600, model="m"))


# ------------------------------------------------------------------ JSON extraction: fuzzing

JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                        st.text(max_size=40), st.sampled_from(["<!channel>", "\ud800", "\x00", "{", "}", "\\", '"']))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                                st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=5)), max_leaves=30)


def _same(a: Any, b: Any) -> bool:
    """Equality with NaN equal to itself (json round-trips NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@FUZZ
@given(obj=st.dictionaries(st.text(max_size=8), JSON_VALUES, min_size=1, max_size=6),
       before=st.text(max_size=200), after=st.text(max_size=200), fence=st.booleans())
def test_fuzz_an_object_in_prose_is_found(obj: dict[str, Any], before: str, after: str, fence: bool) -> None:
    body = json.dumps(obj)
    if fence:
        body = f"```json\n{body}\n```"
    text = f"{before.replace('`', '')} {body} {after.replace('`', '')}"
    result, took = timed(extract_json, text)
    assert took < budget_s(text)
    # Prose may itself hold braces that make a different (earlier) object, or nest the answer
    # too deep: the contract is an object or a clean refusal, never an exception.
    assert isinstance(result, (dict, InvalidOutput)), result
    if isinstance(result, dict) and not any(c in before for c in "{[\"\\"):
        assert _same(result, obj)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from('{}[]":,\\ a1\n'), max_size=3000))
def test_fuzz_bracket_soup_never_raises_and_stays_linear(text: str) -> None:
    result, took = timed(extract_json, text * 3)
    assert result is None or isinstance(result, (dict, list, InvalidOutput))
    assert took < budget_s(text * 3)


# ------------------------------------------------------------------ Socket Mode frames

def envelope(envelope_id: str, payload: Any) -> str:
    return json.dumps({"envelope_id": envelope_id, "type": "events_api", "payload": payload,
                       "accepts_response_payload": False})


@pytest.mark.parametrize("raw", [
    '{"envelope_id": "e-deep", "payload": ' + '{"a":' * 100_000,
    '{"envelope_id": "e-deep", "payload": ' + nested(5000) + "}",
    '{"type": "events_api", "envelope_id": "e-deep", "payload": ' + "[" * 50_000 + "]" * 50_000 + "}",
    '["envelope_id", "e-deep"] "envelope_id": "e-deep"',
], ids=["open", "closed", "arrays", "not-an-object"])
def test_a_frame_that_cannot_be_parsed_still_yields_its_envelope_id(raw: str) -> None:
    start = time.perf_counter()
    assert parse_frame(raw)[0] == "e-deep"
    assert time.perf_counter() - start < 0.5


@settings(FUZZ, max_examples=1200)
@given(envelope_id=st.text(alphabet=st.characters(blacklist_characters='"\\', blacklist_categories=("Cs",)),
                           min_size=1, max_size=40),
       payload=JSON_VALUES, cut=st.integers(min_value=0, max_value=400))
def test_fuzz_frames_never_raise_and_a_whole_envelope_is_acked(envelope_id: str, payload: Any, cut: int) -> None:
    raw = envelope(envelope_id, payload)
    assert parse_frame(raw)[0] == envelope_id
    parse_frame(raw[:cut])  # truncated, garbled: no exception
    parse_frame(raw[cut:])


@settings(FUZZ, max_examples=1000)
@given(raw=st.one_of(st.text(max_size=500), st.binary(max_size=100), st.none(), st.integers()))
def test_fuzz_any_frame_text_is_handled(raw: Any) -> None:
    envelope_id, message = parse_frame(raw)
    assert isinstance(envelope_id, str) and isinstance(message, dict)


# ------------------------------------------------------------------ Slack text

SLACK_TEXT = st.lists(st.one_of(st.characters(), st.sampled_from(
    ["&lt;", "&gt;", "&amp;", "<", ">", "!channel", "!here", "@U123", "https://evil.example|x", "\ud800", "\x00",
     "\x1b", "\u0085", "&#0;", "&#x1b;"])), max_size=120).map("".join)


@settings(FUZZ, max_examples=1200)
@given(text=SLACK_TEXT)
def test_fuzz_clean_text_gives_storable_words_without_live_markup(text: str) -> None:
    cleaned = clean_text(text, "UBOT")
    cleaned.encode("utf-8")  # no lone surrogate: the database and Blender can take it
    assert all(c in "\n\t" or (c >= " " and not "\x7f" <= c <= "\x9f") for c in cleaned), repr(cleaned)
    for live in LIVE:
        assert live not in cleaned, (text, cleaned)


def test_clean_control_keeps_text_and_drops_controls() -> None:
    assert clean_control("a\x00b\ud800c\n\td\x85e é 🎬") == "abc\n\tde é 🎬"
    assert clean_text("render a red\x00 cube\x1b[31m \udfff") == "render a red cube[31m"
