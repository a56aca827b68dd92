"""Storage: the job database (SQLite / SQL Server) and object storage (S3 / local folder).

No bpy here. Heavy drivers (boto3, pymssql) are imported only when their backend is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core.config import Settings

if TYPE_CHECKING:
    from .db.store import SqlJobStore
    from .objects.base import ManagedOutputStore

__all__ = ["open_job_store", "open_output_store"]


def open_job_store(settings: Settings) -> SqlJobStore:
    """The JobStore + ActivityRecorder for `settings.resolved_database_url()`, migrated.

    `sqlite:///path.db` (WAL, folders created) or `mssql+pymssql://user:pass@host:1433/db`.
    Call `close()` when done.
    """
    from .db import open_sql_store

    return open_sql_store(settings.resolved_database_url())


def open_output_store(settings: Settings, output_dir: Path) -> ManagedOutputStore:
    """S3/MinIO when S3_BUCKET_NAME is set, else the local output folder.

    The result implements `core.pipeline.OutputStore` plus `retry_pending()` (upload what
    was queued while S3 was down) and `close()`.
    """
    if settings.s3_bucket_name:
        from .objects.s3 import S3OutputStore

        return S3OutputStore.from_settings(settings, output_dir)
    from .objects.local import LocalOutputStore

    return LocalOutputStore(output_dir)
