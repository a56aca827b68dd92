"""Retries and pacing for outgoing Slack Web API calls.

Slack's limits are in docs/SLACK_RULES.md ("Rate limits"): chat.postMessage about one per
second per channel, chat.update about one new content every 3 s per message, and a 429
that says in `Retry-After` how long to wait. Two layers deal with them:

- Retries belong to the WebClient: `retrying_web_client` (or `use_slack_retries` on a
  client built elsewhere) gives it slack_sdk's retry handlers: a 429 waits `Retry-After`
  (capped, and told to the channel's pacer first), a 5xx or a dropped connection backs
  off and tries again; anything else is raised at once (a bad request will not get better).
  Every call the agent makes, uploads included, is retried there and nowhere else.
- Pacing is this project's own policy, so that retries are rare: `ChannelPacer` hands out
  send slots at least `interval_s` apart per channel, and `UpdateCoalescer` keeps only the
  newest content per message and sends it when the message's slot comes; a 429 that
  outlasts the client's retries pushes the slot back by `Retry-After`, and the content
  that is newest by then is what gets sent.
- The farm's budget (storage/db/budget.py) is shared by every node on the database: an
  important send (placeholder, stage change, final) takes a token first, a final waits
  for one (`FINAL_WAIT_S`, then it goes anyway and the client's 429 retry covers it), and
  frame progress is sent only when the bucket holds more than the reserve; otherwise it
  stays pending, newest content wins, and it is tried again when a token may be there.

Every Web API attempt (retries included) is reported to the listeners registered with
`add_call_listener` (the node's Prometheus counters of calls and 429s by method).
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    BackoffRetryIntervalCalculator,
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

from ..storage.db.budget import Priority, SlackBudget

log = logging.getLogger(__name__)

FINAL_WAIT_S = 60.0  # the longest a final result waits for the farm's budget (one Slack window)

MAX_RETRIES = 3  # retries after the first try, all reasons together: four tries at most
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is waited in pieces, not trusted whole
RETRY_BACKOFF_S = 0.5  # the first wait after a 5xx or a dropped connection; it doubles

RateLimitListener = Callable[[str, float], None]  # (channel, or "" when the call names none; seconds)


def _retry_after(headers: Mapping[str, Any] | None, default: float = 1.0) -> float:
    """Seconds from a `Retry-After` header (any case, a list or a plain value), capped."""
    raw: Any = None
    for key, value in dict(headers or {}).items():
        if str(key).lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
    try:
        wait = float(raw) if raw is not None else default
    except (TypeError, ValueError):
        wait = default
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)


def retry_after_s(exc: SlackApiError, default: float = 1.0) -> float | None:
    """Seconds to wait when `exc` is a rate limit (a 429 the client's retries did not
    outlast); None when it is not one."""
    resp = exc.response
    if int(getattr(resp, "status_code", 0) or 0) != 429:
        return None
    return _retry_after(getattr(resp, "headers", None), default)


def request_channel(request: HttpRequest) -> str:
    """The channel a Web API request names ("" if none): chat.* calls send JSON, others a form."""
    data = request.data or b""
    try:
        body = json.loads(data)
    except ValueError:
        body = {k: v[0] for k, v in parse_qs(data.decode("utf-8", "replace")).items()}
    channel = body.get("channel", "") if isinstance(body, dict) else ""
    return channel if isinstance(channel, str) else ""


class PacedRateLimitHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 retry, with `Retry-After` read leniently and capped, and told to the
    listeners (the outboxes' channel pacers) before the wait, so that the other sends to
    that channel wait their turn instead of running into the same limit."""

    def __init__(self, max_retry_count: int = MAX_RETRIES, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.listeners: list[RateLimitListener] = []
        self._sleep = sleep

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None, error: Exception | None = None) -> None:
        if response is None:  # not a 429 answer after all: nothing to wait for
            if error is not None:
                raise error
            return
        wait = _retry_after(response.headers)
        channel = request_channel(request)
        log.warning("%s rate limited; waiting %.1fs (Retry-After)", request.url.rsplit("/", 1)[-1], wait)
        for listener in list(self.listeners):
            listener(channel, wait)
        state.next_attempt_requested = True
        self._sleep(wait)
        state.increment_current_attempt()


CallListener = Callable[[str, int], None]  # (method, HTTP status; 0 when no answer came)
_call_listeners: list[weakref.ref[Any]] = []
_call_listeners_lock = threading.Lock()


def add_call_listener(listener: CallListener) -> None:
    """Tell `listener` about every Web API attempt of every client in this process. Held
    weakly (a bound method lives as long as its object), so a node's metrics that are
    dropped stop counting."""
    ref: weakref.ref[Any] = (weakref.WeakMethod(listener) if hasattr(listener, "__self__")
                             else weakref.ref(listener))
    with _call_listeners_lock:
        _call_listeners.append(ref)


