"""The fake Slack server, driven by the real, unmodified slack_sdk (WebClient, SocketModeClient,
WebhookClient) exactly as the agent drives it: if these pass, the agent's tests exercise Slack's
wire formats and rules, not a convenient imitation of them."""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket
from PIL import Image
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.socket_mode.websocket_client import SocketModeClient
from slack_sdk.webhook import WebhookClient

from headless_runner.sandbox import FakeSlackServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def srv() -> Iterator[FakeSlackServer]:
    # Compressed timings: ack deadline 0.5 s instead of 3 s, retries after 0.2/0.3/0.4 s.
    server = FakeSlackServer(ack_timeout_s=0.5, redelivery_delays_s=(0.2, 0.3, 0.4), ping_interval_s=1.0,
                             echo_bot_messages=False, disconnect_grace_s=1.0).start()
    yield server
    server.stop()


@pytest.fixture
def web(srv: FakeSlackServer) -> WebClient:
    return WebClient(token=srv.bot_token, base_url=srv.api_url)


class Recorder:
    """What one SocketModeClient saw: raw frames and parsed requests."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.requests: list[SocketModeRequest] = []
        self.lock = threading.Lock()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [f for f in self.frames if f.get("type") == kind]


@pytest.fixture
def socket_client(srv: FakeSlackServer) -> Iterator[Callable[..., tuple[SocketModeClient, Recorder]]]:
    clients: list[SocketModeClient] = []

    def make(ack: Callable[[SocketModeRequest], bool | dict[str, Any]] = lambda req: True,
             ) -> tuple[SocketModeClient, Recorder]:
        rec = Recorder()
        client = SocketModeClient(app_token=srv.app_token, web_client=WebClient(base_url=srv.api_url),
                                  ping_interval=1)

        def on_frame(_ws: Any, raw: str) -> None:
            # The raw listener runs on the socket thread in arrival order, and also sees
            # `disconnect` frames, which the SDK consumes before its message_listeners.
            with rec.lock:
                rec.frames.append(json.loads(raw))

        def on_request(sm_client: SocketModeClient, req: SocketModeRequest) -> None:
            with rec.lock:
                rec.requests.append(req)
            decision = ack(req)
            if decision:
                payload = decision if isinstance(decision, dict) else None
                sm_client.send_socket_mode_response(SocketModeResponse(req.envelope_id, payload=payload))

        client.on_message_listeners.append(on_frame)
        client.socket_mode_request_listeners.append(on_request)
        clients.append(client)
        return client, rec

    yield make
    # close() can block ~10 s in websocket-client's select (reference 1.9): close off-thread.
    for client in clients:
        threading.Thread(target=client.close, daemon=True).start()


def _post(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback test server
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), color).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- Web API


def test_auth_test_and_messages_as_slack(srv: FakeSlackServer, web: WebClient) -> None:
    auth = web.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == (srv.bot_user_id, srv.bot_id, srv.team_id)

    first = web.chat_postMessage(channel="C1", text="Rendering...", blocks=[
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Rendering* frame 1/4"}}])
    assert first["channel"] == "C1" and first["message"]["bot_id"] == srv.bot_id
    reply = web.chat_postMessage(channel="C1", text="in thread", thread_ts=first["ts"])
    assert reply["message"]["thread_ts"] == first["ts"]
    assert float(reply["ts"]) > float(first["ts"])  # strictly increasing "%d.%06d"
    assert len(reply["ts"].split(".")[1]) == 6

    updated = web.chat_update(channel="C1", ts=first["ts"], text="Done", blocks=[
        {"type": "section", "text": {"type": "mrkdwn", "text": "Done in 2s"}}])
    assert updated["ts"] == first["ts"] and updated["text"] == "Done"
    # Text without blocks removes the blocks, as on Slack.
    web.chat_update(channel="C1", ts=reply["ts"], text="edited")
    messages = srv.channel_messages("C1")
    assert [m["text"] for m in messages] == ["Done", "edited"]
    assert messages[0]["blocks"][0]["text"]["text"] == "Done in 2s" and messages[0]["reply_count"] == 1
    assert "blocks" not in messages[1] and messages[1]["thread_ts"] == first["ts"]

    replies = web.conversations_replies(channel="C1", ts=first["ts"])
    assert [m["ts"] for m in replies["messages"]] == [first["ts"], reply["ts"]]
    history = web.conversations_history(channel="C1")
    assert [m["ts"] for m in history["messages"]] == [first["ts"]]  # thread replies stay in the thread

    eph = web.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert eph["message_ts"] and srv.ephemerals[-1]["text"] == "only you"
    web.reactions_add(channel="C1", timestamp=first["ts"], name="white_check_mark")
    with pytest.raises(SlackApiError) as err:
        web.reactions_add(channel="C1", timestamp=first["ts"], name="white_check_mark")
    assert err.value.response["error"] == "already_reacted"

    call = srv.wait_for_call("chat.postMessage", lambda c: c.params.get("thread_ts") == first["ts"])
    assert call.headers["Authorization"] == f"Bearer {srv.bot_token}" and call.status == 200


@pytest.mark.parametrize(("call", "error"), [
    (lambda w: w.chat_postMessage(channel="C1"), "no_text"),
    (lambda w: w.chat_update(channel="C1", ts="1700000000.000001", text="x"), "message_not_found"),
    (lambda w: w.chat_postMessage(channel="not a channel", text="x"), "channel_not_found"),
    (lambda w: WebClient(token="xoxb-wrong", base_url=w.base_url).auth_test(), "invalid_auth"),
    (lambda w: WebClient(base_url=w.base_url).auth_test(), "not_authed"),
    (lambda w: WebClient(token="xapp-sandbox", base_url=w.base_url).chat_postMessage(channel="C1", text="x"),
     "not_allowed_token_type"),
    (lambda w: w.apps_connections_open(app_token="xoxb-sandbox"), "not_allowed_token_type"),
    (lambda w: w.files_getUploadURLExternal(filename="a.png", length=0), "missing_argument"),
    (lambda w: w.files_completeUploadExternal(files=[{"id": "FNOPE"}], channel_id="C1"), "file_not_found"),
])
def test_errors_reach_the_client_as_slack_api_error(web: WebClient, call: Callable[[WebClient], Any],
                                                    error: str) -> None:
    with pytest.raises(SlackApiError) as err:
        call(web)
    assert err.value.response.status_code == 200
    assert err.value.response["ok"] is False and err.value.response["error"] == error


def test_update_rules(srv: FakeSlackServer, web: WebClient) -> None:
    # chat.postMessage truncates text past 40,000 characters; chat.update refuses past 4,000.
    long = web.chat_postMessage(channel="C2", text="z" * 40_001)
    assert len(srv.channel_messages("C2")[0]["text"]) == 40_000 and long["ok"] is True
    own = web.chat_postMessage(channel="C1", text="placeholder")
    with pytest.raises(SlackApiError) as err:
        web.chat_update(channel="C1", ts=own["ts"], text="y" * 4_001)
    assert err.value.response["error"] == "msg_too_long"
    human_ts = srv.post_user_message("C1", "U1", "a human wrote this")
    with pytest.raises(SlackApiError) as err:
        web.chat_update(channel="C1", ts=human_ts, text="hijack")
    assert err.value.response["error"] == "cant_update_message"
    assert [m["text"] for m in srv.channel_messages("C1")] == ["placeholder", "a human wrote this"]


def test_files_upload_v2_stores_the_exact_bytes_in_the_thread(srv: FakeSlackServer, web: WebClient) -> None:
    png = _png((255, 0, 0))
    parent = web.chat_postMessage(channel="C0RENDERS", text="render #1")
    result = web.files_upload_v2(channel="C0RENDERS", thread_ts=parent["ts"], content=png, filename="render.png",
                                 title="A red cube", initial_comment="Done in 1s")
    file_id = result["file"]["id"]
    stored = srv.files[file_id]
    assert stored.data == png and stored.completed and stored.title == "A red cube"
    assert (stored.channel_id, stored.thread_ts, stored.initial_comment) == ("C0RENDERS", parent["ts"], "Done in 1s")
    assert "ts" not in result.data  # Slack returns no message ts for uploads
    message = srv.channel_messages("C0RENDERS")[-1]
    assert message["thread_ts"] == parent["ts"] and message["files"][0]["id"] == file_id

    # The sequence on the wire is Slack's three steps, the middle one unauthenticated raw bytes.
    assert [c.method for c in srv.calls()][-3:] == ["files.getUploadURLExternal", "upload",
                                                    "files.completeUploadExternal"]
    get_url = srv.calls("files.getUploadURLExternal")[-1]
    assert int(get_url.params["length"]) == len(png)
    assert "Authorization" not in srv.calls("upload")[-1].headers

    # The page serves the image back; the pixels are the ones uploaded.
    with urllib.request.urlopen(f"{srv.base_url}sandbox/files/{file_id}", timeout=5) as resp:  # noqa: S310
        assert Image.open(io.BytesIO(resp.read())).getpixel((3, 3)) == (255, 0, 0)
    shares = web.files_info(file=file_id)["file"]["shares"]["public"]["C0RENDERS"][0]
    assert shares["thread_ts"] == parent["ts"]

    # completeUploadExternal works once per file (which error the second call gets is not documented).
    with pytest.raises(SlackApiError) as err:
        web.files_completeUploadExternal(files=[{"id": file_id}], channel_id="C0RENDERS")
    assert err.value.response["ok"] is False
    assert len([m for m in srv.channel_messages("C0RENDERS") if m.get("files")]) == 1


def test_form_multipart_and_json_bodies_are_all_accepted(srv: FakeSlackServer) -> None:
    auth = {"Authorization": f"Bearer {srv.bot_token}"}
    blocks = json.dumps([{"type": "section", "text": {"type": "mrkdwn", "text": "from a form"}}])
    form = urllib.parse.urlencode({"channel": "#general", "text": "form", "blocks": blocks}).encode()
    status, body = _post(srv.api_url + "chat.postMessage", form,
                         {**auth, "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and json.loads(body)["channel"] == "C0GENERAL"

    boundary = "sandboxboundary"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"channel\"\r\n\r\nC0GENERAL\r\n"
                 f"--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nmultipart\r\n"
                 f"--{boundary}--\r\n").encode()
    status, body = _post(srv.api_url + "chat.postMessage", multipart,
                         {**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and json.loads(body)["ok"] is True

    plain_json = json.dumps({"channel": "C0GENERAL", "text": "json"}).encode()
    status, body = _post(srv.api_url + "chat.postMessage", plain_json, {**auth, "Content-Type": "application/json"})
    answer = json.loads(body)
    assert answer["ok"] is True and answer["warning"] == "missing_charset"  # as Slack warns
    messages = srv.channel_messages("C0GENERAL")
    assert [m["text"] for m in messages] == ["form", "multipart", "json"]
    assert messages[0]["blocks"][0]["text"]["text"] == "from a form"
    status, body = _post(srv.api_url + "chat.nope", b"", auth)
    assert json.loads(body)["error"] == "unknown_method"


def test_injected_429_carries_retry_after_then_recovers(srv: FakeSlackServer, web: WebClient) -> None:
    srv.inject_fault("chat.update", status=429, error="ratelimited", retry_after=7)
    posted = web.chat_postMessage(channel="C1", text="a")
    with pytest.raises(SlackApiError) as err:
        web.chat_update(channel="C1", ts=posted["ts"], text="b")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7" and err.value.response["error"] == "ratelimited"
    web.chat_update(channel="C1", ts=posted["ts"], text="b")  # times=1: the next call passes
    assert [c.status for c in srv.calls("chat.update")] == [429, 200]
    assert srv.channel_messages("C1")[0]["text"] == "b"


def test_dropped_slow_and_failing_requests(srv: FakeSlackServer, web: WebClient) -> None:
    # A dropped connection: slack_sdk's default ConnectionErrorRetryHandler retries once.
    srv.inject_fault("auth.test", drop=True)
    assert web.auth_test()["ok"] is True
    assert [c.status for c in srv.calls("auth.test")] == [0, 200]

    srv.inject_fault("auth.test", status=None, error=None, delay_s=0.4)
    started = time.monotonic()
    web.auth_test()
    assert time.monotonic() - started >= 0.4

    srv.inject_fault("upload", status=500, error=None)
    # slack_sdk's urllib upload surfaces a 5xx as HTTPError (other non-200s as SlackRequestError).
    with pytest.raises((SlackRequestError, urllib.error.HTTPError)) as err:
        web.files_upload_v2(channel="C1", content=b"abc", filename="a.txt")
    assert "500" in str(err.value)
    uploads = srv.files.values()
    assert not any(f.uploaded or f.completed for f in uploads)


def test_response_url_five_uses_then_nothing_more_is_shown(srv: FakeSlackServer, socket_client: Any) -> None:
    _client, rec = socket_client()
    _client.connect()
    envelope_id = srv.send_slash_command("/render", "a cube", user_id="U1", channel_id="C1")
    srv.wait_for_ack(envelope_id)
    payload = next(d.payload for d in srv.deliveries if d.envelope_id == envelope_id)
    hook = WebhookClient(payload["response_url"])
    assert hook.send(text="Queued").body == "ok"
    assert hook.send(text="Started", response_type="in_channel").status_code == 200
    for _ in range(3):
        assert hook.send(text="again").status_code == 200
    # Slack allows 5 uses; how it answers a sixth is not documented, only that it is not shown.
    sixth = hook.send(text="one too many")
    assert sixth.status_code != 200
    assert [e["text"] for e in srv.ephemerals if e["source"] == "response_url"] == ["Queued", "again", "again",
                                                                                     "again"]
    assert [m["text"] for m in srv.channel_messages("C1")] == ["Started"]


# ------------------------------------------------------------------------------------------ Socket Mode


def _wait_for_reconnect(srv: FakeSlackServer) -> None:
    """Wait for the client's replacement connection, then for its reconnect paths to settle.

    Measured here: websocket-client closes the old socket from one thread while the runner
    thread sits in select() on it; about 1 run in 5 the runner then waits out its 10 s select
    timeout before it reconnects (the same race that makes close() take ~9 s, reference 1.9).
    """
    srv.wait_for(lambda: srv.connections_opened >= 2 and srv.connection_count == 1
                 and srv.usable_connection_count == 1, timeout=14)
    # The SDK opens up to two replacement sessions (processor + on_close/monitor paths);
    # give the second one time to replace the first, so envelopes go to the survivor.
    time.sleep(1.2)
    srv.wait_for_connection(timeout=12)


def test_hello_then_slash_command_and_its_ack_payload(srv: FakeSlackServer, socket_client: Any) -> None:
    client, rec = socket_client(ack=lambda req: {"response_type": "in_channel", "text": "Queued render #1"})
    client.connect()
    srv.wait_for_connection()
    envelope_id = srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id="C1", user_name="ana")
    ack = srv.wait_for_ack(envelope_id)
    assert ack.payload == {"response_type": "in_channel", "text": "Queued render #1"} and not ack.late

    hello = rec.frames[0]
    assert hello["type"] == "hello" and hello["num_connections"] == 1
    assert hello["debug_info"]["approximate_connection_time"] > 0
    assert hello["connection_info"]["app_id"] == srv.app_id
    req = rec.requests[0]
    assert req.type == "slash_commands" and req.accepts_response_payload is True
    assert (req.payload["command"], req.payload["text"], req.payload["user_name"]) == ("/render", "a red cube", "ana")
    assert req.payload["response_url"].startswith(srv.base_url)
    # The ack payload is shown like Slack shows it: the invocation, then the app's reply.
    assert [m["text"] for m in srv.channel_messages("C1")] == ["/render a red cube", "Queued render #1"]
    # The client asked for a ticket over the Web API with the app token.
    assert srv.calls("apps.connections.open")[0].headers["Authorization"] == f"Bearer {srv.app_token}"


def test_unacked_event_is_redelivered_with_same_event_id(srv: FakeSlackServer, socket_client: Any) -> None:
    # Ack only the first retry, so exactly one redelivery happens.
    client, rec = socket_client(ack=lambda req: req.retry_attempt == 1)
    client.connect()
    srv.wait_for_connection()
    event_id = srv.send_event({"type": "app_mention", "text": f"<@{srv.bot_user_id}> render a cube", "user": "U1",
                               "channel": "C1"})
    srv.wait_for(lambda: any(a.known for a in srv.acks), timeout=5)
    time.sleep(0.8)  # past the would-be second retry: none must come
    seen = [(r.envelope_id, r.retry_attempt, r.retry_reason, r.payload["event_id"]) for r in rec.requests]
    assert len(seen) == 2
    (first_env, a0, reason0, ev0), (retry_env, a1, reason1, ev1) = seen
    assert (a0, reason0, a1, reason1) == (0, "", 1, "timeout")
    assert ev0 == ev1 == event_id and first_env != retry_env
    assert [d.outcome for d in srv.deliveries] == ["timed_out", "acked"]


def test_unacked_slash_command_is_an_operation_timeout(srv: FakeSlackServer, socket_client: Any) -> None:
    client, rec = socket_client(ack=lambda req: False)
    client.connect()
    srv.wait_for_connection()
    envelope_id = srv.send_slash_command("/render", "slow", channel_id="C1")
    failed = srv.wait_for(lambda: srv.operation_timeouts, timeout=3)
    assert failed[0].envelope_id == envelope_id and failed[0].outcome == "timed_out"
    assert rec.requests[0].envelope_id == envelope_id


def test_disconnect_frame_leads_to_a_fresh_ticket(srv: FakeSlackServer, socket_client: Any) -> None:
    client, rec = socket_client()
    client.connect()
    srv.wait_for_connection()
    old_url = client.wss_uri
    srv.send_disconnect("refresh_requested")
    _wait_for_reconnect(srv)
    assert rec.of_type("disconnect")[0]["reason"] == "refresh_requested"
    assert client.wss_uri != old_url and len(srv.calls("apps.connections.open")) >= 2
    # The reconnected client still gets envelopes.
    envelope_id = srv.send_slash_command("/blender", "help", channel_id="C1")
    assert srv.wait_for_ack(envelope_id).connection_id >= 2


def test_abrupt_drop_is_noticed_and_client_reconnects(srv: FakeSlackServer, socket_client: Any) -> None:
    client, rec = socket_client()
    client.connect()
    srv.wait_for_connection()
    srv.drop_connections()
    _wait_for_reconnect(srv)
    envelope_id = srv.send_slash_command("/analyze", "I love this", channel_id="C1")
    assert srv.wait_for_ack(envelope_id).connection_id >= 2
    assert len(rec.of_type("hello")) >= 2


def test_frozen_connection_goes_unnoticed_by_websocket_client(srv: FakeSlackServer, socket_client: Any) -> None:
    client, rec = socket_client()
    client.connect()
    srv.wait_for_connection()
    time.sleep(1.3)  # let one client ping get its pong
    session = client.current_session
    assert session is not None and session.last_pong_tm > 0
    srv.freeze_connections()
    pong_before = session.last_pong_tm
    envelope_id = srv.send_slash_command("/render", "lost in a half-open socket", channel_id="C1")
    time.sleep(3.0)
    # The SDK sends pings but never times out on the missing pongs (no ping_timeout): the
    # agent's watchdog has to catch this.
    assert client.is_connected() is True
    assert session.last_pong_tm == pong_before and session.last_ping_tm > pong_before + 1
    assert srv.connections_opened == 1 and not rec.requests
    assert srv.operation_timeouts[0].envelope_id == envelope_id
    # What a watchdog can do. connect_to_new_endpoint(force=True) alone took ~10 s in 4 of 5 runs
    # here (the runner thread waits out select() on the closed fd); shutting the stale socket
    # down first wakes that select, and on_close reconnects in ~0.5 s (5 of 5 runs).
    session.sock.sock.shutdown(socket.SHUT_RDWR)
    _wait_for_reconnect(srv)
    ok_id = srv.send_slash_command("/render", "after the watchdog", channel_id="C1")
    assert srv.wait_for_ack(ok_id).connection_id == 2


def test_max_connections_answers_too_many_websockets(srv: FakeSlackServer, web: WebClient) -> None:
    srv.max_connections = 2
    app_client = WebClient(base_url=srv.api_url)
    sockets = []
    try:
        for _ in range(3):
            url = app_client.apps_connections_open(app_token=srv.app_token)["url"]
            sockets.append(websocket.create_connection(url, timeout=3))
        assert [json.loads(s.recv())["type"] for s in sockets[:2]] == ["hello", "hello"]
        refused = json.loads(sockets[2].recv())
        assert refused["type"] == "disconnect" and refused["reason"] == "too_many_websockets"
        assert refused["num_connections"] == 2
        assert srv.connection_count == 2
    finally:
        for s in sockets:
            s.close()


# -------------------------------------------------------------------------------- events and the page


def test_user_messages_echoes_and_buttons(srv: FakeSlackServer, web: WebClient, socket_client: Any) -> None:
    srv.echo_bot_messages = True
    client, rec = socket_client()
    client.connect()
    srv.wait_for_connection()
    ts = srv.post_user_message("C0GENERAL", "U1", f"<@{srv.bot_user_id}> render a torus")
    srv.post_user_message("D0SANDBOX", "U1", "render a cone")  # a DM: message.im, no app_mention
    posted = web.chat_postMessage(channel="C0GENERAL", text="Rendering", thread_ts=ts, blocks=[
        {"type": "actions", "block_id": "b1",
         "elements": [{"type": "button", "action_id": "cancel_job", "value": "job-7",
                       "text": {"type": "plain_text", "text": "Cancel"}}]}])
    web.chat_update(channel="C0GENERAL", ts=posted["ts"], text="Rendering 50%", blocks=posted["message"]["blocks"])
    envelope_id = srv.click_button("C0GENERAL", posted["ts"], "cancel_job", user_id="U1")
    srv.wait_for_ack(envelope_id)
    srv.wait_for(lambda: len(rec.requests) >= 6, timeout=5)

    events = [(r.payload.get("event", {}).get("type"), r.payload.get("event", {}).get("subtype"),
               r.payload.get("event", {}).get("channel_type")) for r in rec.requests if r.type == "events_api"]
    assert sorted(events, key=str) == sorted([("message", None, "channel"), ("app_mention", None, None),
                                              ("message", None, "im"), ("message", "bot_message", "channel"),
                                              ("message", "message_changed", "channel")], key=str)
    mention = next(r.payload["event"] for r in rec.requests if r.payload.get("event", {}).get("type") == "app_mention")
    assert mention["ts"] == ts and mention["channel"] == "C0GENERAL"
    echo = next(r.payload["event"] for r in rec.requests if r.payload.get("event", {}).get("subtype") == "bot_message")
    assert echo["bot_id"] == srv.bot_id and echo["thread_ts"] == ts
    click = next(r for r in rec.requests if r.type == "interactive")
    assert click.payload["actions"][0]["value"] == "job-7" and click.payload["container"]["message_ts"] == posted["ts"]

    # The button's response_url can replace the message that holds it.
    assert WebhookClient(click.payload["response_url"]).send(text="Cancelled", replace_original=True).body == "ok"
    assert next(m for m in srv.channel_messages("C0GENERAL") if m["ts"] == posted["ts"])["text"] == "Cancelled"


def test_web_page_state_and_command_box(srv: FakeSlackServer, socket_client: Any) -> None:
    client, rec = socket_client()
    client.connect()
    srv.wait_for_connection()
    with urllib.request.urlopen(srv.base_url, timeout=5) as resp:  # noqa: S310 - loopback
        page = resp.read().decode()
    assert "/sandbox/state" in page and "/sandbox/command" in page
    # What the page's own script sends: JSON, its origin, and the token the server put in the page.
    token = re.search(r'<meta name="sandbox-token" content="([^"]+)">', page)
    assert token is not None
    headers = {"Content-Type": "application/json", "Origin": srv.base_url.rstrip("/"),
               "Sec-Fetch-Site": "same-origin", "X-Sandbox-Token": token.group(1)}

    status, body = _post(srv.base_url + "sandbox/command", json.dumps({"text": "/render a red cube"}).encode(),
                         headers)
    envelope_id = json.loads(body)["envelope_id"]
    assert status == 200 and srv.wait_for_ack(envelope_id)
    status, body = _post(srv.base_url + "sandbox/command",
                         json.dumps({"text": "@blender render a sphere", "channel_id": "C0RENDERS"}).encode(),
                         headers)
    assert status == 200
    srv.wait_for(lambda: len(rec.requests) >= 3, timeout=5)
    command = rec.requests[0].payload
    assert (command["command"], command["text"], command["channel_id"]) == ("/render", "a red cube", "C0GENERAL")
    assert {r.payload["event"]["type"] for r in rec.requests[1:]} == {"message", "app_mention"}

    with urllib.request.urlopen(srv.base_url + "sandbox/state", timeout=5) as resp:  # noqa: S310 - loopback
        state = json.loads(resp.read())
    renders = next(c for c in state["channels"] if c["id"] == "C0RENDERS")
    assert renders["messages"][0]["text"] == f"<@{srv.bot_user_id}> render a sphere"
    assert {c["name"] for c in state["channels"]} >= {"general", "renders"} and state["connections"] == 1
