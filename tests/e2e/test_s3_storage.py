"""Object storage against a real HTTP S3 endpoint (moto's server), boto3 unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from slack_ai_addon.core.config import Settings
from slack_ai_addon.core.jobs import Job, JobKind, JobOutput, Requester
from slack_ai_addon.core.pipeline import StorageUnavailable
from slack_ai_addon.storage import open_output_store
from slack_ai_addon.storage.objects.base import UploadQueue
from slack_ai_addon.storage.objects.local import LocalOutputStore
from slack_ai_addon.storage.objects.s3 import S3OutputStore
from tests.fakes.s3_server import S3Server

BUCKET = "renders-test"
PART = 5 * 1024 * 1024


@pytest.fixture()
def s3server():
    server = S3Server().start()
    yield server
    server.stop()


def _settings(server: S3Server) -> Settings:
    return Settings(s3_endpoint_url=server.url, s3_access_key="AKIATESTKEY", s3_secret_key="test-secret-value",
                    s3_bucket_name=BUCKET, s3_region="us-east-1")


def _store(server: S3Server, out: Path, **kw) -> S3OutputStore:
    kw.setdefault("multipart_threshold", 6 * 1024 * 1024)
    kw.setdefault("part_size", PART)
    kw.setdefault("max_attempts", 1)
    kw.setdefault("connect_timeout_s", 1.0)
    return S3OutputStore.from_settings(_settings(server), out, **kw)


def _raw_client(server: S3Server):
    return boto3.client("s3", endpoint_url=server.url, aws_access_key_id="x", aws_secret_access_key="y",
                        region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))


def _job(tmp_path: Path) -> tuple[Job, list[JobOutput]]:
    job = Job(kind=JobKind.RENDER, request_text="a red cube; DROP TABLE jobs",
              requester=Requester(user_id="U123", source="slack"))
    d = tmp_path / job.id
    d.mkdir()
    png = d / "render.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    video = d / "turntable.mp4"
    video.write_bytes(os.urandom(12 * 1024 * 1024 + 123))  # 3 parts of 5 MiB (last one short)
    return job, [JobOutput("image", str(png), size_bytes=png.stat().st_size),
                 JobOutput("video", str(video), "video/mp4", video.stat().st_size)]


def test_upload_keys_types_metadata_multipart_and_presigned(s3server: S3Server, tmp_path: Path) -> None:
    store = open_output_store(_settings(s3server), tmp_path)
    assert isinstance(store, S3OutputStore)
    store.multipart_threshold, store.part_size = 6 * 1024 * 1024, PART
    job, outputs = _job(tmp_path)
    stored = store.store(job, outputs)

    raw = _raw_client(s3server)
    day = __import__("time").strftime("%Y/%m/%d", __import__("time").gmtime(job.created_at))
    assert [o.s3_key for o in stored] == [f"renders/{day}/{job.id}/render.png",
                                          f"renders/{day}/{job.id}/turntable.mp4"]
    png_head = raw.head_object(Bucket=BUCKET, Key=stored[0].s3_key)
    assert png_head["ContentType"] == "image/png"
    assert png_head["Metadata"]["job-id"] == job.id
    assert png_head["Metadata"]["requester"] == "U123"
    assert png_head["Metadata"]["prompt-sha256"] == hashlib.sha256(job.request_text.encode()).hexdigest()[:16]
    video_head = raw.head_object(Bucket=BUCKET, Key=stored[1].s3_key)
    assert video_head["ContentType"] == "video/mp4"
    assert video_head["ETag"].strip('"').endswith("-3"), "over the threshold: multipart in 3 parts"
    assert video_head["ContentLength"] == Path(outputs[1].path).stat().st_size

    # Presigned links work with a plain HTTP client and return the same bytes.
    for out in stored:
        resp = requests.get(out.url, timeout=10)
        assert resp.status_code == 200
        assert resp.content == Path(out.path).read_bytes()
    assert "test-secret-value" not in repr(store) and "test-secret-value" not in stored[0].url
    store.close()


def test_s3_down_mid_job_queues_and_uploads_when_back(tmp_path: Path) -> None:
    server = S3Server().start()
    store = _store(server, tmp_path)
    job, outputs = _job(tmp_path)
    store.ensure_bucket()
    server.stop()  # the endpoint goes away between the render and the upload

    with pytest.raises(StorageUnavailable):
        store.store(job, outputs)
    assert all(Path(o.path).exists() for o in outputs), "local outputs are kept"
    queued = UploadQueue(tmp_path).load()
    assert [q.key.rsplit("/", 1)[1] for q in queued] == ["render.png", "turntable.mp4"]
    assert store.retry_pending() == 0  # still down: nothing lost, nothing uploaded
    assert len(UploadQueue(tmp_path).load()) == 2

    # A fresh server on the same port, empty like a MinIO without its volume: the store must
    # notice the missing bucket and create it again.
    server = S3Server(server.port).start()
    try:
        assert store.retry_pending() == 2
        assert UploadQueue(tmp_path).load() == []
        raw = _raw_client(server)
        for item in queued:
            body = raw.get_object(Bucket=BUCKET, Key=item.key)["Body"].read()
            assert body == Path(item.path).read_bytes()
        assert store.retry_pending() == 0  # the queue is empty: no double uploads
    finally:
        store.close()
        server.stop()


def test_local_store_uses_the_same_keys(tmp_path: Path) -> None:
    store = open_output_store(Settings(), tmp_path)
    assert isinstance(store, LocalOutputStore)
    job, outputs = _job(tmp_path)
    stored = store.store(job, outputs[:1])
    dest = tmp_path / stored[0].s3_key
    assert stored[0].s3_key.startswith("renders/") and stored[0].s3_key.endswith(f"/{job.id}/render.png")
    assert dest.read_bytes() == Path(outputs[0].path).read_bytes()
    assert stored[0].url == dest.resolve().as_uri()
    assert stored[0].content_type == "image/png"
    assert Path(outputs[0].path).exists()


def test_kms_etag_is_not_taken_for_a_corrupt_upload(tmp_path: Path) -> None:
    """SSE-KMS buckets answer with an ETag that is not the MD5: not a mismatch (else every
    upload would be queued and retried for ever); a plain bucket's wrong ETag still is."""
    from slack_ai_addon.storage.objects.s3 import ChecksumMismatch

    class StubClient:
        def __init__(self, resp: dict) -> None:
            self.resp = resp

        def put_object(self, **kw):  # noqa: ANN003, ANN201 - boto3 shape
            return self.resp

    store = S3OutputStore(bucket=BUCKET, output_dir=tmp_path)
    path = tmp_path / "x.png"
    path.write_bytes(b"pixels")
    store.client = lambda: StubClient({"ETag": '"0123456789abcdef0123456789abcdef"',  # type: ignore[method-assign]
                                       "ServerSideEncryption": "aws:kms"})
    assert store.upload_file(path, "k", "image/png", {}) == "0123456789abcdef0123456789abcdef"
    store.client = lambda: StubClient({"ETag": '"0123456789abcdef0123456789abcdef"'})  # type: ignore[method-assign]
    with pytest.raises(ChecksumMismatch):
        store.upload_file(path, "k", "image/png", {})