def _report_call(method: str, status: int) -> None:
    with _call_listeners_lock:
        alive = [r for r in _call_listeners if r() is not None]
        _call_listeners[:] = alive
    for ref in alive:
        listener = ref()
        if listener is None:
            continue
        try:
            listener(method, status)
        except Exception:  # metrics must never break a Slack call
            log.debug("Slack call listener failed", exc_info=True)


class CallObserver(RetryHandler):
    """Counts every attempt; never retries. It goes first in the client's handlers: slack_sdk
    asks each handler in turn after every answer (200 included) until one retries."""

    def can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                  error: Exception | None = None) -> bool:
        _report_call(request.url.rsplit("/", 1)[-1], response.status_code if response is not None else 0)
        return False


class AnyServerErrorRetryHandler(ServerErrorRetryHandler):
    """slack_sdk's 5xx retry for every 5xx: its own covers 500 and 503 only, and a proxy or
    load balancer in front of the API answers 502 and 504 too."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        return response is not None and response.status_code >= 500


_BUILTIN = (ConnectionErrorRetryHandler, RateLimitErrorRetryHandler, ServerErrorRetryHandler, CallObserver)


def slack_retry_handlers() -> list[RetryHandler]:
    """The retries every Web API call of the agent gets (one set per client)."""
    backoff = BackoffRetryIntervalCalculator(backoff_factor=RETRY_BACKOFF_S)
    return [CallObserver(),
            ConnectionErrorRetryHandler(max_retry_count=MAX_RETRIES, interval_calculator=backoff,
                                        error_types=[OSError]),  # resets, refusals, timeouts
            PacedRateLimitHandler(MAX_RETRIES),
            AnyServerErrorRetryHandler(max_retry_count=MAX_RETRIES, interval_calculator=backoff)]


def retrying_web_client(token: str, base_url: str, *, timeout: int = 30) -> WebClient:
    """A WebClient whose calls are retried as this module describes."""
    return WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=slack_retry_handlers())


def use_slack_retries(web: WebClient) -> PacedRateLimitHandler:
    """The client's 429 handler. A client built without `retrying_web_client` gets this
    module's handlers now (in place of slack_sdk's built-in ones; others are kept)."""
    for handler in web.retry_handlers:
        if isinstance(handler, PacedRateLimitHandler):
            return handler
    ours = slack_retry_handlers()
    web.retry_handlers = ours + [h for h in web.retry_handlers if not isinstance(h, _BUILTIN)]
    return next(h for h in ours if isinstance(h, PacedRateLimitHandler))


class ChannelPacer:
    """At most one send per `interval_s` per channel. `wait_turn` blocks the calling I/O
    thread until its slot; slots are reserved in call order, so sends stay ordered."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, channel: str) -> float:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(channel, 0.0))
            self._next[channel] = slot + self.interval_s
            return slot

    def wait_turn(self, channel: str) -> None:
        delay = self.reserve(channel) - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def push_back(self, channel: str, seconds: float) -> None:
        """After a 429: no slot for this channel before now + seconds."""
        with self._lock:
            self._next[channel] = max(self._next.get(channel, 0.0), time.monotonic() + seconds)


UpdateSender = Callable[[str, str, str, list[dict[str, Any]]], None]  # channel, ts, text, blocks


@dataclass
class _MessageState:
    channel: str
    ts: str
    next_at: float = 0.0
    pending: tuple[str, list[dict[str, Any]]] | None = None
    important: bool = False  # the pending content holds a stage change (spent before progress)
    in_flight: bool = False
    idle: threading.Condition = field(default_factory=lambda: threading.Condition(threading.Lock()))


