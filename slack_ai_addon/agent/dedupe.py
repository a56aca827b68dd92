"""Persistent TTL memory of what the agent has already handled.

Slack redelivers an unacked or slow event as a new envelope with the same `event_id`
(retries 1 min and 5 min later), and an @-mention in a channel arrives twice, as
`app_mention` and as `message`, sharing `(channel, ts)`. Both keys are kept at least
10 minutes (the last retry comes about 5 minutes after the first) in a small SQLite file,
so a restart of Blender does not render the same request twice.

The same file remembers which Slack thread belongs to which render job, so a reply in the
thread of a render finished before a restart can still edit it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 3600.0  # well above Slack's 10-minute retry window
_PRUNE_EVERY_S = 60.0


class DedupeStore:
    """Thread-safe "have I seen this key?" with a TTL; `path=None` keeps it in memory."""

    def __init__(self, path: str | Path | None = None, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.ttl_s = ttl_s
        self.path = str(path) if path else ":memory:"
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection guarded by a lock: the socket workers call this concurrently and
        # each call is a single tiny statement.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._last_prune = 0.0
        with self._lock:
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode survives a crash of Blender (not a power cut) without an
                # fsync per envelope: a lost key costs at most one duplicate reply.
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at REAL NOT NULL)")
            self._conn.execute("CREATE TABLE IF NOT EXISTS threads (channel TEXT NOT NULL, thread_ts TEXT NOT NULL,"
                               " job_id TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (channel, thread_ts))")

    def check_and_mark(self, key: str, now: float | None = None) -> bool:
        """True when `key` is new (and remembers it); False when it was seen within the TTL."""
        now = time.time() if now is None else now
        with self._lock:
            self._maybe_prune(now)
            row = self._conn.execute("SELECT at FROM seen WHERE key = ?", (key,)).fetchone()
            if row is not None and now - float(row[0]) < self.ttl_s:
                return False
            self._conn.execute("INSERT OR REPLACE INTO seen (key, at) VALUES (?, ?)", (key, now))
            return True

    def seen(self, key: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            row = self._conn.execute("SELECT at FROM seen WHERE key = ?", (key,)).fetchone()
            return row is not None and now - float(row[0]) < self.ttl_s

    def remember_thread(self, channel: str, thread_ts: str, job_id: str) -> None:
        """The latest render job of a Slack thread (follow-ups edit it)."""
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO threads (channel, thread_ts, job_id, at) VALUES (?, ?, ?, ?)",
                               (channel, thread_ts, job_id, time.time()))

    def thread_job(self, channel: str, thread_ts: str) -> str:
        with self._lock:
            row = self._conn.execute("SELECT job_id FROM threads WHERE channel = ? AND thread_ts = ?",
                                     (channel, thread_ts)).fetchone()
            return str(row[0]) if row else ""

    def _maybe_prune(self, now: float) -> None:
        if now - self._last_prune < _PRUNE_EVERY_S:
            return
        self._last_prune = now
        try:
            self._conn.execute("DELETE FROM seen WHERE at < ?", (now - self.ttl_s,))
        except sqlite3.Error:
            log.warning("dedupe prune failed", exc_info=True)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
