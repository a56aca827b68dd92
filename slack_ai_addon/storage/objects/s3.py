"""S3-compatible object storage (AWS S3, MinIO) through boto3.

Keys follow `renders/YYYY/MM/DD/<job_id>/<file>`. Small files go up with one PUT and a
Content-MD5 the server checks; files over the multipart threshold go up in parts, each with
its own Content-MD5, and the final ETag is compared with the one computed locally. Slack
gets presigned GET URLs with a configurable lifetime. When the endpoint is unreachable the
job still finishes: files stay local, the upload is queued in the output folder and
`retry_pending()` sends it later. Credentials are passed to boto3 only, never logged.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...core.config import Settings
from ...core.jobs import Job, JobOutput
from ...core.pipeline import StorageUnavailable
from .base import PendingUpload, UploadQueue, content_type_for, object_key, object_metadata

log = logging.getLogger(__name__)

DEFAULT_URL_LIFETIME_S = 7 * 24 * 3600  # the SigV4 maximum
DEFAULT_MULTIPART_THRESHOLD = 64 * 1024 * 1024
DEFAULT_PART_SIZE = 16 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's floor for every part but the last


class ChecksumMismatch(RuntimeError):
    pass


def _etag_is_opaque(resp: dict[str, Any]) -> bool:
    """With SSE-KMS or SSE-C the ETag is not the content's MD5 (AWS docs), so it cannot be
    compared; every PUT and part already carried Content-MD5, which the server verified."""
    return resp.get("ServerSideEncryption") == "aws:kms" or bool(resp.get("SSECustomerAlgorithm"))


def _is_unavailable(exc: BaseException) -> bool:
    """Network trouble or a server-side error: queue and retry later, not a job failure."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError
                  | ConnectionError | ChecksumMismatch):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return bool(status >= 500 or status in (408, 429))
    return False


