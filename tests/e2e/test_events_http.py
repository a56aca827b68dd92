"""HTTP events mode (`serve --events-http`): Slack's signed requests over HTTP feed the same
router as Socket Mode. Real HTTP requests (urllib) signed as Slack signs them, the agent's
replies through the local Slack server, jobs in the real SQLite store."""

from __future__ import annotations

import copy
import dataclasses
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier
from test_agent_harness import Harness, close_harness, make_harness, png_ok

from slack_ai_addon.agent import events_http
from slack_ai_addon.agent.dedupe import DedupeStore
from slack_ai_addon.agent.events_http import MAX_BODY_BYTES, EventsHttpServer

ROOT = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # the docs' example shape, not a real secret
C = "C0GENERAL"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def http_harness(tmp_path: Path) -> Iterator[Harness]:
    h = make_harness(tmp_path)
    h.agent.settings = dataclasses.replace(h.agent.settings, slack_app_token="", events_http="127.0.0.1:0",
                                           slack_signing_secret=SIGNING_SECRET)
    h.agent.start()
    try:
        assert h.agent.wait_until_connected(10), h.agent.status()
        assert h.agent.events_http_url.startswith("http://127.0.0.1:")
        h.start_drain()
        yield h
    finally:
        close_harness(h)


def _post(h: Harness, body: bytes, content_type: str, *, timestamp: int | None = None, signature: str | None = None,
          secret: str = SIGNING_SECRET, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, signed headers) of one POST, signed like Slack unless told otherwise."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signed = {"X-Slack-Request-Timestamp": ts, "Content-Type": content_type,
              "X-Slack-Signature": signature or SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
              or ""}
    signed.update(headers or {})
    return (*_send(h.agent.events_http_url, body, signed), signed)


