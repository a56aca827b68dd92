"""`/analyze`: sentiment with an LLM when one is configured, VADER offline otherwise.

The offline rules live with the other offline pieces, in `offline/sentiment.py`.
A small LRU cache answers identical requests without another paid call.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..core.scene_spec import make_strict_schema
from .chain import AllProvidersFailed, ProviderChain, StructuredTask, describe_failures
from .client import Completion
from .offline.sentiment import offline_sentiment
from .structured import extract_json, validate_json

log = logging.getLogger(__name__)

ANALYSIS_DEADLINE_S = 30.0
CACHE_SIZE = 256

Sentiment = Literal["positive", "negative", "neutral", "mixed"]


class SentimentResult(BaseModel):
    """What the LLM fills for an analysis (its JSON Schema goes to structured output)."""

    model_config = ConfigDict(extra="forbid")

    sentiment: Sentiment
    score: float = Field(ge=-1.0, le=1.0, description="-1 very negative .. 1 very positive")
    emotions: list[str] = Field(max_length=8, description="lower-case emotion words, e.g. joy, anger")
    summary: str = Field(max_length=300, description="one line")
    key_phrases: list[str] = Field(max_length=10, description="short phrases from the text")


ANALYSIS_SCHEMA = make_strict_schema(SentimentResult.model_json_schema())

SYSTEM_PROMPT = """You analyse the sentiment of a text. Answer with one JSON object following the schema:
sentiment (positive, negative, neutral or mixed), score from -1 to 1, the emotions expressed,
a one-line summary, and the key phrases. If the text asks about a quoted passage, analyse the passage."""

_QUOTED = re.compile(r"[\"“”«»]([^\"“”«»]{1,4000})[\"“”«»]")
_ASKS_ABOUT = re.compile(r"\b(sentiment|convey|tone|feel|feeling|mood|analy[sz]e|emotion)", re.IGNORECASE)


def analysis_subject(text: str) -> str:
    """The passage to analyse: the quoted part of 'What sentiment does this convey: "…"'."""
    match = _QUOTED.search(text)
    if match and _ASKS_ABOUT.search(text[:match.start()] + text[match.end():]):
        return match.group(1).strip()
    return text.strip()


def _parse_analysis(completion: Completion) -> SentimentResult:
    data = extract_json(completion.content, completion.reasoning)
    if isinstance(data, dict) and isinstance(data.get("score"), (int, float)):
        data["score"] = max(-1.0, min(1.0, float(data["score"])))  # a little off is not worth a re-ask
    if isinstance(data, dict) and isinstance(data.get("sentiment"), str):
        data["sentiment"] = data["sentiment"].strip().lower()
    return validate_json(SentimentResult, data)


def _cache_key(text: str) -> str:
    return " ".join(text.split()).casefold()


class SentimentAnalyzer:
    """Analyzer (core/pipeline.py): LLM chain first, VADER when it fails or is absent."""

    def __init__(self, chain: ProviderChain | None = None, *, cache_size: int = CACHE_SIZE,
                 deadline_s: float = ANALYSIS_DEADLINE_S) -> None:
        self.chain = chain
        self.deadline_s = deadline_s
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def analyze(self, text: str, *, correlation_id: str = "") -> dict[str, Any]:
        """At least: sentiment, score, provider, model; with an LLM also emotions, summary, key_phrases."""
        subject = analysis_subject(text)
        key = _cache_key(subject)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return dict(hit, cached=True)
        result, cacheable = self._analyze(subject, correlation_id)
        if subject != text.strip():
            result["analyzed_text"] = subject
        if cacheable:
            with self._lock:
                self._cache[key] = dict(result)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return dict(result, cached=False)

    def _analyze(self, subject: str, correlation_id: str) -> tuple[dict[str, Any], bool]:
        if not self.chain:
            return offline_sentiment(subject), True
        task = StructuredTask(task="analysis", parse=_parse_analysis, schema=ANALYSIS_SCHEMA,
                              schema_name="sentiment_analysis", max_tokens=400, temperature=0.0, trimmable=True,
                              messages=[{"role": "system", "content": SYSTEM_PROMPT},
                                        {"role": "user", "content": subject}])
        try:
            answer = self.chain.run(task, correlation_id=correlation_id, deadline_s=self.deadline_s)
        except AllProvidersFailed as failed:
            result = offline_sentiment(subject)
            result["notes"] = [f"{failed}; used offline sentiment (VADER)"]
            # Not cached: the providers may be back for the next identical request.
            return result, False
        value = answer.value
        result = value.model_dump()
        result.update(provider=answer.provider_tag, model=answer.model)
        notes = [f"{describe_failures(answer.failures)}; used {answer.label}"] if answer.failures else []
        notes += answer.notes
        if notes:
            result["notes"] = notes
        return result, True
