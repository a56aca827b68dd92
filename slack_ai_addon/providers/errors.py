"""One error taxonomy for every provider; every message in it is redacted (`redact`, from
`slack_ai_addon.redaction`, so that keys are kept out of it the way they are everywhere else).

The "OpenAI-compatible" servers disagree on error shapes (Abacus reports out-of-credits
as a 400 with a non-OpenAI body, LM Studio puts plain strings in `error`, a context
overflow may even be a 200 with empty content), so classification reads the status
*and* the body text. Everything above this module only sees `ProviderError.kind`.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from ..redaction import redact as redact  # re-exported: the providers' callers import it from here

log = logging.getLogger(__name__)


class ErrorKind(StrEnum):
    TRANSIENT = "transient"  # connection refused, timeout, 5xx, 408/409
    RATE_LIMITED = "rate_limited"  # 429 (honour Retry-After)
    AUTH = "auth"  # 401/403: bad or missing key
    QUOTA_EXHAUSTED = "quota_exhausted"  # out of credits / insufficient_quota
    BAD_REQUEST = "bad_request"  # 400/422 we cannot fix by retrying
    MODEL_NOT_LOADED = "model_not_loaded"  # 404 model, LM Studio "No models loaded"
    CONTEXT_OVERFLOW = "context_overflow"  # prompt longer than the model's context
    REFUSAL = "refusal"  # the model declined (message.refusal, content filter)
    INVALID_OUTPUT = "invalid_output"  # not JSON, or JSON that violates the schema

    @property
    def retryable(self) -> bool:
        """Worth another attempt on the *same* provider."""
        return self in (ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED)

    @property
    def user_words(self) -> str:
        """How a Slack user would say it."""
        return _USER_WORDS[self]


_USER_WORDS: dict[ErrorKind, str] = {
    ErrorKind.TRANSIENT: "not reachable or timed out",
    ErrorKind.RATE_LIMITED: "rate limited",
    ErrorKind.AUTH: "bad key",
    ErrorKind.QUOTA_EXHAUSTED: "out of credits",
    ErrorKind.BAD_REQUEST: "rejected the request",
    ErrorKind.MODEL_NOT_LOADED: "no model loaded",
    ErrorKind.CONTEXT_OVERFLOW: "request too long for the model",
    ErrorKind.REFUSAL: "the model refused",
    ErrorKind.INVALID_OUTPUT: "unusable answer",
}


class ProviderError(Exception):
    """A failed provider call, already classified and redacted."""

    def __init__(self, kind: ErrorKind, message: str, *, provider: str = "", status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.provider = provider
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        code = f" (HTTP {self.status})" if self.status else ""
        return f"{where}{self.kind.value}{code}: {self.message}"


class InvalidOutput(ProviderError):
    """The answer arrived but is unusable; `repair_hint` goes back to the model once."""

    def __init__(self, message: str, *, provider: str = "", raw: str = "", repair_hint: str = "") -> None:
        super().__init__(ErrorKind.INVALID_OUTPUT, message, provider=provider)
        self.raw = raw
        self.repair_hint = repair_hint or message


# ------------------------------------------------------------------------- classification

def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), else None."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    raw_ms = lower.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = lower.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _body_text(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    try:
        return json.dumps(body, default=str)
    except (TypeError, ValueError):
        return str(body)


_CONTEXT_MARKERS = ("context length", "context_length", "maximum context", "n_keep", "context window",
                    "too many tokens", "context the overflows", "context overflow")
_QUOTA_MARKERS = ("no remaining credits", "insufficient_quota", "exceeded your current quota", "out of credits",
                  "billing")


def classify_status(status: int, body: Any, headers: Mapping[str, str] | None = None, *,
                    provider: str = "", secrets: Iterable[str] = ()) -> ProviderError:
    """Classify an HTTP error answer by status and body text."""
    text = _body_text(body)
    low = text.lower()
    message = redact(text[:300] or f"HTTP {status}", secrets)
    retry_after = parse_retry_after(headers)

    def err(kind: ErrorKind) -> ProviderError:
        return ProviderError(kind, message, provider=provider, status=status, retry_after=retry_after)

    # Abacus says "no remaining credits" with a 400 (sometimes 402/429): check the text first.
    if status == 402 or any(m in low for m in _QUOTA_MARKERS):
        return err(ErrorKind.QUOTA_EXHAUSTED)
    if status in (401, 403):
        return err(ErrorKind.AUTH)
    if any(m in low for m in _CONTEXT_MARKERS):
        return err(ErrorKind.CONTEXT_OVERFLOW)
    if status == 429:
        return err(ErrorKind.RATE_LIMITED)
    if status == 404 or "no models loaded" in low or "model_not_found" in low:
        return err(ErrorKind.MODEL_NOT_LOADED)
    if status in (408, 409) or status >= 500:
        return err(ErrorKind.TRANSIENT)
    if "content_filter" in low or "content policy" in low:
        return err(ErrorKind.REFUSAL)
    return err(ErrorKind.BAD_REQUEST)


def classify_exception(exc: BaseException, *, provider: str = "", secrets: Iterable[str] = ()) -> ProviderError:
    """Map an `openai` SDK exception (or anything else a call raised) to a ProviderError."""
    if isinstance(exc, ProviderError):
        return exc
    import openai  # only reached after a provider call, so the SDK is already imported

    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(ErrorKind.TRANSIENT, "timed out", provider=provider)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(ErrorKind.TRANSIENT, "connection failed", provider=provider)
    if isinstance(exc, openai.APIStatusError):
        headers = dict(exc.response.headers) if exc.response is not None else {}
        return classify_status(exc.status_code, exc.body, headers, provider=provider, secrets=secrets)
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return ProviderError(ErrorKind.REFUSAL, "content filter", provider=provider)
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderError(ErrorKind.INVALID_OUTPUT, "malformed response body", provider=provider)
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        # The SDK raises these when a 200 body is not JSON (a proxy's HTML page, a cut stream).
        return ProviderError(ErrorKind.INVALID_OUTPUT, redact(f"malformed response: {exc}"[:200], secrets),
                             provider=provider)
    return ProviderError(ErrorKind.TRANSIENT, redact(f"{type(exc).__name__}: {exc}"[:200], secrets),
                         provider=provider)
