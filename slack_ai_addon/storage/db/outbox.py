"""A local JSON-lines outbox for database writes made while the database is down.

Each line is one record with an idempotency key: `{"key": ..., "type": "transition" |
"messages" | "llm_calls" | "audit_log", "data": {...}}`. Lines are replayed in order once the
database answers again. Job transitions carry their lease (the fencing token), so a replay
applies them only while that lease is still current; history rows carry the key in a unique
column, so a replay interrupted half-way (or run twice by two processes) writes each record
exactly once.

Two rules keep one bad line from stopping a node:
- an entry that cannot be applied for any reason other than "the database is still down"
  (bad data, a value the driver cannot encode, an unknown type) is moved to a quarantine
  file beside the outbox with the reason, logged once, and replay goes on with the next;
- the file is only ever replaced whole (temp file, fsync, rename), so a full disk or a crash
  mid-write leaves the previous contents intact. A write that does not fit is reported to
  the caller as `False` and logged; it never raises into the caller's work.

Processes of one node may share the file: a lock file beside it is taken with flock where
the OS has it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...files import replace_atomically

log = logging.getLogger(__name__)

try:  # POSIX only; on Windows the in-process lock is all we have
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


class StillUnavailable(Exception):
    """Raised by a replay's `apply` when the database is down again: stop, keep the rest."""


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.quarantine_path = path.with_name(path.stem + ".quarantine.jsonl")
        self._lock_path = path.with_name(path.name + ".lock")
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.last_error = ""  # the last write that could not be buffered (disk full), for health

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock, open(self._lock_path, "a", encoding="utf-8") as fh:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def pending(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _read_lines(self) -> list[str]:
        try:
            text = self.path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()]

    def _replace(self, path: Path, lines: list[str]) -> None:
        replace_atomically(path, "".join(line + "\n" for line in lines), errors="surrogateescape")

    def append(self, kind: str, key: str, data: dict[str, Any]) -> bool:
        """Buffer one record; False (logged, nothing lost of what was there) when it does not fit."""
        line = json.dumps({"key": key, "type": kind, "data": data}, separators=(",", ":"), default=str)
        try:
            with self._locked():
                self._replace(self.path, self._read_lines() + [line])
        except OSError as exc:
            self.last_error = f"could not buffer a {kind} record in {self.path}: {exc.strerror or exc}"
            log.error("outbox: %s; the %d record(s) already buffered are kept", self.last_error,
                      len(self._read_lines()))
            return False
        self.last_error = ""
        return True

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for line in self._read_lines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def entries_for_job(self, job_id: str) -> int:
        return sum(1 for e in self.entries() if e.get("type") == "transition"
                   and isinstance(e.get("data"), dict) and e["data"].get("job_id") == job_id)

    def quarantined(self) -> list[dict[str, Any]]:
        try:
            text = self.quarantine_path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _quarantine(self, line: str, reason: str) -> None:
        record = json.dumps({"at": time.time(), "reason": reason, "line": line}, separators=(",", ":"))
        existing: list[str] = []
        try:
            existing = self.quarantine_path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        except FileNotFoundError:
            pass
        self._replace(self.quarantine_path, [x for x in existing if x.strip()] + [record])
        log.error("outbox: an entry could not be applied and was moved to %s: %s", self.quarantine_path, reason)

    def replay(self, apply: Callable[[dict[str, Any]], None]) -> int:
        """Apply every entry in order; returns how many were applied.

        `apply` raises `StillUnavailable` when the database is down again: replay stops and
        the rest stays. Any other exception quarantines that one entry and replay goes on.
        """
        if not self.pending():
            return 0
        with self._locked():
            lines = self._read_lines()
            done = 0
            handled = 0
            try:
                for line in lines:
                    try:
                        entry = json.loads(line)
                        if not isinstance(entry, dict) or "type" not in entry or "data" not in entry:
                            raise ValueError("not an outbox record")
                    except ValueError as exc:
                        self._quarantine(line, f"unreadable: {exc}")
                        handled += 1
                        continue
                    try:
                        apply(entry)
                    except StillUnavailable:
                        break
                    except Exception as exc:
                        self._quarantine(line, f"{type(exc).__name__}: {exc}")
                        handled += 1
                        continue
                    done += 1
                    handled += 1
            finally:
                if handled:
                    try:
                        self._replace(self.path, lines[handled:])
                    except OSError as exc:
                        # Not rewritten: the entries stay and are replayed again (idempotent
                        # records; fenced transitions that are already applied are no-ops).
                        log.error("outbox: could not rewrite %s: %s", self.path, exc)
            if done:
                log.info("outbox replayed %d record(s)", done)
            return done
