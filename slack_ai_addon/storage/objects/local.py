"""The embedded default object store: the local output folder, with the S3 key layout."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ...core.jobs import Job, JobOutput
from ...core.pipeline import UploadListener
from .base import content_type_for, object_key

log = logging.getLogger(__name__)


class LocalOutputStore:
    """Files go to `<output_dir>/renders/YYYY/MM/DD/<job_id>/<file>`; `url` is a file:// URI.

    A hard link when the file system allows it (no extra space), else a copy; the job's own
    files are never moved, so paths already handed out stay valid.
    """

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir

    def store(self, job: Job, outputs: list[JobOutput]) -> list[JobOutput]:
        stored = []
        for out in outputs:
            src = Path(out.path)
            key = object_key(job, src.name)
            dest = self.output_dir / key
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.resolve() != src.resolve():
                if dest.exists():
                    dest.unlink()
                try:
                    os.link(src, dest)
                except OSError:
                    shutil.copy2(src, dest)
            stored.append(JobOutput(out.role, out.path, content_type_for(out.path, out.content_type),
                                    out.size_bytes or src.stat().st_size, key, dest.resolve().as_uri(),
                                    out.slack_file_id))
        return stored

    def retry_pending(self) -> int:
        return 0  # nothing can be pending locally

    def add_upload_listener(self, listener: UploadListener) -> None:
        pass  # nothing is ever uploaded late

    def close(self) -> None:
        pass