class UpdateCoalescer:
    """chat.update at most once per `interval_s` per message, newest content wins.

    `set()` never blocks (job listeners call it); a scheduler thread sends due updates on
    the given executor. `flush()` waits until a message has nothing pending (used before
    the final update so the order in the channel stays placeholder, progress, result).
    A 429 is first retried by the client (see the module docstring); one that outlasts
    those retries pushes the message's slot back here.
    """

    def __init__(self, send: UpdateSender, executor: ThreadPoolExecutor, *, interval_s: float = 3.0,
                 budget: SlackBudget | None = None) -> None:
        self._send = send
        self.budget = budget
        self._executor = executor
        self.interval_s = interval_s
        self._states: dict[tuple[str, str], _MessageState] = {}
        self._heap: list[tuple[float, str, str]] = []
        self._lock = threading.Condition(threading.Lock())
        self._stopped = False
        # Daemon: a quitting Blender must not wait for a progress update.
        self._thread = threading.Thread(target=self._run, name="slackai-update-pacer", daemon=True)
        self._thread.start()

    def started(self, channel: str, ts: str) -> None:
        """The message was just posted: its first update may come one interval later."""
        with self._lock:
            st = self._states.setdefault((channel, ts), _MessageState(channel, ts))
            st.next_at = time.monotonic() + self.interval_s

    def set(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]], *, important: bool = False) -> None:
        """Queue new content; `important` (a stage change) is spent before frame progress
        and stays important until sent, even when newer progress replaces the content."""
        with self._lock:
            st = self._states.setdefault((channel, ts), _MessageState(channel, ts))
            st.pending = (text, blocks)
            st.important = st.important or important
            heapq.heappush(self._heap, (st.next_at, channel, ts))
            self._lock.notify()

    def discard(self, channel: str, ts: str) -> None:
        """Drop a pending (not yet sent) update, e.g. stale progress once a job ended."""
        with self._lock:
            st = self._states.get((channel, ts))
            if st is not None:
                st.pending = None
                st.important = False

    def flush(self, channel: str, ts: str, timeout: float = 120.0) -> bool:
        """Wait until the message has no pending or in-flight update."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                st = self._states.get((channel, ts))
                if st is None or (st.pending is None and not st.in_flight):
                    return True
            time.sleep(0.02)
        return False

    def send_final(self, channel: str, ts: str, send: Callable[[], None], timeout: float = 120.0) -> None:
        """Send the last update of a message: drops stale pending progress, waits for an
        in-flight update and for the message's slot, then calls `send` (retried by the
        client), so the final content is never overtaken by an older one."""
        self.discard(channel, ts)
        self.flush(channel, ts, timeout)
        with self._lock:
            st = self._states.setdefault((channel, ts), _MessageState(channel, ts))
            st.in_flight = True
            delay = st.next_at - time.monotonic()
        try:
            if delay > 0:
                time.sleep(min(delay, timeout))
            if self.budget is not None and not self.budget.acquire(self.budget.update, Priority.IMPORTANT, channel,
                                                                   timeout=min(FINAL_WAIT_S, timeout)):
                log.warning("no chat.update budget for a final update after %.0fs; sending it anyway", FINAL_WAIT_S)
            send()
        finally:
            with self._lock:
                st.in_flight = False
                st.next_at = time.monotonic() + self.interval_s

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()

    # ------------------------------------------------------------------ scheduler
    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                if not self._heap:
                    self._lock.wait(1.0)
                    continue
                due, channel, ts = self._heap[0]
                now = time.monotonic()
                if due > now:
                    self._lock.wait(due - now)
                    continue
                heapq.heappop(self._heap)
                st = self._states.get((channel, ts))
                if st is None or st.pending is None or st.in_flight:
                    continue
                if st.next_at > now:  # pushed back by a 429 or a newer send: requeue
                    heapq.heappush(self._heap, (st.next_at, channel, ts))
                    continue
                text, blocks = st.pending
                important = st.important
                st.pending = None
                st.important = False
                st.in_flight = True
                st.next_at = now + self.interval_s
            try:
                self._executor.submit(self._send_one, st, text, blocks, important)
            except RuntimeError:  # executor shut down: nothing more will be sent
                with self._lock:
                    st.in_flight = False
                return

    def _spend(self, st: _MessageState, text: str, blocks: list[dict[str, Any]], important: bool) -> bool:
        """Take a token from the farm's budget; without one, keep the content (unless newer
        came) and try again when a token may be there."""
        if self.budget is None:
            return True
        priority = Priority.IMPORTANT if important else Priority.PROGRESS
        try:
            wait = self.budget.try_take(self.budget.update, priority, st.channel)
        except Exception:  # the budget falls back on its own; this is a bug, not an outage
            log.exception("Slack budget failed; sending the update anyway")
            return True
        if wait <= 0:
            return True
        with self._lock:
            st.in_flight = False
            if st.pending is None:
                st.pending = (text, blocks)
            st.important = st.important or important
            st.next_at = max(st.next_at, time.monotonic() + wait)
            heapq.heappush(self._heap, (st.next_at, st.channel, st.ts))
            self._lock.notify()
        return False

    def _send_one(self, st: _MessageState, text: str, blocks: list[dict[str, Any]], important: bool = False) -> None:
        if not self._spend(st, text, blocks, important):
            return
        retry_at: float | None = None
        try:
            self._send(st.channel, st.ts, text, blocks)
        except SlackApiError as exc:
            wait = retry_after_s(exc)
            if wait is not None:
                log.warning("chat.update rate limited; next update in %.1fs", wait)
                retry_at = time.monotonic() + wait
            else:
                log.error("chat.update failed: %s", exc.response.get("error", exc) if exc.response else exc)
        except BaseException:  # the pool would swallow it; log so a silent placeholder is explained
            log.exception("chat.update failed")
        finally:
            with self._lock:
                st.in_flight = False
                if retry_at is not None:
                    st.next_at = max(st.next_at, retry_at)
                    if st.pending is None:  # nothing newer: send this content again later
                        st.pending = (text, blocks)
                if st.pending is not None:
                    heapq.heappush(self._heap, (st.next_at, st.channel, st.ts))
                    self._lock.notify()
