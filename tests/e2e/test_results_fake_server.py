"""The fake Slack's AI-app methods (headless_runner/sandbox/ai_apps.py) against slack_sdk's
own client: streamed messages and their rules, views.publish, suggested prompts, card and
carousel blocks, and the refusal log the suite-wide payload check reads (tests/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from headless_runner.sandbox.block_kit import refusals_since
from headless_runner.sandbox.slack_server import FakeSlackServer

C = "C0GENERAL"
DM = "D0SANDBOX"


@pytest.fixture
def srv() -> Iterator[FakeSlackServer]:
    server = FakeSlackServer(enforce_rate_limits=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def web(srv: FakeSlackServer) -> WebClient:
    return WebClient(token=srv.bot_token, base_url=srv.api_url)


def _error(call: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as info:
        call()
    return dict(info.value.response.data)


def _parent(web: WebClient, channel: str = C) -> str:
    return str(web.chat_postMessage(channel=channel, text="/render a cube")["ts"])


def _task(task_id: str, title: str, status: str, details: str = "") -> dict[str, Any]:
    chunk = {"type": "task_update", "id": task_id, "title": title, "status": status}
    if details:
        chunk["details"] = details
    return chunk


FEEDBACK = {"type": "context_actions", "elements": [{
    "type": "feedback_buttons", "action_id": "feedback",
    "positive_button": {"text": {"type": "plain_text", "text": "Good"}, "value": "up"},
    "negative_button": {"text": {"type": "plain_text", "text": "Bad"}, "value": "down"}}]}


def test_a_stream_is_opened_appended_and_stopped_in_a_thread(srv: FakeSlackServer, web: WebClient) -> None:
    parent = _parent(web)
    start = web.chat_startStream(channel=C, thread_ts=parent, recipient_team_id=srv.team_id,
                                 recipient_user_id="U0SANDUSER", chunks=[_task("build", "Build", "in_progress")])
    ts = start["ts"]
    web.chat_appendStream(channel=C, ts=ts, chunks=[_task("build", "Build", "complete", "12 objects. "),
                                                    _task("render", "Render", "in_progress", "10%")])
    web.chat_appendStream(channel=C, ts=ts, chunks=[_task("render", "Render", "in_progress", " 60%")],
                          markdown_text="rendering…")
    message = next(m for m in srv.thread_messages(C, parent) if m["ts"] == ts)
    assert message["streaming"] is True and message["text"] == "rendering…"
    # title and status are replaced, details appended
    assert message["chunks"] == [
        {"id": "build", "title": "Build", "status": "complete", "details": "12 objects. ", "output": ""},
        {"id": "render", "title": "Render", "status": "in_progress", "details": "10% 60%", "output": ""}]
    stop = web.chat_stopStream(channel=C, ts=ts, chunks=[_task("render", "Render", "complete")], blocks=[FEEDBACK])
    assert stop["message"]["blocks"] == [FEEDBACK] and "streaming" not in stop["message"]
    assert _error(lambda: web.chat_appendStream(channel=C, ts=ts, markdown_text="late"))["error"] \
        == "message_not_in_streaming_state"
    assert _error(lambda: web.chat_stopStream(channel=C, ts=ts))["error"] == "message_not_in_streaming_state"


def test_stream_rules(srv: FakeSlackServer, web: WebClient) -> None:
    parent = _parent(web)
    # thread replies only
    assert _error(lambda: web.api_call("chat.startStream", json={"channel": C}))["error"] == "invalid_arguments"
    # a channel needs both recipient fields; a DM does not
    assert _error(lambda: web.chat_startStream(channel=C, thread_ts=parent))["error"] == "missing_recipient_team_id"
    assert _error(lambda: web.chat_startStream(channel=C, thread_ts=parent, recipient_team_id=srv.team_id))[
        "error"] == "missing_recipient_user_id"
    dm_parent = _parent(web, DM)
    ts = web.chat_startStream(channel=DM, thread_ts=dm_parent, markdown_text="hi")["ts"]
    # markdown is capped per call
    assert _error(lambda: web.chat_appendStream(channel=DM, ts=ts, markdown_text="x" * 12_001))["error"] \
        == "msg_too_long"
    web.chat_appendStream(channel=DM, ts=ts, markdown_text="x" * 12_000)
    # a stream closes by itself after its lifetime
    srv.workspace.stream_lifetime_s = 0.2
    time.sleep(0.3)
    assert _error(lambda: web.chat_appendStream(channel=DM, ts=ts, markdown_text="more"))["error"] \
        == "message_not_in_streaming_state"


@pytest.mark.invalid_payloads
def test_bad_chunks_and_blocks_are_refused_and_logged(srv: FakeSlackServer, web: WebClient) -> None:
    parent = _parent(web, DM)
    ts = web.chat_startStream(channel=DM, thread_ts=parent)["ts"]
    mark = refusals_since(1 << 62)[0]
    data = _error(lambda: web.chat_appendStream(channel=DM, ts=ts, chunks=[_task("a", "A", "running")]))
    assert data["error"] == "invalid_chunks" and "/chunks/0/status" in data["errors"][0]
    data = _error(lambda: web.chat_stopStream(channel=DM, ts=ts, blocks=[{"type": "context_actions",
                                                                           "elements": []}]))
    assert data["error"] == "invalid_blocks"
    _, refused = refusals_since(mark)
    assert [(r.method, r.error) for r in refused] == [("chunks", "invalid_chunks"),
                                                      ("chat.stopStream", "invalid_blocks")]
    # a refused call changed nothing: the stream is still open
    web.chat_stopStream(channel=DM, ts=ts)


def _card(i: int) -> dict[str, Any]:
    return {"type": "card", "block_id": f"card{i}", "title": {"type": "mrkdwn", "text": f"Variant {i}"},
            "hero_image": {"type": "image", "image_url": f"https://example.com/{i}.png", "alt_text": f"v{i}"},
            "actions": [{"type": "button", "action_id": f"final_{i}", "text": {"type": "plain_text", "text": "Final"},
                         "value": str(i)}]}


@pytest.mark.invalid_payloads
def test_carousel_of_cards(srv: FakeSlackServer, web: WebClient) -> None:
    ok = web.chat_postMessage(channel=C, text="4 variations", blocks=[{"type": "carousel",
                                                                       "elements": [_card(i) for i in range(4)]}])
    assert ok["message"]["blocks"][0]["type"] == "carousel"
    too_many = _error(lambda: web.chat_postMessage(channel=C, text="11", blocks=[
        {"type": "carousel", "elements": [_card(i) for i in range(11)]}]))
    assert too_many["error"] == "invalid_blocks" and "cannot exceed 10 cards" in too_many["errors"][0]
    long_body = _card(0) | {"body": {"type": "mrkdwn", "text": "b" * 201}}
    assert _error(lambda: web.chat_postMessage(channel=C, text="x", blocks=[
        {"type": "carousel", "elements": [long_body]}]))["error"] == "invalid_blocks"


@pytest.mark.invalid_payloads
def test_views_publish_validates_the_home_view(srv: FakeSlackServer, web: WebClient) -> None:
    view = {"type": "home", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "Your renders"}},
                                        {"type": "section", "text": {"type": "mrkdwn", "text": "*a cube*"},
                                         "accessory": {"type": "image", "image_url": "https://example.com/a.png",
                                                       "alt_text": "a cube"}}]}
    first = web.views_publish(user_id="U0SANDUSER", view=view)
    assert first["view"]["type"] == "home" and srv.workspace.home_views["U0SANDUSER"]["blocks"] == view["blocks"]
    again = web.views_publish(user_id="U0SANDUSER", view=view, hash=first["view"]["hash"])
    assert again["view"]["id"] == first["view"]["id"]
    assert _error(lambda: web.views_publish(user_id="U0SANDUSER", view=view, hash=first["view"]["hash"]))[
        "error"] == "hash_conflict"
    bad = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]}
    data = _error(lambda: web.views_publish(user_id="U0SANDUSER", view=bad))
    assert data["error"] == "invalid_arguments"
    assert "/view/blocks/0/text/text" in data["response_metadata"]["messages"][0]
    assert _error(lambda: web.views_publish(user_id="U0SANDUSER", view={"type": "modal", "blocks": []}))[
        "error"] == "invalid_arguments"


def test_suggested_prompts_and_status(srv: FakeSlackServer, web: WebClient) -> None:
    prompts = [{"title": f"P{i}", "message": f"/render thing {i}"} for i in range(4)]
    web.assistant_threads_setSuggestedPrompts(channel_id=DM, prompts=prompts, title="Try")
    assert srv.workspace.suggested_prompts[-1]["prompts"] == prompts
    five = prompts + [{"title": "P5", "message": "m"}]
    assert _error(lambda: web.assistant_threads_setSuggestedPrompts(channel_id=DM, prompts=five))["error"] \
        == "invalid_arguments"
    parent = _parent(web, DM)
    web.assistant_threads_setStatus(channel_id=DM, thread_ts=parent, status="rendering…")
    assert srv.workspace.statuses[-1]["status"] == "rendering…"


@pytest.mark.invalid_payloads
def test_a_slack_file_image_must_name_an_uploaded_file(srv: FakeSlackServer, web: WebClient) -> None:
    card = {"type": "card", "title": {"type": "mrkdwn", "text": "v1"},
            "hero_image": {"type": "image", "slack_file": {"id": "F0NOSUCH"}, "alt_text": "v1"}}
    data = _error(lambda: web.chat_postMessage(channel=C, text="x", blocks=[{"type": "carousel", "elements": [card]}]))
    assert data["error"] == "invalid_blocks"
    assert data["errors"] == ["invalid slack_file id [json-pointer:/blocks/0/elements/0/hero_image/slack_file/id]"]
    uploaded = web.files_upload_v2(content=b"\x89PNG fake", filename="v1.png", channel=C)
    card["hero_image"]["slack_file"]["id"] = uploaded["file"]["id"]
    assert web.chat_postMessage(channel=C, text="x", blocks=[{"type": "carousel", "elements": [card]}])["ok"]
