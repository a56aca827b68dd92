"""Provider layer pieces without a server: taxonomy, profiles, extraction, VADER, prices."""

from __future__ import annotations

import email.utils
import time

import pytest

from slack_ai_addon.providers.analysis import analysis_subject
from slack_ai_addon.providers.chain import Failure, describe_failures
from slack_ai_addon.providers.client import Completion
from slack_ai_addon.providers.errors import (
    ErrorKind,
    InvalidOutput,
    ProviderError,
    classify_status,
    parse_retry_after,
    redact,
)
from slack_ai_addon.providers.offline import offline_sentiment
from slack_ai_addon.providers.prices import cost_usd
from slack_ai_addon.providers.profiles import LLAMACPP, LMSTUDIO, OPENAI, ROUTELLM, adapt_request, fix_for_bad_request
from slack_ai_addon.providers.structured import check_completion, extract_json

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
          "additionalProperties": False}
MESSAGES = [{"role": "user", "content": "hi"}]

# Error bodies as the providers document them (docs/PROVIDER_RULES.md, "Error shapes"),
# written here rather than taken from the fake server, so the two cannot drift together.
ABACUS_OUT_OF_CREDITS = {"success": False, "error": "You have no remaining credits to use the LLM apis."}
LMSTUDIO_NO_MODELS_LOADED = {"message": "No models loaded. Please load a model in the developer page or use the "
                                        "'lms load' command.", "type": "invalid_request_error", "param": "model",
                             "code": None}
LMSTUDIO_JSON_OBJECT_REFUSED = "'response_format.type' must be 'json_schema' or 'text'"


# ------------------------------------------------------------------------ error taxonomy

@pytest.mark.parametrize("status, body, headers, kind", [
    (400, ABACUS_OUT_OF_CREDITS, {}, ErrorKind.QUOTA_EXHAUSTED),  # Abacus: a 400, not a 402
    (400, ABACUS_OUT_OF_CREDITS["error"], {}, ErrorKind.QUOTA_EXHAUSTED),  # as the openai SDK unwraps it
    (429, {"message": "You exceeded your current quota", "type": "insufficient_quota"}, {},
     ErrorKind.QUOTA_EXHAUSTED),
    (401, {"message": "Incorrect API key provided"}, {}, ErrorKind.AUTH),
    (403, "forbidden", {}, ErrorKind.AUTH),
    (429, {"message": "Rate limit reached"}, {"retry-after": "3"}, ErrorKind.RATE_LIMITED),
    (500, {"message": "boom"}, {}, ErrorKind.TRANSIENT),
    (503, "<html>Service Unavailable</html>", {}, ErrorKind.TRANSIENT),
    (408, "", {}, ErrorKind.TRANSIENT),
    (404, LMSTUDIO_NO_MODELS_LOADED, {}, ErrorKind.MODEL_NOT_LOADED),
    (400, LMSTUDIO_JSON_OBJECT_REFUSED, {}, ErrorKind.BAD_REQUEST),  # LM Studio's plain-string error
    (400, "The number of tokens to keep from the initial prompt is greater than the context length "
          "(n_keep: 13055>= n_ctx: 4096)", {}, ErrorKind.CONTEXT_OVERFLOW),
    (400, {"message": "This model's maximum context length is 128000 tokens", "code": "context_length_exceeded"},
     {}, ErrorKind.CONTEXT_OVERFLOW),
])
def test_classification_reads_status_and_body(status: int, body: object, headers: dict[str, str],
                                              kind: ErrorKind) -> None:
    err = classify_status(status, body, headers, provider="x")
    assert err.kind is kind
    assert err.status == status
    assert err.kind.retryable == (kind in (ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED))


def test_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (parse_retry_after({"retry-after": future}) or 0) <= 31
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert classify_status(429, {}, {"retry-after": "1"}).retry_after == 1.0


