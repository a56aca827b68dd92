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
MAX_JSON_DEPTH = 64  # a scene spec nests 4 deep; deeper is hostile (json's C decoder recurses)
# Structural characters of JSON, found by one regex pass: an escape pair (so `\"` and `\{`
# are skipped as a unit), a quote, a bracket. Everything between them is never looked at.
_TOKENS = re.compile(r'\\.|["{}\[\]]', re.DOTALL)
_OBJECT_START = re.compile(r"\{\s*[\"}]")  # what an object's first characters must be


# A token is rarely more than a few characters, but tokenizers merge runs of spaces (pretty
# printed JSON) into one token: 32 characters a token is far above any honest answer.
CHARS_PER_TOKEN_LIMIT = 32


def max_answer_chars(max_tokens: int) -> int:
    """The longest answer a provider may send for `max_tokens`: longer is a server ignoring
    the limit (or a hostile one), refused before anything parses it."""
    return min(MAX_JSON_CHARS, max(16_384, max_tokens * CHARS_PER_TOKEN_LIMIT))


class _TooDeep(Exception):
    pass


def extract_json(content: str, reasoning: str = "", *, max_chars: int = MAX_JSON_CHARS) -> Any:
    """The first JSON object in `content` (or, if that has none, in `reasoning`).

    Linear in the answer's length: one pass finds the balanced `{...}` spans, and each
    character is decoded a bounded number of times. An answer longer than `max_chars` or
    nested deeper than MAX_JSON_DEPTH is refused (InvalidOutput), never a RecursionError.
    Raises InvalidOutput with a short, model-readable reason.
    """
    too_deep = False
    for text in (content, reasoning):
        if not text or not text.strip():
            continue
        if len(text) > max_chars:
            raise InvalidOutput(f"the answer was {len(text)} characters long (at most {max_chars})",
                                raw=text[:500], repair_hint="Your answer was far too long. Answer with one "
                                                            "short JSON object only.")
        try:
            found = _find_json(text)
        except _TooDeep:
            too_deep = True
            continue
        if found is not None:
            return found
    if too_deep:
        raise InvalidOutput(f"the JSON was nested deeper than {MAX_JSON_DEPTH} levels",
                            raw=(content or reasoning)[:500],
                            repair_hint="Your JSON was nested far too deeply. Answer with the flat JSON object "
                                        "the schema describes.")
    if not (content or "").strip() and not (reasoning or "").strip():
        raise InvalidOutput("the answer was empty", raw="")
    raw = content or reasoning
    raise InvalidOutput("the answer was not valid JSON", raw=raw[:500],
                        repair_hint="Your answer was not valid JSON. Answer with one JSON object only, "
                                    "no prose and no code fences.")


def _find_json(text: str) -> Any:
    text = _THINK.sub("", text).strip()
    candidates = [m.group(1).strip() for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        spans = _object_spans(candidate)  # raises _TooDeep before anything is decoded
        if candidate[:1] in ("{", "["):
            whole = _decode(candidate)
            if whole is not _NOTHING:
                return whole
        # Prose around the object: the balanced spans, outermost first. A span decodes only
        # once; nested spans are tried only inside one that failed, so each character is
        # decoded at most MAX_JSON_DEPTH times (in practice once).
        for start, end in spans:
            if _OBJECT_START.match(candidate, start):
                value = _decode(candidate[start:end])
                if value is not _NOTHING:
                    return value
    return None


_NOTHING = object()


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOTHING


def _object_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every balanced `{...}` in `text`, by start. Quotes count only inside
    brackets (outside them they are prose); raises _TooDeep past MAX_JSON_DEPTH."""
    stack: list[int] = []
    spans: list[tuple[int, int]] = []
    in_string = False
    for m in _TOKENS.finditer(text):
        tok = m.group()
        if in_string:
            if tok == '"':
                in_string = False
            continue
        if tok == '"':
            in_string = bool(stack)
        elif tok in "{[":
            stack.append(m.start())
            if len(stack) > MAX_JSON_DEPTH:
                raise _TooDeep
        elif tok in "}]" and stack:
            start = stack.pop()
            if tok == "}" and text[start] == "{":
                spans.append((start, m.end()))
    spans.sort()
    return spans


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
