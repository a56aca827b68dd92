"""The real job store for tests: SQLite in a temporary folder, with the history tables
readable as lists (what tests assert on).

Tests run against the same `SqlJobStore` as production (fenced transitions, outbox,
migrations): there is no second, in-memory implementation whose behaviour could drift.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from slack_ai_addon.storage.db import open_sql_store
from slack_ai_addon.storage.db.store import SqlJobStore


class JobStoreForTests(SqlJobStore):
    def _table(self, table: str) -> list[dict[str, Any]]:
        with self._tx() as cur:
            rows = self._rows(self._exec(cur, f"SELECT * FROM {table} ORDER BY id"))  # noqa: S608 (fixed names)
        return rows

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self._table("messages")

    @property
    def llm_calls(self) -> list[dict[str, Any]]:
        return self._table("llm_calls")

    @property
    def audit(self) -> list[dict[str, Any]]:
        return self._table("audit_log")


def temp_job_store(folder: Path | None = None) -> JobStoreForTests:
    """A migrated SQLite job store in `folder` (default: a new temporary folder)."""
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="slackai-test-db-"))
    folder.mkdir(parents=True, exist_ok=True)
    store = open_sql_store(f"sqlite:///{folder / 'jobs.db'}", outbox_path=folder / "outbox.jsonl")
    store.__class__ = JobStoreForTests
    return store  # type: ignore[return-value]