def _send(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 (loopback only)
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _slash(h: Harness, text: str) -> bytes:
    payload = h.srv.workspace.slash_command_payload("/render", text, user_id="U0ALICE", channel_id=C,
                                                    user_name="alice")
    return urlencode(payload).encode()


def _mention(h: Harness, text: str) -> tuple[str, bytes]:
    """An @-mention stored in the fake workspace, as the event_callback body Slack POSTs."""
    with h.srv.workspace.lock:
        h.srv.workspace.ensure_channel(C)
        message = h.srv.workspace.user_message(C, "U0BOB", f"<@{h.srv.bot_user_id}> {text}", None)
    event = dict(copy.deepcopy(message), channel=C, event_ts=message["ts"], type="app_mention")
    event_id, payload = h.srv.workspace.event_callback(event, None)
    return event_id, json.dumps(payload).encode()


def _jobs(h: Harness) -> list[Any]:
    return h.store.list_jobs(limit=100)


def _final_done(h: Harness) -> list[Any]:
    return [c for c in h.srv.calls("chat.update") if "Done" in str(c.params.get("text", ""))]


def test_a_signed_slash_command_is_acked_and_rendered(http_harness: Harness) -> None:
    h = http_harness
    t0 = time.monotonic()
    status, body, _ = _post(h, _slash(h, "a red cube"), FORM)
    assert time.monotonic() - t0 < 1.0  # answered at once, well inside Slack's 3 s
    assert status == 200 and json.loads(body) == {"response_type": "in_channel"}  # Socket Mode's ack payload
    (job,) = h.wait(lambda: _jobs(h), what="a job in the store")
    assert job.request_text == "a red cube" and job.requester.user_id == "U0ALICE"
    placeholder = h.wait(lambda: h.bot_messages(C), what="the placeholder")[0]
    final = h.wait(lambda: h.final_update(placeholder["ts"]), timeout=20, what="the final update")
    assert "Done" in final.params["text"] and h.store.get(job.id).slack_ts == placeholder["ts"]
    uploads = h.srv.calls("files.completeUploadExternal")
    assert uploads and uploads[0].params.get("thread_ts") == placeholder["ts"]
    (image,) = [f for f in h.srv.files.values() if f.filename == "render.png"]
    assert png_ok(image.data)[0] > 200  # the red cube's pixels reached Slack
    # Interactivity: the result's "Get .blend" button, clicked; Slack POSTs a form with `payload`.
    click = h.srv.workspace.block_actions_payload(C, placeholder["ts"], "get_blend", user_id="U0ALICE", value=None)
    status, body, _ = _post(h, urlencode({"payload": json.dumps(click)}).encode(), FORM)
    assert (status, body) == (200, b"")
    blend = h.wait(lambda: [f for f in h.srv.files.values() if f.filename == "scene.blend"], what=".blend")
    assert blend[0].data.startswith(b"BLENDER") and blend[0].thread_ts == placeholder["ts"]
    assert h.agent.status().envelopes_seen == 2 and len(_jobs(h)) == 1  # the stored .blend: no new job


def test_a_signed_app_mention_renders_and_a_retry_starts_no_second_job(http_harness: Harness) -> None:
    h = http_harness
    event_id, body = _mention(h, "render a blue cube")
    status, answer, _ = _post(h, body, "application/json")
    assert (status, answer) == (200, b"")
    (job,) = h.wait(lambda: _jobs(h), what="a job in the store")
    assert job.requester.user_id == "U0BOB" and "blue cube" in job.request_text
    # Slack retries a slow delivery with a fresh timestamp and signature, the same event_id.
    time.sleep(1.1)
    status, _, _ = _post(h, body, "application/json", headers={"X-Slack-Retry-Num": "1",
                                                              "X-Slack-Retry-Reason": "http_timeout"})
    assert status == 200
    h.wait(lambda: _final_done(h), timeout=20, what="the final update")
    thread = h.srv.thread_messages(C, job.requester.thread_ts)
    assert any(m.get("bot_id") for m in thread)  # the bot answered in the mention's thread
    (image,) = h.wait(lambda: [f for f in h.srv.files.values() if f.filename == "render.png"], what="the upload")
    assert png_ok(image.data)[2] > 200  # blue
    time.sleep(0.3)
    assert len(_jobs(h)) == 1 and len(h.renderer.renders) == 1, event_id


def test_url_verification_answers_the_challenge(http_harness: Harness) -> None:
    h = http_harness
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"  # the docs' example
    body = json.dumps({"token": "verification-token", "challenge": challenge, "type": "url_verification"}).encode()
    status, answer, _ = _post(h, body, "application/json")
    assert status == 200 and json.loads(answer) == {"challenge": challenge}
    # Unsigned, the same challenge gets nothing.
    status, answer = _send(h.agent.events_http_url, body, {"Content-Type": "application/json"})
    assert status == 401 and b"3eZbrw" not in answer


def test_bad_signature_old_timestamp_and_replay_are_refused_and_start_no_job(http_harness: Harness) -> None:
    h = http_harness
    mention_id, mention = _mention(h, "render a green cube")
    refusals = {
        "wrong secret": _post(h, _slash(h, "a red cube"), FORM, secret="not-the-signing-secret")[0],
        "tampered body": _post(h, _slash(h, "a red cube"), FORM,
                               signature=SignatureVerifier(SIGNING_SECRET).generate_signature(
                                   timestamp=str(int(time.time())), body=b"command=%2Frender&text=other"))[0],
        "no signature": _send(h.agent.events_http_url, mention, {"Content-Type": "application/json"})[0],
        "6 minutes old": _post(h, _slash(h, "a red cube"), FORM, timestamp=int(time.time()) - 360)[0],
        "6 minutes ahead": _post(h, mention, "application/json", timestamp=int(time.time()) + 360)[0],
    }
    assert refusals == {k: 401 for k in refusals}, refusals
    # A valid request, captured and sent again byte for byte: refused, even for another path.
    slash = _slash(h, "a yellow cube")
    status, _, signed = _post(h, slash, FORM)
    assert status == 200
    (job,) = h.wait(lambda: _jobs(h), what="the one valid job")
    for url in (h.agent.events_http_url, h.agent.events_http_url.replace("/events", "/commands")):
        assert _send(url, slash, signed)[0] == 403
    time.sleep(0.5)
    assert [j.id for j in _jobs(h)] == [job.id]  # the jobs table holds the valid request only
    assert h.agent.status().envelopes_seen == 1
    assert mention_id  # the refused mention never reached the router


def test_oversized_and_foreign_requests_are_refused(http_harness: Harness) -> None:
    h = http_harness
    # The size is judged by Content-Length, before a byte of the body is read.
    port = int(h.agent.events_http_url.split(":")[2].split("/")[0])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.putrequest("POST", "/slack/events")
    conn.putheader("Content-Type", FORM)
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders(b"command=%2Frender")
    assert conn.getresponse().status == 413
    conn.close()
    assert _post(h, b"<xml/>", "text/xml")[0] == 415  # signed, but not a body Slack sends
    assert _post(h, b"payload=%7Bnot+json", FORM)[0] == 400
    wrong_path = h.agent.events_http_url.replace("/slack/events", "/admin")
    assert _send(wrong_path, b"{}", {"Content-Type": "application/json"})[0] == 404
    time.sleep(0.3)
    assert _jobs(h) == [] and h.agent.status().envelopes_seen == 0  # none reached the router


def test_serve_refuses_http_mode_without_a_signing_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update(SLACK_BOT_TOKEN="xoxb-test-token-1234", XDG_DATA_HOME=str(tmp_path / "xdg"))
    res = subprocess.run([sys.executable, "-m", "headless_runner", "serve", "--events-http", "127.0.0.1:0",
                          "--no-render"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "SLACK_SIGNING_SECRET is not set" in res.stderr and "Traceback" not in res.stderr
    assert "SLACK_APP_TOKEN" not in res.stderr  # HTTP mode does not need the Socket Mode token
    assert "xoxb-test-token-1234" not in res.stderr + res.stdout


def test_a_trickled_body_loses_its_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The listener alone (no agent): a client that never sends the body it announced is cut
    off after READ_TIMEOUT_S, and nothing is routed."""
    monkeypatch.setattr(events_http, "READ_TIMEOUT_S", 0.3)
    routed: list[Any] = []
    seen = DedupeStore(None)
    server = EventsHttpServer("127.0.0.1:0", signing_secret=SIGNING_SECRET, seen=seen, ack=lambda t, p: None,
                              route=lambda t, p, e: routed.append(p)).start()
    try:
        host, port = server.address.split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"type\":")
            t0 = time.monotonic()
            assert sock.recv(1024) == b""  # closed without an answer
            assert time.monotonic() - t0 < 3
        with pytest.raises(ValueError, match="signing secret"):
            EventsHttpServer("127.0.0.1:0", signing_secret=" ", seen=seen, ack=lambda t, p: None,
                             route=lambda t, p, e: None)
    finally:
        server.stop()
        seen.close()
    assert routed == []


def test_serve_takes_signed_requests_over_http(tmp_path: Path) -> None:
    """A real `serve --role listener --events-http` process: no Socket Mode connection, the
    challenge answered, a signed /render queued in the job database, an unsigned one not."""
    from headless_runner.sandbox.slack_server import FakeSlackServer
    from slack_ai_addon.storage.db import open_sql_store

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/slack/events"
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    srv = FakeSlackServer(bot_token="xoxb-serve-http-1").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update(SLACK_BOT_TOKEN="xoxb-serve-http-1", SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=srv.api_url,
               DATABASE_URL=db, XDG_DATA_HOME=str(tmp_path / "xdg"), SLACK_AI_OUTPUT_DIR=str(tmp_path / "out"),
               SLACK_AI_PROVIDER_ORDER="offline", PYTHONPATH=str(ROOT))
    node = subprocess.Popen([sys.executable, "-m", "headless_runner", "serve", "--role", "listener",
                             "--events-http", f"127.0.0.1:{port}", "--log-format", "json"], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, text=True)

    def signed(body: bytes, content_type: str) -> tuple[int, bytes]:
        ts = str(int(time.time()))
        sig = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body) or ""
        try:
            return _send(url, body, {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
                                     "X-Slack-Signature": sig})
        except OSError:
            return 0, b""

    try:
        challenge = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
        deadline = time.monotonic() + 60
        while (answer := signed(challenge, "application/json"))[0] != 200:
            assert node.poll() is None and time.monotonic() < deadline, node.communicate()[1][-3000:]
            time.sleep(0.2)
        assert json.loads(answer[1]) == {"challenge": "c-123"}
        slash = srv.workspace.slash_command_payload("/render", "a red cube", user_id="U0ALICE", channel_id=C,
                                                     user_name="alice")
        assert signed(urlencode(slash).encode(), FORM) == (200, b'{"response_type": "in_channel"}')
        unsigned = dict(slash, text="a blue cube", trigger_id="t-unsigned")
        assert _send(url, urlencode(unsigned).encode(), {"Content-Type": FORM})[0] == 401
        store = open_sql_store(db, outbox_path=tmp_path / "check-outbox.jsonl")
        try:
            deadline = time.monotonic() + 10
            while not (jobs := store.list_jobs(limit=10)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [j.request_text for j in jobs] == ["a red cube"]
        finally:
            store.close()
        assert srv.connections_opened == 0  # no Socket Mode
    finally:
        node.send_signal(signal.SIGTERM)
        _, stderr = node.communicate(timeout=60)
        srv.stop()
    assert node.returncode == 0, stderr[-3000:]
    messages = [json.loads(line)["message"] for line in stderr.splitlines() if line.strip()]
    assert any(f"listening for Slack's signed requests on {url}" in m for m in messages), messages
    assert any("refused a request" in m and "(401)" in m for m in messages)
    assert SIGNING_SECRET not in stderr and "xoxb-serve-http-1" not in stderr
