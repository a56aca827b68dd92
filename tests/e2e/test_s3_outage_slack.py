"""S3 down while a Slack render finishes: the job still finishes with local outputs, the
reply says the storage link will follow, and when S3 is back the queued upload goes up, the
job's row gets its key, and the link is posted in the render's thread."""

from __future__ import annotations

import re
from pathlib import Path

import requests
from test_agent_harness import close_harness, make_harness

from slack_ai_addon.core.config import Settings
from slack_ai_addon.core.jobs import JobStatus
from slack_ai_addon.storage.objects.s3 import S3OutputStore
from tests.fakes.s3_server import S3Server

C = "C0RENDERS"


def test_outage_then_late_link_in_the_thread(tmp_path: Path) -> None:
    server = S3Server().start()
    settings = Settings(s3_endpoint_url=server.url, s3_access_key="AKIATESTKEY", s3_secret_key="test-secret-value",
                        s3_bucket_name="renders-late", s3_region="us-east-1")
    h = make_harness(tmp_path)
    store = S3OutputStore.from_settings(settings, h.runtime.output_dir, max_attempts=1, connect_timeout_s=1.0)
    store.ensure_bucket()
    server.stop()  # S3 goes away before the job finishes
    h.runtime.pipeline.deps.output_store = store
    store.add_upload_listener(h.runtime.pipeline.output_stored_late)  # what build_runtime wires
    try:
        h.agent.start()
        assert h.agent.wait_until_connected(10)
        h.start_drain()
        h.srv.wait_for_ack(h.srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id=C), timeout=3)
        ts = h.wait(lambda: h.bot_messages(C), what="placeholder")[0]["ts"]
        final = h.wait(lambda: h.final_update(ts), timeout=30, what="final update")
        assert "Done" in final.params["text"]
        assert "storage link will follow" in str(final.params["blocks"])
        job = h.store.list_jobs()[0]
        assert job.status is JobStatus.DONE and not any(o.s3_key for o in job.outputs)
        image = next(o for o in job.outputs if o.role == "image")
        assert Path(image.path).exists()

        server = S3Server(server.port).start()  # S3 is back (empty, like a fresh MinIO)
        assert store.retry_pending() >= 1  # the dispatcher does this every 30 s
        posted = h.wait(lambda: [m for m in h.srv.channel_messages(C)
                                 if m.get("thread_ts") == ts and "Object storage is back" in m.get("text", "")],
                        what="late storage link")
        url = re.search(r"<(http[^|>]+)\|", posted[0]["text"])
        assert url is not None
        body = requests.get(url.group(1), timeout=10).content
        assert body == Path(image.path).read_bytes()
        row = h.store.get(job.id)
        assert row is not None
        assert next(o for o in row.outputs if o.role == "image").s3_key.endswith(f"/{job.id}/{Path(image.path).name}")
    finally:
        close_harness(h)
        store.close()
        server.stop()
