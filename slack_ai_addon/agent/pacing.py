"""Pacing and retries for outgoing Slack Web API calls.

Slack's limits (reference/slack.md section 3): chat.postMessage about 1 per second per
channel; chat.update at most one new content every 3 s per message (Tier 3); every 429
comes with `Retry-After`. Three pieces enforce that:

- `call_slack`: one call with retries: waits `Retry-After` on 429, backs off on 5xx and
  connection errors, re-raises anything else at once (a bad request will not get better).
- `ChannelPacer`: hands out send slots at least `interval_s` apart per channel.
- `UpdateCoalescer`: keeps only the newest content per message and sends it when the
  message's slot comes; a 429 pushes the slot back by `Retry-After`, and the content that
  is newest by then is what gets sent.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_RETRY_AFTER_S = 60.0
_TRANSIENT = (ConnectionError, TimeoutError, OSError)


def retry_after_s(exc: SlackApiError, default: float = 1.0) -> float | None:
    """Seconds to wait when `exc` is a rate limit; None when it is not one."""
    resp = exc.response
    status = getattr(resp, "status_code", 0)
    error = ""
    try:
        error = str(resp.get("error", "")) if resp is not None else ""
    except Exception:  # a non-JSON body (HTML 5xx page) has no .get
        error = ""
    if status != 429 and error != "ratelimited":
        return None
    headers = getattr(resp, "headers", {}) or {}
    raw = None
    for key, value in dict(headers).items():
        if str(key).lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
    try:
        wait = float(raw) if raw is not None else default
    except (TypeError, ValueError):
        wait = default
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)


def is_server_error(exc: SlackApiError) -> bool:
    return int(getattr(exc.response, "status_code", 0) or 0) >= 500


def call_slack(fn: Callable[[], T], *, what: str, attempts: int = 4, sleep: Callable[[float], None] = time.sleep,
               on_rate_limited: Callable[[float], None] | None = None) -> T:
    """Run one Web API call, retrying rate limits, 5xx answers and dropped connections."""
    backoff = 0.5
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except SlackApiError as exc:
            wait = retry_after_s(exc)
            if wait is not None and attempt < attempts:
                log.warning("%s rate limited; waiting %.1fs (Retry-After)", what, wait)
                if on_rate_limited is not None:
                    on_rate_limited(wait)
                sleep(wait)
                continue
            if is_server_error(exc) and attempt < attempts:
                log.warning("%s got HTTP %s; retrying in %.1fs", what, exc.response.status_code, backoff)
                sleep(backoff)
                backoff *= 2
                continue
            raise
        except _TRANSIENT as exc:
            if attempt >= attempts:
                raise
            log.warning("%s failed (%s); retrying in %.1fs", what, type(exc).__name__, backoff)
            sleep(backoff)
            backoff *= 2
    raise RuntimeError("unreachable")  # pragma: no cover - the loop returns or raises


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
    in_flight: bool = False
    sent: int = 0
    idle: threading.Condition = field(default_factory=lambda: threading.Condition(threading.Lock()))


class UpdateCoalescer:
    """chat.update at most once per `interval_s` per message, newest content wins.

    `set()` never blocks (job listeners call it); a scheduler thread sends due updates on
    the given executor. `flush()` waits until a message has nothing pending (used before
    the final update so the order in the channel stays placeholder, progress, result).
    """

    def __init__(self, send: UpdateSender, executor: ThreadPoolExecutor, *, interval_s: float = 3.0) -> None:
        self._send = send
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

    def set(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        with self._lock:
            st = self._states.setdefault((channel, ts), _MessageState(channel, ts))
            st.pending = (text, blocks)
            heapq.heappush(self._heap, (st.next_at, channel, ts))
            self._lock.notify()

    def discard(self, channel: str, ts: str) -> None:
        """Drop a pending (not yet sent) update, e.g. stale progress once a job ended."""
        with self._lock:
            st = self._states.get((channel, ts))
            if st is not None:
                st.pending = None

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
        in-flight update and for the message's slot, then calls `send` (which does its own
        retries), so the final content is never overtaken by an older one."""
        self.discard(channel, ts)
        self.flush(channel, ts, timeout)
        with self._lock:
            st = self._states.setdefault((channel, ts), _MessageState(channel, ts))
            st.in_flight = True
            delay = st.next_at - time.monotonic()
        try:
            if delay > 0:
                time.sleep(min(delay, timeout))
            send()
            with self._lock:
                st.sent += 1
        finally:
            with self._lock:
                st.in_flight = False
                st.next_at = time.monotonic() + self.interval_s

    def forget(self, channel: str, ts: str) -> None:
        with self._lock:
            st = self._states.get((channel, ts))
            if st is not None and st.pending is None and not st.in_flight:
                del self._states[(channel, ts)]

    def sent_count(self, channel: str, ts: str) -> int:
        with self._lock:
            st = self._states.get((channel, ts))
            return st.sent if st else 0

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
                st.pending = None
                st.in_flight = True
                st.next_at = now + self.interval_s
            try:
                self._executor.submit(self._send_one, st, text, blocks)
            except RuntimeError:  # executor shut down: nothing more will be sent
                with self._lock:
                    st.in_flight = False
                return

    def _send_one(self, st: _MessageState, text: str, blocks: list[dict[str, Any]]) -> None:
        retry_at: float | None = None
        try:
            self._send(st.channel, st.ts, text, blocks)
            with self._lock:
                st.sent += 1
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
