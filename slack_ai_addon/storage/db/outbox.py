"""A local JSON-lines outbox for database writes made while the database is down.

Each line is one record with an idempotency key: `{"key": ..., "type": "save" | "messages" |
"llm_calls" | "audit_log", "data": {...}}`. Lines are replayed in order once the database
answers again; history rows carry the key in a unique column, so a replay interrupted
half-way (or run twice by two processes) writes each record exactly once. The file is
locked with flock where the OS has it, so processes of one node can share it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

try:  # POSIX only; on Windows the in-process lock is all we have
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _locked(self, mode: str) -> Iterator[IO[str]]:
        with self._lock, open(self.path, mode, encoding="utf-8") as fh:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield fh
            finally:
                if fcntl is not None:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def pending(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def append(self, kind: str, key: str, data: dict[str, Any]) -> None:
        line = json.dumps({"key": key, "type": kind, "data": data}, separators=(",", ":"), default=str)
        with self._locked("a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())  # the point of the outbox is to survive a crash

    def entries(self) -> list[dict[str, Any]]:
        if not self.pending():
            return []
        with self._locked("r") as fh:
            return _parse(fh.read())

    def latest_job(self, job_id: str) -> dict[str, Any] | None:
        """The newest buffered save of a job (what `get` answers while the DB is down)."""
        found = None
        for entry in self.entries():
            if entry["type"] == "save" and entry["data"].get("id") == job_id:
                found = entry["data"]
        return found

    def replay(self, apply: Callable[[dict[str, Any]], None]) -> int:
        """Apply every entry in order; applied ones are removed even if a later one fails
        (the failure propagates and the rest stays for the next try)."""
        if not self.pending():
            return 0
        with self._locked("r+") as fh:
            entries = _parse(fh.read())
            done = 0
            try:
                for entry in entries:
                    apply(entry)
                    done += 1
            finally:
                rest = entries[done:]
                fh.seek(0)
                fh.truncate()
                for entry in rest:
                    fh.write(json.dumps(entry, separators=(",", ":"), default=str) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            if done:
                log.info("outbox replayed %d record(s)", done)
            return done


def _parse(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            # A torn last line after a crash: drop it rather than block every later record.
            log.warning("outbox: skipping unreadable line")
    return out
