"""One Slack Web API budget for the whole farm: token buckets in the `slack_budget` table.

Slack counts its rate limits per app and workspace, not per node: `chat.update` is Tier 3
(about 50 a minute), `chat.postMessage` about one a second per channel. Every node that
shares the database takes its tokens from the same rows, so N nodes together stay under one
limit. A take is one conditional UPDATE (sql.py, "the farm's Slack budget"): it refills the
bucket by the time since it was last written times the rate, capped at the capacity, and
takes one token only when enough are there. Nothing is held between takes.

Priorities: a send that must happen (placeholder, stage change, final result) needs one
token; a frame-progress update needs `reserve + 1`, so progress only spends what the
important sends leave over, and is coalesced or skipped (by the caller) when there is none.

Buckets are shaped so that no sliding window of Slack's can see more than the limit: the
capacity (the burst) is a few tokens, and the rate is `SAFETY` of the limit, which leaves
room for the burst and for sends that arrive bunched up after leaving their nodes spread out.

When the database cannot be reached (or does not answer within `DB_WAIT_S`), the node
falls back to a local bucket with its share of the rate: the limit divided by the nodes
the registry last showed alive (or by `FALLBACK_NODES` when it never answered). Database
calls run on one daemon thread with a bounded wait, so a hung database never holds a send
(and never a final result) longer than that.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

log = logging.getLogger(__name__)

SAFETY = 0.8  # share of Slack's limit the farm spends: the rest absorbs bursts and bunching
UPDATE_BURST = 4.0  # chat.update tokens a full bucket holds (a small burst; see the module doc)
UPDATE_RESERVE = 2.0  # chat.update tokens left for important sends: progress needs reserve + 1
POST_BURST = 2.0  # chat.postMessage tokens per channel (Slack allows "short bursts >1")
POST_RESERVE = 0.0  # every post is important (placeholder, error, final): no reserve
DB_WAIT_S = 1.0  # the longest a take waits for the database before using the local share
DB_RETRY_S = 5.0  # after a database failure, the local share is used this long before trying again
NODES_REFRESH_S = 30.0  # how often the live node count (the local share) is read from the registry
FALLBACK_NODES = 4  # the share when the registry never answered: a conservative guess
MAX_SLEEP_S = 0.5  # a waiting send looks again at least this often (other nodes refill nothing)


class Priority(IntEnum):
    """Important sends spend first; progress only what they leave."""

    PROGRESS = 0  # frame progress: coalesced or skipped when the budget is short
    IMPORTANT = 1  # placeholder, stage changes, the final result: never dropped


@dataclass(frozen=True)
class BucketSpec:
    """A Slack limit as a token bucket: `limit` calls per `per_s` seconds."""

    method: str
    limit: float
    per_s: float
    burst: float
    reserve: float

    @property
    def rate(self) -> float:
        """Tokens per second the farm may spend (a safe share of Slack's limit)."""
        return max(self.limit * SAFETY - self.burst, self.limit * SAFETY / 2) / self.per_s

    def need(self, priority: Priority, share: int = 1) -> float:
        """Tokens that must be there to take one: 1, or 1 + the reserve (a node's share of
        it while it spends a local share) for progress."""
        return 1.0 if priority is Priority.IMPORTANT else 1.0 + self.reserve / share


class BudgetStore(Protocol):
    """What the budget needs from the job store (SqlJobStore has it)."""

    q: Any

    def _tx(self) -> Any: ...

    def list_nodes(self) -> list[Any]: ...


class _LocalBucket:
    """The in-process bucket: the fallback share, and the whole budget without a database."""

    def __init__(self, capacity: float) -> None:
        self.tokens = capacity
        self.updated = time.monotonic()

    def take(self, capacity: float, rate: float, need: float) -> float:
        now = time.monotonic()
        self.tokens = min(capacity, self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= need:
            self.tokens -= 1.0
            return 0.0
        return (need - self.tokens) / rate if rate > 0 else 1.0


class _DbLane:
    """One daemon thread that runs the database calls, so a caller can stop waiting."""

    def __init__(self) -> None:
        self._q: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], Any], timeout: float) -> Any:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                # Daemon: a database call that hangs must not keep a quitting node alive.
                self._thread = threading.Thread(target=self._run, name="slackai-budget-db", daemon=True)
                self._thread.start()
        fut: Future[Any] = Future()
        self._q.put((fn, fut))
        return fut.result(timeout)

    def _run(self) -> None:
        while True:
            fn, fut = self._q.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to the caller, who falls back
                fut.set_exception(exc)


