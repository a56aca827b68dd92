"""What both object stores share: key layout, content types, metadata, the upload queue."""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ...core.jobs import Job
from ...core.pipeline import OutputStore

log = logging.getLogger(__name__)

KEY_PREFIX = "renders"
_CONTENT_TYPES = {".mp4": "video/mp4", ".gif": "image/gif", ".png": "image/png", ".jpg": "image/jpeg",
                  ".jpeg": "image/jpeg", ".webp": "image/webp", ".json": "application/json",
                  ".blend": "application/x-blender", ".exr": "image/x-exr"}


# The object-storage port is `core.pipeline.OutputStore` (store, retry_pending,
# add_upload_listener, close); both stores here implement it.
ManagedOutputStore = OutputStore


def object_key(job: Job, filename: str) -> str:
    """renders/YYYY/MM/DD/<job_id>/<file>, dated by the job's creation (UTC)."""
    day = time.strftime("%Y/%m/%d", time.gmtime(job.created_at))
    return f"{KEY_PREFIX}/{day}/{job.id}/{Path(filename).name}"


def content_type_for(path: str, declared: str = "") -> str:
    if declared and declared != "application/octet-stream":
        return declared
    ext = Path(path).suffix.lower()
    return _CONTENT_TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def prompt_hash(text: str) -> str:
    """Metadata carries a hash, not the prompt: object metadata is visible to anyone with read access."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def object_metadata(job: Job) -> dict[str, str]:
    # S3 user metadata must be ASCII; ids and hashes are.
    def ascii_only(value: str) -> str:
        return value.encode("ascii", "replace").decode("ascii")[:256]

    return {"job-id": ascii_only(job.id), "requester": ascii_only(job.requester.user_id or job.requester.source),
            "prompt-sha256": prompt_hash(job.request_text), "correlation-id": ascii_only(job.correlation_id)}


@dataclass
class PendingUpload:
    key: str
    path: str
    content_type: str
    metadata: dict[str, str]
    job_id: str
    queued_at: float


class UploadQueue:
    """Uploads that could not be made yet, persisted as JSON lines in the output folder."""

    FILENAME = ".upload-queue.jsonl"

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / self.FILENAME
        self._lock = threading.Lock()

    def load(self) -> list[PendingUpload]:
        with self._lock:
            return self._load()

    def _load(self) -> list[PendingUpload]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        items: dict[str, PendingUpload] = {}
        for line in text.splitlines():
            try:
                item = PendingUpload(**json.loads(line))
            except (ValueError, TypeError):
                log.warning("upload queue: skipping unreadable line")
                continue
            items[item.key] = item  # the last entry for a key wins: no double uploads
        return list(items.values())

    def add(self, items: list[PendingUpload]) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                for item in items:
                    fh.write(json.dumps(asdict(item)) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def remove(self, finished: list[PendingUpload]) -> None:
        """Drop finished entries, keeping anything queued meanwhile (atomic rewrite)."""
        gone = {(i.key, i.queued_at) for i in finished}
        with self._lock:
            rest = [i for i in self._load() if (i.key, i.queued_at) not in gone]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(asdict(i)) + "\n" for i in rest), encoding="utf-8")
            os.replace(tmp, self.path)
