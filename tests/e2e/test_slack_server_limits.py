"""Slack's rate tiers and Block Kit limits in the local Slack server, driven by the real
slack_sdk WebClient, and the agent's own pacing (SlackOutbox) kept under those tiers.

Expected answers are written from Slack's documentation and from answers real Slack gave
(docs/TESTING.md lists the sources), never from the server's own constants. Time windows are
shrunk with `rate_window_scale` so the rules hold as on Slack, only faster."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from headless_runner.sandbox import FakeSlackServer
from slack_ai_addon.agent import blocks as bk
from slack_ai_addon.agent.replies import SlackOutbox

pytestmark = pytest.mark.timeout(60)

C = "C0RENDERS"


@pytest.fixture
def srv() -> Iterator[FakeSlackServer]:
    server = FakeSlackServer(echo_bot_messages=False).start()
    yield server
    server.stop()


@pytest.fixture
def web(srv: FakeSlackServer) -> WebClient:
    return WebClient(token=srv.bot_token, base_url=srv.api_url)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _refusal(call: Any) -> dict[str, Any]:
    """The answer of a call Slack refuses with ok:false (HTTP 200)."""
    with pytest.raises(SlackApiError) as err:
        call()
    assert err.value.response.status_code == 200
    data = err.value.response.data
    assert isinstance(data, dict) and data["ok"] is False
    return data


def _most_in_any_window(stamps: list[float], window_s: float) -> int:
    stamps = sorted(stamps)
    most, start = 0, 0
    for end, at in enumerate(stamps):
        while at - stamps[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


# ------------------------------------------------------------------------------------ rate tiers


def test_chat_update_burst_above_tier_3_gets_429_with_retry_after() -> None:
    # Tier 3 is 50 calls per minute per method; a minute lasts 3 s here.
    srv = FakeSlackServer(rate_window_scale=0.05, echo_bot_messages=False).start()
    try:
        web = WebClient(token=srv.bot_token, base_url=srv.api_url)
        ts = web.chat_postMessage(channel=C, text="placeholder")["ts"]
        started = time.monotonic()
        for i in range(50):
            web.chat_update(channel=C, ts=ts, text=f"frame {i}", blocks=[_section(f"frame {i}")])
        assert time.monotonic() - started < 3.0, "the burst must fit in one (shrunk) minute"
        with pytest.raises(SlackApiError) as err:
            web.chat_update(channel=C, ts=ts, text="frame 50", blocks=[_section("frame 50")])
        answer = err.value.response
        assert answer.status_code == 429
        assert answer.data == {"ok": False, "error": "ratelimited"}
        retry_after = int(answer.headers["Retry-After"])
        assert retry_after >= 1
        assert srv.channel_messages(C)[0]["text"] == "frame 49"  # the refused update changed nothing
        # Other methods have their own budget; after Retry-After the method works again.
        web.chat_postMessage(channel=C, text="still fine", thread_ts=ts)
        time.sleep(retry_after)
        web.chat_update(channel=C, ts=ts, text="after the wait", blocks=[_section("after the wait")])
        assert srv.channel_messages(C)[0]["text"] == "after the wait"
    finally:
        srv.stop()


def test_post_message_is_limited_per_channel_not_per_workspace() -> None:
    # About one message per second per channel, short bursts allowed: a long burst in one
    # channel is refused sooner or later, while another channel is not affected.
    srv = FakeSlackServer(rate_window_scale=0.2, echo_bot_messages=False).start()
    try:
        web = WebClient(token=srv.bot_token, base_url=srv.api_url)
        refused = 0
        for i in range(30):  # 30 messages in well under 6 (shrunk) seconds
            try:
                web.chat_postMessage(channel="C0GENERAL", text=f"spam {i}")
            except SlackApiError as exc:
                assert exc.response.status_code == 429 and exc.response["error"] == "ratelimited"
                assert int(exc.response.headers["Retry-After"]) >= 1
                refused += 1
        assert refused > 0
        assert web.chat_postMessage(channel=C, text="another channel")["ok"] is True
    finally:
        srv.stop()


def test_agent_pacing_keeps_under_the_tiers() -> None:
    """SlackOutbox, paced as the agent paces it, against the server's tiers: two renders'
    progress streams into one channel, thread replies pile up at the same time, and the
    server never answers 429. One minute lasts 1.2 s here; the agent's intervals shrink by
    the same factor."""
    scale = 0.02
    srv = FakeSlackServer(rate_window_scale=scale, echo_bot_messages=False).start()
    pool = ThreadPoolExecutor(max_workers=4)
    outbox = SlackOutbox(WebClient(token=srv.bot_token, base_url=srv.api_url), post_interval_s=1.0 * scale,
                         update_interval_s=3.0 * scale, executor=pool)
    try:
        placeholders = [outbox.post(C, f"Queued render {i}", [bk.section(f"Queued render {i}")]) for i in range(2)]
        for ts in placeholders:
            outbox.updates.started(C, ts)

        def thread_replies() -> None:  # as fast as the I/O pool can call it; the pacer spaces them
            for i in range(40):
                outbox.post(C, f"note {i}", [bk.section(f"note {i}")], thread_ts=placeholders[i % 2])

        poster = threading.Thread(target=thread_replies)
        poster.start()
        until = time.monotonic() + 3 * 60 * scale  # three minutes of Slack time
        frame = 0
        while time.monotonic() < until:
            frame += 1
            for ts in placeholders:
                outbox.updates.set(C, ts, f"Rendering frame {frame}",
                                   [bk.section(f"🎬 *Rendering* frame {frame}"), bk.context(f"job {ts}")])
            time.sleep(0.002)
        poster.join(30)
        for ts in placeholders:
            outbox.update_now(C, ts, "Done", [bk.section("✅ *Done*")])
        calls = srv.calls()
    finally:
        outbox.updates.stop()
        pool.shutdown(wait=True)
        srv.stop()

    assert [c for c in calls if c.status == 429] == []
    assert all(c.status == 200 and c.response and c.response["ok"] for c in calls), \
        [c.response for c in calls if not (c.response or {}).get("ok")]
    updates = [c for c in calls if c.method == "chat.update"]
    posts = [c for c in calls if c.method == "chat.postMessage"]
    minute = 60 * scale
    # Tier 3: at most 50 chat.update per minute; chat.postMessage: one per second per channel.
    assert _most_in_any_window([c.at for c in updates], minute) <= 50
    assert _most_in_any_window([c.at for c in posts], minute) <= 60
    assert len(posts) == 42
    # One new content per message every 3 s (on average: at this scale a few milliseconds of
    # HTTP jitter show as a shorter gap), and the progress did reach Slack.
    for ts in placeholders:
        stamps = [c.at for c in updates if c.params["ts"] == ts]
        assert len(stamps) >= 20
        assert (stamps[-1] - stamps[0]) / (len(stamps) - 1) >= 0.9 * 3 * scale
        assert [c for c in updates if c.params["ts"] == ts][-1].params["text"] == "Done"
    stored = {m["ts"]: m["text"] for m in srv.channel_messages(C)}
    assert [stored[ts] for ts in placeholders] == ["Done", "Done"]


def test_rate_limits_can_be_switched_off_for_deliberate_bursts() -> None:
    srv = FakeSlackServer(enforce_rate_limits=False, echo_bot_messages=False).start()
    try:
        web = WebClient(token=srv.bot_token, base_url=srv.api_url)
        for i in range(10):
            web.chat_postMessage(channel=C, text=f"burst {i}")
        assert [c.status for c in srv.calls("chat.postMessage")] == [200] * 10
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------- Block Kit

# Slack's answer to an oversized section text (as real Slack answered it):
# errors "must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
# response_metadata.messages the same with "[ERROR] " in front.
TOO_LONG_SECTION = "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
TOO_MANY_BLOCKS = "no more than 50 items allowed [json-pointer:/blocks]"


@pytest.mark.invalid_payloads
@pytest.mark.parametrize("method", ["chat.postMessage", "chat.update", "chat.postEphemeral"])
def test_oversized_section_is_refused_with_invalid_blocks(srv: FakeSlackServer, web: WebClient,
                                                          method: str) -> None:
    ts = web.chat_postMessage(channel=C, text="placeholder")["ts"]
    blocks = [_section("x" * 3001)]
    send = {
        "chat.postMessage": lambda: web.chat_postMessage(channel=C, text="long", blocks=blocks),
        "chat.update": lambda: web.chat_update(channel=C, ts=ts, text="long", blocks=blocks),
        "chat.postEphemeral": lambda: web.chat_postEphemeral(channel=C, user="U1", text="long", blocks=blocks),
    }[method]
    data = _refusal(send)
    assert data["error"] == "invalid_blocks"
    assert TOO_LONG_SECTION in data["errors"]
    assert f"[ERROR] {TOO_LONG_SECTION}" in data["response_metadata"]["messages"]
    assert [m["text"] for m in srv.channel_messages(C)] == ["placeholder"] and srv.ephemerals == []


@pytest.mark.invalid_payloads
def test_fifty_one_blocks_are_refused(srv: FakeSlackServer, web: WebClient) -> None:
    data = _refusal(lambda: web.chat_postMessage(channel=C, text="many",
                                                 blocks=[_section(f"row {i}") for i in range(51)]))
    assert data["error"] == "invalid_blocks"
    assert TOO_MANY_BLOCKS in data["errors"]
    assert f"[ERROR] {TOO_MANY_BLOCKS}" in data["response_metadata"]["messages"]
    assert srv.channel_messages(C) == []


def test_a_message_at_every_limit_is_accepted(srv: FakeSlackServer, web: WebClient) -> None:
    fields = [{"type": "mrkdwn", "text": "f" * 2000} for _ in range(10)]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
        {"type": "section", "block_id": "b" * 255, "text": {"type": "mrkdwn", "text": "s" * 3000}},
        {"type": "section", "fields": fields},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"c{i}"} for i in range(10)]},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": f"b{i}"},
                                          "action_id": f"a{i}", "value": str(i)} for i in range(25)]},
        {"type": "divider"},
    ]
    blocks += [_section(f"row {i}") for i in range(50 - len(blocks))]
    posted = web.chat_postMessage(channel=C, text="at the limits", blocks=blocks)
    assert posted["ok"] is True
    assert srv.channel_messages(C)[0]["blocks"] == blocks
    updated = web.chat_update(channel=C, ts=posted["ts"], text="still at the limits", blocks=blocks)
    assert updated["ok"] is True


@pytest.mark.invalid_payloads
@pytest.mark.parametrize(("blocks", "expected"), [
    # Wording as real Slack answered these (docs/TESTING.md).
    ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
     "no more than 10 items allowed [json-pointer:/blocks/0/fields]"),
    ([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"},
                                        "action_id": f"a{i}"} for i in range(26)]}],
     "no more than 25 items allowed [json-pointer:/blocks/0/elements]"),
])
def test_documented_block_limits_with_slacks_wording(srv: FakeSlackServer, web: WebClient,
                                                      blocks: list[dict[str, Any]], expected: str) -> None:
    data = _refusal(lambda: web.chat_postMessage(channel=C, text="x", blocks=blocks))
    assert data["error"] == "invalid_blocks" and expected in data["errors"]


@pytest.mark.invalid_payloads
@pytest.mark.parametrize(("blocks", "pointer"), [
    ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "/blocks/0/text/text"),
    ([_section("ok"), {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
     "/blocks/1/fields/0/text"),
    ([{"type": "section", "block_id": "b" * 256, "text": {"type": "mrkdwn", "text": "x"}}], "/blocks/0/block_id"),
    ([_section("a") | {"block_id": "same"}, _section("b") | {"block_id": "same"}], "/blocks/1/block_id"),
    ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}], "/blocks/0/elements"),
    ([_section("")], "/blocks/0/text/text"),
    # Checked by slack_sdk's own models: a button's text is at most 75 characters.
    ([{"type": "actions", "elements": [{"type": "button", "action_id": "a",
                                        "text": {"type": "plain_text", "text": "b" * 76}}]}], "/blocks/0"),
    ([{"type": "no_such_block"}], "/blocks/0/type"),
])
def test_other_block_kit_violations_are_refused(srv: FakeSlackServer, web: WebClient, blocks: list[dict[str, Any]],
                                                pointer: str) -> None:
    data = _refusal(lambda: web.chat_postMessage(channel=C, text="x", blocks=blocks))
    assert data["error"] == "invalid_blocks"
    assert any(e.endswith(f"[json-pointer:{pointer}]") for e in data["errors"]), data["errors"]
    assert srv.channel_messages(C) == []


def test_blocks_that_are_not_json_are_invalid_blocks_format(srv: FakeSlackServer) -> None:
    web = WebClient(token=srv.bot_token, base_url=srv.api_url)
    data = _refusal(lambda: web.api_call("chat.postMessage", params={"channel": C, "text": "x",
                                                                      "blocks": "[{not json"}))
    assert data["error"] == "invalid_blocks_format"


@pytest.mark.invalid_payloads
def test_response_url_with_too_many_blocks_is_not_shown(srv: FakeSlackServer) -> None:
    srv.send_slash_command("/render", "a cube", user_id="U1", channel_id=C)
    delivery = srv.wait_for(lambda: srv.deliveries, what="the slash command")[0]
    hook = WebhookClient(delivery.payload["response_url"])
    refused = hook.send(text="too many", blocks=[_section(f"row {i}") for i in range(51)],
                        response_type="in_channel")
    assert refused.status_code != 200
    assert srv.channel_messages(C) == [] and srv.ephemerals == []
    assert hook.send(text="fine", blocks=[_section("fine")]).status_code == 200
    assert [e["text"] for e in srv.ephemerals] == ["fine"]


def test_agent_messages_fit_block_kit(srv: FakeSlackServer) -> None:
    """The agent's own builders at their longest still pass Slack's checks."""
    long = "y" * 10_000
    cancel = bk.button("Cancel", bk.ACTION_CANCEL, "20260101-000000-abcdef", "danger")
    messages = [bk.plain(long), (long, [bk.section(long), bk.context(*[long] * 12),
                                        {"type": "actions", "elements": [cancel]}])]
    web = WebClient(token=srv.bot_token, base_url=srv.api_url)
    for i, (text, blocks) in enumerate(messages):
        ts = web.chat_postMessage(channel=f"C0LIMIT{i}", text=bk.clip(text, bk.TEXT_LIMIT), blocks=blocks)["ts"]
        web.chat_update(channel=f"C0LIMIT{i}", ts=ts, text=bk.clip(text, bk.TEXT_LIMIT), blocks=blocks)
    assert all(c.status == 200 and c.response and c.response["ok"] for c in srv.calls())