class SlackBudget:
    """The farm's Slack budget, as seen from one node.

    `try_take(spec, key, priority)` returns 0.0 when a token was taken, else the seconds
    until one may be there; `acquire` waits for one (bounded). Without a store, or while
    the database is away, the node spends its local share (see the module doc).
    """

    def __init__(self, store: BudgetStore | None, *, workspace: str, updates_per_minute: float,
                 posts_per_second: float) -> None:
        self.store = store
        self.workspace = workspace
        self.update = BucketSpec("chat.update", updates_per_minute, 60.0, UPDATE_BURST, UPDATE_RESERVE)
        # Per minute too: Slack's "about 1 a second" is a long-run rate with short bursts.
        self.post = BucketSpec("chat.postMessage", posts_per_second * 60.0, 60.0, POST_BURST, POST_RESERVE)
        self._local: dict[str, _LocalBucket] = {}
        self._lock = threading.Lock()
        self._lane = _DbLane()
        self._db_down_until = 0.0
        self._live_nodes = 0  # 0: never read
        self._nodes_read_at = -NODES_REFRESH_S
        self.taken = {"db": 0, "local": 0}
        self.denied = 0

    @classmethod
    def for_node(cls, settings: Any, store: Any) -> SlackBudget:
        """The budget of a node's Slack client: keyed by its bot token (one app in one
        workspace), shared through `store` when it is a SQL store."""
        token = str(getattr(settings, "slack_bot_token", "") or "")
        workspace = hashlib.sha256(token.encode("utf-8")).hexdigest()[:12] if token else "none"
        shared = store if hasattr(store, "_tx") and hasattr(store, "q") else None
        return cls(shared, workspace=workspace,
                   updates_per_minute=float(getattr(settings, "slack_updates_per_minute", 50.0)),
                   posts_per_second=float(getattr(settings, "slack_posts_per_second", 1.0)))

    def bucket(self, spec: BucketSpec, channel: str = "") -> str:
        """The row name: method and workspace, and the channel for per-channel limits."""
        name = f"{spec.method}@{self.workspace}"
        return f"{name}:{channel}" if spec is self.post else name

    # ------------------------------------------------------------------ taking tokens
    def try_take(self, spec: BucketSpec, priority: Priority, channel: str = "") -> float:
        """Take one token now if the priority allows: 0.0, else seconds to wait."""
        key = self.bucket(spec, channel)
        wait = self._take_shared(spec, key, spec.need(priority))
        if wait is None:
            wait = self._take_local(spec, key, priority)
            if wait == 0.0:
                self.taken["local"] += 1
        elif wait == 0.0:
            self.taken["db"] += 1
        if wait > 0.0:
            self.denied += 1
        return wait

    def acquire(self, spec: BucketSpec, priority: Priority, channel: str = "", *, timeout: float) -> bool:
        """Wait up to `timeout` for a token; False when none came (the caller decides)."""
        deadline = time.monotonic() + timeout
        while True:
            wait = self.try_take(spec, priority, channel)
            if wait == 0.0:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # A little jitter, so nodes waiting on the same bucket do not all ask at once.
            time.sleep(min(wait * random.uniform(1.0, 1.2), MAX_SLEEP_S, left))  # noqa: S311 (not security)

    # ------------------------------------------------------------------ the shared bucket
    def _take_shared(self, spec: BucketSpec, key: str, need: float) -> float | None:
        """0.0 taken, > 0 wait, None: the database is away (use the local share)."""
        store = self.store
        if store is None or time.monotonic() < self._db_down_until:
            return None
        try:
            wait = self._lane.call(lambda: self._take_row(store, spec, key, need), DB_WAIT_S)
            self._refresh_live_nodes(store)
            return float(wait)
        except FutureTimeout:
            self._db_down(f"no answer in {DB_WAIT_S:g}s")
        except Exception as exc:  # DatabaseUnavailable, a driver error: the local share it is
            if isinstance(exc, getattr(getattr(store, "backend", None), "integrity_errors", ())):
                return 0.01  # two nodes created the same row at once (SQL Server): ask again
            self._db_down(f"{type(exc).__name__}: {exc}")
        return None

    def _take_row(self, store: BudgetStore, spec: BucketSpec, key: str, need: float) -> float:
        q = store.q
        now = time.time()
        params = {"bucket": key, "now": now, "rate": spec.rate, "capacity": spec.burst, "need": need}
        with store._tx() as cur:  # noqa: SLF001 (the store's unit of work, same package)
            cur.execute(q.budget_take(), params)
            if cur.rowcount == 1:
                return 0.0
            cur.execute(q.budget_level(), {k: params[k] for k in ("bucket", "now", "rate", "capacity")})
            row = cur.fetchone()
            if row is None:  # the first take ever: a full bucket, less this token
                cur.execute(q.budget_insert(), {"bucket": key, "tokens": spec.burst - 1.0, "now": now})
                return 0.0
        level = float(row[0])
        return max((need - level) / spec.rate, 0.001)

    def _db_down(self, why: str) -> None:
        if time.monotonic() >= self._db_down_until:
            log.warning("Slack budget: database unavailable (%s); spending this node's share for %.0fs",
                        why, DB_RETRY_S)
        self._db_down_until = time.monotonic() + DB_RETRY_S

    def _refresh_live_nodes(self, store: BudgetStore) -> None:
        now = time.monotonic()
        if now - self._nodes_read_at < NODES_REFRESH_S:
            return
        self._nodes_read_at = now
        try:
            nodes = self._lane.call(store.list_nodes, DB_WAIT_S)
            wall = time.time()
            self._live_nodes = sum(1 for n in nodes if n.shown_state(wall) != "offline")
        except Exception:
            log.debug("Slack budget: could not read the node registry", exc_info=True)

    # ------------------------------------------------------------------ the local share
    def share(self) -> int:
        """How many nodes the limit is split among while the database is away."""
        if self.store is None:
            return 1  # no shared database: this node is the farm
        return self._live_nodes if self._live_nodes > 0 else FALLBACK_NODES

    def _take_local(self, spec: BucketSpec, key: str, priority: Priority) -> float:
        share = self.share()
        need = spec.need(priority, share)
        capacity = max(spec.need(Priority.PROGRESS, share), spec.burst / share)
        with self._lock:
            bucket = self._local.get(key)
            if bucket is None:
                bucket = self._local[key] = _LocalBucket(capacity)
            return bucket.take(capacity, spec.rate / share, need)