def test_redaction_removes_known_and_key_shaped_secrets() -> None:
    text = "Incorrect API key provided: my-secret-value-123. Also sk-proj-ABCDEFGHIJKLMNOP and Bearer abcdefghijkl"
    out = redact(text, ["my-secret-value-123"])
    assert "my-secret-value-123" not in out
    assert "sk-proj-ABCDEFGHIJKLMNOP" not in out
    assert "abcdefghijkl" not in out
    assert out.count("[redacted]") == 3
    err = classify_status(401, {"message": "Incorrect API key provided: my-secret-value-123"},
                          secrets=["my-secret-value-123"])
    assert "my-secret-value-123" not in str(err)


def test_failure_summary_reads_like_a_sentence() -> None:
    failures = [Failure("RouteLLM", ProviderError(ErrorKind.RATE_LIMITED, "429")),
                Failure("OpenAI", ProviderError(ErrorKind.AUTH, "401"))]
    assert describe_failures(failures) == "RouteLLM and OpenAI were unavailable (rate limited; bad key)"
    assert describe_failures(failures[:1]) == "RouteLLM was unavailable (rate limited)"


# ------------------------------------------------------------------------------ profiles

def test_openai_profile_uses_strict_schema_and_max_completion_tokens() -> None:
    kw = adapt_request(OPENAI, model="gpt-4o-mini", messages=MESSAGES, schema=SCHEMA, schema_name="spec",
                       max_tokens=100, temperature=0.2)
    assert kw["response_format"] == {"type": "json_schema",
                                     "json_schema": {"name": "spec", "schema": SCHEMA, "strict": True}}
    assert kw["max_completion_tokens"] == 100 and "max_tokens" not in kw
    assert kw["temperature"] == 0.2


def test_reasoning_models_get_no_temperature_on_any_cloud_profile() -> None:
    for profile in (OPENAI, ROUTELLM):
        kw = adapt_request(profile, model="gpt-5-mini", messages=MESSAGES, max_tokens=50, temperature=0.0)
        assert "temperature" not in kw and kw["max_completion_tokens"] == 50 and "max_tokens" not in kw