class S3OutputStore:
    def __init__(self, *, bucket: str, output_dir: Path, endpoint_url: str = "", access_key: str = "",
                 secret_key: str = "", region: str = "us-east-1", url_lifetime_s: float = DEFAULT_URL_LIFETIME_S,
                 multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD, part_size: int = DEFAULT_PART_SIZE,
                 max_attempts: int = 4, connect_timeout_s: float = 5.0, read_timeout_s: float = 60.0,
                 create_bucket: bool = True) -> None:
        self.bucket = bucket
        self.output_dir = output_dir
        self._upload_listeners: list[Callable[[str, str, str, str], None]] = []
        self.endpoint_url = endpoint_url
        self.region = region or "us-east-1"
        self.url_lifetime_s = int(url_lifetime_s)
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.create_bucket = create_bucket
        self.queue = UploadQueue(output_dir)
        self._credentials = (access_key, secret_key)
        self._client_args = (max_attempts, connect_timeout_s, read_timeout_s)
        self._client: Any = None
        self._bucket_ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the credentials
        return f"S3OutputStore(bucket={self.bucket!r}, endpoint={self.endpoint_url or 'aws'!r})"

    @classmethod
    def from_settings(cls, settings: Settings, output_dir: Path, **overrides: Any) -> S3OutputStore:
        kwargs: dict[str, Any] = {
            "bucket": settings.s3_bucket_name, "output_dir": output_dir, "endpoint_url": settings.s3_endpoint_url,
            "access_key": settings.s3_access_key, "secret_key": settings.s3_secret_key,
            "region": settings.s3_region,
            "url_lifetime_s": getattr(settings, "s3_url_lifetime_s", DEFAULT_URL_LIFETIME_S),
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    # ------------------------------------------------------------------ client
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                attempts, connect_timeout, read_timeout = self._client_args
                config = Config(
                    region_name=self.region, signature_version="s3v4",
                    # MinIO and other custom endpoints want path-style; AWS picks its own.
                    s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                    retries={"max_attempts": attempts, "mode": "standard"},  # exponential backoff + jitter
                    connect_timeout=connect_timeout, read_timeout=read_timeout,
                    # We send Content-MD5 ourselves; botocore's newer default CRC trailers
                    # are not understood by every S3-compatible server.
                    request_checksum_calculation="when_required", response_checksum_validation="when_required",
                )
                access, secret = self._credentials
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=self.endpoint_url or None, aws_access_key_id=access or None,
                    aws_secret_access_key=secret or None, config=config)
            return self._client

    def ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        from botocore.exceptions import ClientError

        s3 = self.client()
        try:
            s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status != 404 or not self.create_bucket:
                if status == 403:  # exists, or we may only write objects: try anyway
                    log.warning("no permission to check bucket %s; assuming it exists", self.bucket)
                    self._bucket_ready = True
                    return
                raise
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            s3.create_bucket(**kwargs)
            log.info("created bucket %s", self.bucket)
        self._bucket_ready = True

    # ------------------------------------------------------------------ uploads
    def upload_file(self, path: Path, key: str, content_type: str, metadata: dict[str, str]) -> str:
        """Upload one file, verified; returns its ETag."""
        size = path.stat().st_size
        if size > self.multipart_threshold:
            return self._upload_multipart(path, key, content_type, metadata)
        data = path.read_bytes()
        digest = hashlib.md5(data, usedforsecurity=False).digest()
        resp = self.client().put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                                        Metadata=metadata, ContentMD5=base64.b64encode(digest).decode())
        etag = str(resp.get("ETag", "")).strip('"')
        if etag and "-" not in etag and etag != digest.hex() and not _etag_is_opaque(resp):
            raise ChecksumMismatch(f"{key}: server ETag {etag} != local MD5 {digest.hex()}")
        return etag

    def _upload_to_bucket(self, path: Path, key: str, content_type: str, metadata: dict[str, str]) -> str:
        """Upload, re-creating the bucket once if it vanished (e.g. a MinIO without its volume)."""
        from botocore.exceptions import ClientError

        self.ensure_bucket()
        try:
            return self.upload_file(path, key, content_type, metadata)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise
            self._bucket_ready = False
            self.ensure_bucket()
            return self.upload_file(path, key, content_type, metadata)

    def _upload_multipart(self, path: Path, key: str, content_type: str, metadata: dict[str, str]) -> str:
        s3 = self.client()
        part_size = max(self.part_size, MIN_PART_SIZE)
        upload_id = s3.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type,
                                               Metadata=metadata)["UploadId"]
        parts: list[dict[str, Any]] = []
        digests: list[bytes] = []
        try:
            with open(path, "rb") as fh:
                number = 1
                while chunk := fh.read(part_size):
                    digest = hashlib.md5(chunk, usedforsecurity=False).digest()
                    resp = s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                          Body=chunk, ContentMD5=base64.b64encode(digest).decode())
                    parts.append({"ETag": resp["ETag"], "PartNumber": number})
                    digests.append(digest)
                    number += 1
            resp = s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception:  # the server is probably down; lifecycle rules clean up
                log.debug("abort of multipart upload failed", exc_info=True)
            raise
        expected = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest() + f"-{len(digests)}"
        etag = str(resp.get("ETag", "")).strip('"')
        if etag and etag != expected and not _etag_is_opaque(resp):
            raise ChecksumMismatch(f"{key}: multipart ETag {etag} != expected {expected}")
        return etag

    def presigned_url(self, key: str) -> str:
        url: str = self.client().generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.url_lifetime_s)
        return url

    def _pending_for(self, job: Job, out: JobOutput) -> PendingUpload:
        return PendingUpload(key=object_key(job, Path(out.path).name), path=str(Path(out.path).resolve()),
                             content_type=content_type_for(out.path, out.content_type),
                             metadata=object_metadata(job), job_id=job.id, queued_at=time.time())

    def store(self, job: Job, outputs: list[JobOutput]) -> list[JobOutput]:
        """Upload every output; on an outage queue the rest and raise StorageUnavailable."""
        pending = [self._pending_for(job, o) for o in outputs]
        stored: list[JobOutput] = []
        try:
            for out, item in zip(outputs, pending, strict=True):
                self._upload_to_bucket(Path(item.path), item.key, item.content_type, item.metadata)
                stored.append(JobOutput(out.role, out.path, item.content_type,
                                        out.size_bytes or Path(out.path).stat().st_size, item.key,
                                        self.presigned_url(item.key), out.slack_file_id))
        except Exception as exc:
            if not _is_unavailable(exc):
                raise
            rest = pending[len(stored):]
            self.queue.add(rest)
            log.warning("object storage unavailable; %d upload(s) queued (%s)", len(rest), type(exc).__name__,
                        extra={"job_id": job.id})
            raise StorageUnavailable(f"{type(exc).__name__}; {len(rest)} upload(s) queued") from None
        return stored

    def add_upload_listener(self, listener: Callable[[str, str, str, str], None]) -> None:
        """`listener(job_id, local_path, key, url)` after a queued upload went through:
        the runtime updates the job's row and posts the link in Slack."""
        self._upload_listeners.append(listener)

    def _tell_uploaded(self, item: PendingUpload) -> None:
        for listener in list(self._upload_listeners):
            try:
                listener(item.job_id, item.path, item.key, self.presigned_url(item.key))
            except Exception:  # a failing listener must not stop the other uploads
                log.exception("upload listener failed for %s", item.key)

    def retry_pending(self) -> int:
        """Upload queued files in order; stops at the first outage. Returns how many went up."""
        items = self.queue.load()
        if not items:
            return 0
        done = 0
        finished: list[PendingUpload] = []
        remaining: list[PendingUpload] = []
        for i, item in enumerate(items):
            path = Path(item.path)
            if not path.exists():
                log.warning("queued upload %s dropped: local file is gone", item.key)
                finished.append(item)
                continue
            try:
                self._upload_to_bucket(path, item.key, item.content_type, item.metadata)
                done += 1
                finished.append(item)
                self._tell_uploaded(item)
            except Exception as exc:
                if not _is_unavailable(exc):
                    log.exception("queued upload %s failed; dropped", item.key)
                    finished.append(item)
                    continue
                remaining = items[i:]
                break
        self.queue.remove(finished)
        if done:
            log.info("uploaded %d queued file(s); %d still pending", done, len(remaining))
        return done

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
