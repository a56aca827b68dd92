"""Recording every LLM attempt in the store's llm_calls history (ActivityRecorder).

Failures to record are logged and swallowed: accounting must never break a request.
Rows carry no prompt text and no keys; error classes are taxonomy names.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..core.jobs import ActivityRecorder
from .prices import cost_usd

log = logging.getLogger(__name__)

# (provider, cost_usd, error_class) of every attempt, for the node's /metrics. Process-wide:
# one node is one process, and a chain is built in several places (interpreter, analyzer).
CallObserver = Callable[[str, float, str], None]
_observers: list[CallObserver] = []
_observers_lock = threading.Lock()


def observe_calls(observer: CallObserver) -> Callable[[], None]:
    """Call `observer(provider, cost_usd, error_class)` after every LLM attempt ("" = success).
    Returns the function that removes it again."""
    with _observers_lock:
        _observers.append(observer)

    def remove() -> None:
        with _observers_lock:
            if observer in _observers:
                _observers.remove(observer)
    return remove


class CallRecorder:
    """Records the chain's LLM calls in the history tables (or nowhere, without a store)."""

    def __init__(self, store: ActivityRecorder | None) -> None:
        self._record: Any = store.record_llm_call if store is not None else None
        self.total_cost_usd = 0.0

    def record(self, *, correlation_id: str, provider: str, requested_model: str, actual_model: str, task: str,
               latency_ms: float, prompt_tokens: int = 0, completion_tokens: int = 0, local: bool = False,
               error_class: str = "") -> float:
        """Record one attempt; returns its cost in USD."""
        cost = cost_usd(actual_model or requested_model, prompt_tokens, completion_tokens, local=local)
        self.total_cost_usd += cost
        log.info("llm call", extra={"correlation_id": correlation_id, "provider": provider, "task": task,
                                    "requested_model": requested_model, "actual_model": actual_model,
                                    "latency_ms": round(latency_ms, 1), "prompt_tokens": prompt_tokens,
                                    "completion_tokens": completion_tokens, "cost_usd": cost,
                                    "error_class": error_class})
        with _observers_lock:
            observers = list(_observers)
        for observer in observers:
            try:
                observer(provider, cost, error_class)
            except Exception:
                log.exception("an llm call observer failed")
        if self._record is None:
            return cost
        try:
            self._record(correlation_id=correlation_id, provider=provider, requested_model=requested_model,
                         actual_model=actual_model, task=task, latency_ms=round(latency_ms, 2),
                         prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost,
                         error_class=error_class)
        except Exception:
            log.exception("could not record an llm call")
        return cost
