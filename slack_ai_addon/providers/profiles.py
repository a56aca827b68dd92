"""Capability profiles: what each "OpenAI-compatible" server really accepts.

A profile turns one provider-neutral request (messages, a JSON schema, a token budget,
a temperature) into the keyword arguments that server takes. The servers disagree on
exactly these fields (docs/PROVIDER_RULES.md, "Where and how" and "Model quirks"):

- structured output: OpenAI and RouteLLM take `json_schema` with `strict`; LM Studio takes
  `json_schema` only (a `json_object` is a 400); llama-cpp-python takes only
  `{"type": "json_object", "schema": ...}` (a `json_schema` is a 500);
- reasoning models (o1/o3/o4, gpt-5) reject `max_tokens` and any temperature but 1;
- LM Studio needs no key, but the SDK insists on a non-empty string.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Literal

StructuredMode = Literal["json_schema", "json_object_schema", "json_object", "prompt_only"]


@dataclass(frozen=True)
class ProviderProfile:
    """Static facts about one provider kind; per-model quirks are in `adapt_request`."""

    name: str  # routellm | openai | lmstudio | llamacpp
    label: str  # what users read: "RouteLLM"
    structured: StructuredMode
    strict_ok: bool  # accepts json_schema.strict = true
    length_field: str  # "max_tokens" or "max_completion_tokens"
    temperature_ok: bool
    needs_key: bool
    dummy_key: str  # sent when no key is needed (the SDK refuses an empty one)
    context_tokens: int  # a conservative limit for prompt sizing
    tool_strict_ok: bool  # accepts tools[].function.strict
    timeout_s: float  # read timeout for one attempt
    is_local: bool  # local models cost nothing
    default_model: str = ""
    # GET /v1/models answers without a (valid) key or credits (Abacus RouteLLM, LM Studio):
    # passing it proves nothing about a bad key or an empty balance.
    public_model_list: bool = False


ROUTELLM = ProviderProfile(
    name="routellm", label="RouteLLM", structured="json_schema", strict_ok=True,
    length_field="max_tokens", temperature_ok=True, needs_key=True, dummy_key="",
    context_tokens=128_000, tool_strict_ok=False,  # Abacus answered 400 to strict tools (reference §1.4)
    timeout_s=45.0, is_local=False, default_model="route-llm",
    public_model_list=True,  # several projects call it without a key (reference §1.2)
)
OPENAI = ProviderProfile(
    name="openai", label="OpenAI", structured="json_schema", strict_ok=True,
    # max_completion_tokens is accepted by every current chat model, max_tokens is not.
    length_field="max_completion_tokens", temperature_ok=True, needs_key=True, dummy_key="",
    context_tokens=128_000, tool_strict_ok=True, timeout_s=45.0, is_local=False, default_model="gpt-4o-mini",
)
LMSTUDIO = ProviderProfile(
    name="lmstudio", label="LM Studio", structured="json_schema", strict_ok=True,
    length_field="max_tokens", temperature_ok=True, needs_key=False, dummy_key="lm-studio",
    context_tokens=4096,  # LM Studio's usual default context for a loaded model
    tool_strict_ok=True, timeout_s=120.0, is_local=True, public_model_list=True,
)
LLAMACPP = ProviderProfile(
    name="llamacpp", label="llama.cpp", structured="json_object_schema", strict_ok=False,
    length_field="max_tokens", temperature_ok=True, needs_key=False, dummy_key="llama-cpp",
    context_tokens=2048, tool_strict_ok=False, timeout_s=120.0, is_local=True,
)

PROFILES: dict[str, ProviderProfile] = {p.name: p for p in (ROUTELLM, OPENAI, LMSTUDIO, LLAMACPP)}

_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)", re.IGNORECASE)


def is_reasoning_model(model: str) -> bool:
    """OpenAI reasoning models reject `max_tokens` and non-default temperatures."""
    return bool(_REASONING_MODEL.match(model.rsplit("/", 1)[-1]))


def adapt_request(profile: ProviderProfile, *, model: str, messages: list[dict[str, Any]],
                  schema: dict[str, Any] | None = None, schema_name: str = "result",
                  max_tokens: int = 1024, temperature: float | None = 0.2,
                  tools: list[dict[str, Any]] | None = None, stream: bool = False) -> dict[str, Any]:
    """Keyword arguments for `client.chat.completions.create` on this provider."""
    kwargs: dict[str, Any] = {"model": model, "messages": messages}
    reasoning = profile.name in ("openai", "routellm") and is_reasoning_model(model)
    length_field = "max_completion_tokens" if reasoning else profile.length_field
    kwargs[length_field] = max_tokens
    if temperature is not None and profile.temperature_ok and not reasoning:
        kwargs["temperature"] = temperature
    if schema is not None:
        kwargs["response_format"] = response_format_for(profile, schema, schema_name)
    if profile.name == "llamacpp":
        # llama_cpp.server defaults to repeat_penalty 1.1, which bends JSON answers (§6.4).
        kwargs["extra_body"] = {"repeat_penalty": 1.0}
    if tools:
        fixed = copy.deepcopy(tools)
        if not profile.tool_strict_ok:
            for tool in fixed:
                tool.get("function", {}).pop("strict", None)
        kwargs["tools"] = fixed
    if stream:
        kwargs["stream"] = True
        if profile.name in ("openai", "routellm"):
            kwargs["stream_options"] = {"include_usage": True}
    return kwargs


def response_format_for(profile: ProviderProfile, schema: dict[str, Any], schema_name: str) -> dict[str, Any]:
    """The `response_format` value in this provider's dialect."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", schema_name)[:64] or "result"
    if profile.structured == "json_schema":
        return {"type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": profile.strict_ok}}
    if profile.structured == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if profile.structured == "json_object":
        return {"type": "json_object"}
    return {"type": "text"}


def fix_for_bad_request(profile: ProviderProfile, kwargs: dict[str, Any], message: str) -> dict[str, Any] | None:
    """One automatic fix for a known capability mismatch (a 400 naming the field), else None.

    This is how a model we did not know to be a reasoning model, or a server whose
    dialect changed, still gets a valid request on the second try.
    """
    low = message.lower()
    fixed = dict(kwargs)
    if "max_tokens" in low and "max_tokens" in fixed:
        fixed["max_completion_tokens"] = fixed.pop("max_tokens")
        return fixed
    if "temperature" in low and "temperature" in fixed:
        fixed.pop("temperature")
        return fixed
    rf = fixed.get("response_format")
    if "response_format" in low and isinstance(rf, dict):
        if rf.get("type") == "json_object" and "schema" in rf:
            fixed["response_format"] = {"type": "json_schema",
                                        "json_schema": {"name": "result", "schema": rf["schema"], "strict": False}}
            return fixed
        if rf.get("type") == "json_schema" and rf["json_schema"].get("strict"):
            fixed["response_format"] = {"type": "json_schema",
                                        "json_schema": dict(rf["json_schema"], strict=False)}
            return fixed
    if "strict" in low and fixed.get("tools"):
        tools = copy.deepcopy(fixed["tools"])
        for tool in tools:
            tool.get("function", {}).pop("strict", None)
        fixed["tools"] = tools
        return fixed
    return None