def test_lmstudio_and_llamacpp_dialects() -> None:
    lm = adapt_request(LMSTUDIO, model="qwen", messages=MESSAGES, schema=SCHEMA, max_tokens=10)
    assert lm["response_format"]["type"] == "json_schema" and lm["max_tokens"] == 10
    ll = adapt_request(LLAMACPP, model="gemma", messages=MESSAGES, schema=SCHEMA, max_tokens=10)
    assert ll["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert ll["extra_body"] == {"repeat_penalty": 1.0}


def test_routellm_strips_strict_from_tools() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": SCHEMA, "strict": True}}]
    kw = adapt_request(ROUTELLM, model="route-llm", messages=MESSAGES, tools=tools)
    assert "strict" not in kw["tools"][0]["function"]
    assert tools[0]["function"]["strict"] is True  # the caller's list is not mutated


def test_one_fix_per_known_400() -> None:
    kw = {"model": "m", "messages": MESSAGES, "max_tokens": 5, "temperature": 0.3}
    fixed = fix_for_bad_request(LMSTUDIO, kw, "Unsupported parameter: 'max_tokens' is not supported")
    assert fixed == {"model": "m", "messages": MESSAGES, "max_completion_tokens": 5, "temperature": 0.3}
    fixed = fix_for_bad_request(LMSTUDIO, kw, "'temperature' does not support 0.3")
    assert fixed is not None and "temperature" not in fixed
    assert fix_for_bad_request(LMSTUDIO, kw, "something else entirely") is None


# ---------------------------------------------------------------------------- extraction

@pytest.mark.parametrize("content, reasoning", [
    ('{"a": 1}', ""),
    ('```json\n{"a": 1}\n```', ""),
    ('<think>I should answer {"a": 2}? no.</think>\n{"a": 1}', ""),
    ('Sure! Here is the JSON: {"a": 1} Hope that helps.', ""),
    ("", 'The answer is {"a": 1}'),  # LM Studio reasoning models: JSON in the thinking block
])
def test_extract_json_is_tolerant(content: str, reasoning: str) -> None:
    assert extract_json(content, reasoning) == {"a": 1}


def test_extract_json_rejects_non_json_with_a_repair_hint() -> None:
    with pytest.raises(InvalidOutput) as info:
        extract_json("I cannot do that, Dave.")
    assert "JSON" in info.value.repair_hint
    with pytest.raises(InvalidOutput):
        extract_json("", "")


def test_hidden_failures_in_a_200() -> None:
    with pytest.raises(ProviderError) as info:
        check_completion(Completion(content="", model="m", prompt_tokens=5000))
    assert info.value.kind is ErrorKind.CONTEXT_OVERFLOW
    with pytest.raises(ProviderError) as info:
        check_completion(Completion(content="", model="m", refusal="I can't help with that."))
    assert info.value.kind is ErrorKind.REFUSAL
    check_completion(Completion(content='{"a":1}', model="m"))


# -------------------------------------------------------------------------- offline VADER

@pytest.mark.parametrize("text, expected", [
    ("I love this new AI system!", "positive"),
    ("This update is terrible and I hate it.", "negative"),
    ("The meeting is at 3 pm on Tuesday.", "neutral"),
    ("The food was great but the service was terrible.", "mixed"),
    ("I love the design but the battery life is awful and I hate the price.", "negative"),
])
def test_offline_sentiment(text: str, expected: str) -> None:
    result = offline_sentiment(text)
    assert result["sentiment"] == expected
    assert -1.0 <= result["score"] <= 1.0
    assert result["provider"] == "offline" and result["model"] == "vader"
    if expected == "positive":
        assert result["score"] >= 0.05
    if expected == "negative":
        assert result["score"] <= -0.05


def test_analysis_subject_takes_the_quoted_passage() -> None:
    assert analysis_subject('What sentiment does this convey: "I love this"') == "I love this"
    assert analysis_subject('He said "hello" and left') == 'He said "hello" and left'
    assert offline_sentiment(analysis_subject('What sentiment does this convey: "I hate Mondays"'))[
        "sentiment"] == "negative"


def test_prices() -> None:
    # gpt-4o-mini: $0.15 / $0.60 per 1M tokens; snapshots match their family.
    assert cost_usd("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd("gpt-4o-2024-11-20", 1000, 0) == pytest.approx(0.0025)
    assert cost_usd("gpt-4o-mini", 1000, 1000, local=True) == 0.0
    assert cost_usd("some-unknown-model", 1000, 1000) == 0.0


def test_unknown_cost_is_told_apart_from_free() -> None:
    from slack_ai_addon.providers import prices

    assert prices.cost_known("gpt-4o-mini-2024-07-18") and prices.cost_known("anything", local=True)
    assert not prices.cost_known("some-unknown-model")
    assert "known=False" not in (prices.__doc__ or "")  # no such flag: the docstring names cost_known


# ------------------------------------------------------------------------ context sizing

def test_prompt_sizing_against_the_profile_context() -> None:
    from slack_ai_addon.providers.chain import StructuredTask, estimate_tokens, fit_to_context
    from slack_ai_addon.providers.client import ProviderClient

    lm = ProviderClient(LMSTUDIO, base_url="http://127.0.0.1:9/v1", model="qwen")
    cloud = ProviderClient(OPENAI, base_url="http://127.0.0.1:9/v1", api_key="sk-unit-test-key-000", model="m")
    long_text = "word " * 8000  # ~10,000 tokens by chars/4
    messages = [{"role": "system", "content": "Analyse."}, {"role": "user", "content": long_text}]
    assert estimate_tokens(messages) == pytest.approx(len(long_text) / 4, abs=30)
    task = StructuredTask(task="analysis", messages=messages, parse=str, max_tokens=400, trimmable=True)
    same, notes = fit_to_context(cloud, task)
    assert same is messages and notes == []
    trimmed, notes = fit_to_context(lm, task)
    assert estimate_tokens(trimmed) <= LMSTUDIO.context_tokens - 400
    assert trimmed[0] == messages[0] and trimmed[1]["content"].startswith("word word")
    assert "trimmed" in trimmed[1]["content"] and "trimmed" in notes[0]
    assert messages[1]["content"] == long_text  # the task itself is left alone for the next provider
    task.trimmable = False
    with pytest.raises(ProviderError) as caught:
        fit_to_context(lm, task)
    assert caught.value.kind is ErrorKind.CONTEXT_OVERFLOW
