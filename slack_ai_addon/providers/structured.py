"""Structured output: pull JSON out of whatever a model sent, validate it, say what is wrong.

Schema mode is best effort everywhere except OpenAI strict mode, so the answer is always
validated here. Models wrap JSON in ```json fences, prefix `<think>` blocks, or (LM Studio
reasoning models) leave `content` empty and put the JSON in the reasoning text.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .client import Completion
from .errors import ErrorKind, InvalidOutput, ProviderError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
MAX_JSON_CHARS = 200_000  # a scene spec is a few kB; anything far larger is a runaway answer


def extract_json(content: str, reasoning: str = "") -> Any:
    """The first JSON object in `content` (or, if that has none, in `reasoning`).

    Raises InvalidOutput with a short, model-readable reason.
    """
    for text in (content, reasoning):
        if not text or not text.strip():
            continue
        found = _find_json(text)
        if found is not None:
            return found
    if not (content or "").strip() and not (reasoning or "").strip():
        raise InvalidOutput("the answer was empty", raw="")
    raw = content or reasoning
    raise InvalidOutput("the answer was not valid JSON", raw=raw[:500],
                        repair_hint="Your answer was not valid JSON. Answer with one JSON object only, "
                                    "no prose and no code fences.")


def _find_json(text: str) -> Any:
    if len(text) > MAX_JSON_CHARS:
        return None
    text = _THINK.sub("", text).strip()
    candidates = [m.group(1).strip() for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            pass
        # Prose around the object: decode from the first brace.
        start = candidate.find("{")
        while start != -1:
            try:
                value, _ = decoder.raw_decode(candidate, start)
                return value
            except ValueError:
                start = candidate.find("{", start + 1)
    return None


def check_completion(completion: Completion, *, provider: str = "") -> None:
    """Failures hidden in a 200: refusals, truncation, LM Studio's empty context overflow."""
    if completion.refusal:
        raise ProviderError(ErrorKind.REFUSAL, completion.refusal[:200], provider=provider)
    if completion.finish_reason == "content_filter":
        raise ProviderError(ErrorKind.REFUSAL, "content filter", provider=provider)
    if not completion.content.strip() and not completion.reasoning.strip() and not completion.tool_calls:
        if completion.prompt_tokens or completion.finish_reason == "length":
            # LM Studio >= 0.4.21 answers a context overflow with 200 and nothing in it.
            raise ProviderError(ErrorKind.CONTEXT_OVERFLOW, "empty answer (prompt too long for the model?)",
                                provider=provider)
        raise InvalidOutput("the answer was empty", provider=provider)


def validate_json(model: type[M], data: Any) -> M:
    """Validate decoded JSON against a pydantic model; InvalidOutput names the bad fields."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'root'}: {e['msg']}"
                             for e in err.errors()[:8])
        raise InvalidOutput(f"the JSON does not match the schema: {problems}", raw=json.dumps(data)[:500],
                            repair_hint=f"Your JSON did not match the schema: {problems}. "
                                        "Answer again with the corrected JSON object only.") from None


def model_parser(model: type[M]) -> Callable[[Completion], M]:
    """A StructuredTask parser: extract the JSON, validate it against a pydantic model."""

    def parse(completion: Completion) -> M:
        return validate_json(model, extract_json(completion.content, completion.reasoning))

    return parse


def repair_messages(messages: list[dict[str, Any]], bad_answer: str, hint: str) -> list[dict[str, Any]]:
    """The conversation for the one repair re-prompt: our request, its answer, what is wrong."""
    return [*messages,
            {"role": "assistant", "content": bad_answer[:4000] or "(empty)"},
            {"role": "user", "content": hint}]
