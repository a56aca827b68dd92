"""The agent under Socket Mode and Web API trouble: disconnects, drops, a half-open link,
429s, failing uploads, malformed envelopes, and a restart in the middle of retries."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_agent_harness import Harness, close_harness, make_harness, png_ok
from test_agent_harness import harness as harness  # noqa: F401  (the fixture)

C = "C0GENERAL"


def _render_and_wait(h: Harness, text: str, user: str = "U1") -> str:
    before = {j.id for j in h.store.list_jobs()}
    env = h.srv.send_slash_command("/render", text, user_id=user, channel_id=C)
    h.srv.wait_for_ack(env, timeout=15.0)
    job = h.wait(lambda: [j for j in h.store.list_jobs() if j.id not in before and j.status.is_final],
                 timeout=20, what=f"job for {text!r}")[0]
    return str(job.id)


@pytest.mark.parametrize("scenario", ["disconnect", "warning", "too_many_websockets", "drop", "freeze"])
def test_connection_recovers_within_15s_without_losing_or_repeating_jobs(harness: Harness, scenario: str) -> None:
    h = harness
    _render_and_wait(h, "a red cube")
    opened = h.srv.connections_opened
    t0 = time.monotonic()
    if scenario == "disconnect":
        h.srv.send_disconnect("refresh_requested", close_after_s=1.0)
    elif scenario in ("warning", "too_many_websockets"):  # Slack's other disconnect reasons
        h.srv.send_disconnect(scenario, close_after_s=1.0)
    elif scenario == "drop":
        h.srv.drop_connections()
    else:
        h.srv.freeze_connections()
    # An event sent while the link is broken must still arrive once (Slack redelivers).
    event_id = h.srv.send_event({"type": "app_mention", "text": f"<@{h.srv.bot_user_id}> render a blue cube",
                                 "user": "U1", "channel": C, "ts": "1700000100.000100"})
    h.wait(lambda: h.srv.connections_opened > opened, timeout=15, what="a new connection")
    h.wait(lambda: h.agent.status().state == "connected", timeout=15, what="connected state")
    recovered = time.monotonic() - t0
    assert recovered < 15, recovered
    # The new connection works: a fresh slash command is acked and rendered.
    job_id = _render_and_wait(h, "a green cube")
    assert h.store.get(job_id).status.value == "done"
    mention_jobs = h.wait(lambda: [j for j in h.store.list_jobs() if "blue" in j.request_text and
                                   j.status.is_final], timeout=20, what="the mention's job")
    time.sleep(1.0)
    assert len([j for j in h.store.list_jobs() if "blue" in j.request_text]) == 1
    assert len(mention_jobs) == 1 and event_id
    assert len(h.renderer.renders) == 3  # nothing lost, nothing rendered twice
    if scenario == "freeze":
        assert h.agent._watchdog is not None and h.agent._watchdog.forced >= 1


def test_429_on_chat_update_waits_retry_after(tmp_path: Path) -> None:
    h = make_harness(tmp_path, update_interval_s=0.5)
    h.agent.start()
    assert h.agent.wait_until_connected(10)
    h.start_drain()
    try:
        h.renderer.frame_s = 0.2
        h.srv.inject_fault("chat.update", status=429, error="ratelimited", retry_after=2, times=1)
        h.srv.send_slash_command("/render", "a red cube rotating 15", user_id="U1", channel_id=C)
        ts = h.wait(lambda: h.bot_messages(C) and h.bot_messages(C)[0]["ts"], what="placeholder")
        h.wait(lambda: h.final_update(ts), timeout=20, what="final")
        updates = [c for c in h.srv.calls("chat.update") if c.params.get("ts") == ts]
        limited = [c for c in updates if c.status == 429]
        assert len(limited) == 1
        after = [c for c in updates if c.at > limited[0].at]
        assert after and after[0].at - limited[0].at >= 1.9  # Retry-After: 2
        assert "Done" in h.final_update(ts).params["text"]
    finally:
        close_harness(h)


def test_failing_upload_is_retried_then_reported_readably(harness: Harness) -> None:
    h = harness
    h.srv.inject_fault("files.getUploadURLExternal", status=500, error="internal_error", retry_after=None, times=10)
    h.srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id=C)
    ts = h.wait(lambda: h.bot_messages(C) and h.bot_messages(C)[0]["ts"], what="placeholder")
    h.wait(lambda: h.final_update(ts), timeout=30, what="final")
    tries = [c for c in h.srv.calls("files.getUploadURLExternal")]
    assert len(tries) >= 3
    notice = h.wait(lambda: [m for m in h.srv.thread_messages(C, ts) if "could not upload" in m.get("text", "")],
                    what="upload failure notice")[0]
    assert "render.png" in notice["text"] and "Traceback" not in notice["text"]
    assert "upload to Slack failed" in h.final_update(ts).params["text"] or \
        "upload to Slack failed" in str(h.final_update(ts).params["blocks"])
    # The next upload works again.
    h.srv.clear_faults()
    _render_and_wait(h, "a blue cube")
    h.wait(lambda: any(png_ok(f.data)[2] > 200 for f in h.srv.files.values() if f.completed), what="upload")


def test_interpretation_error_reaches_the_user(harness: Harness) -> None:
    h = harness
    h.srv.send_slash_command("/render", "something unrenderable", user_id="U1", channel_id=C)
    ts = h.wait(lambda: h.bot_messages(C) and h.bot_messages(C)[0]["ts"], what="placeholder")
    final = h.wait(lambda: h.final_update(ts), timeout=15, what="failure message")
    assert "nothing I can build" in final.params["text"]
    assert any("nothing I can build" in m.get("text", "") for m in h.srv.thread_messages(C, ts))


def test_malformed_envelopes_are_acked_and_survived(harness: Harness) -> None:
    h = harness
    envs = [
        h.srv.send_slash_command("/render", "x" * 100_000, user_id="U1", channel_id=C),
        h.srv.send_slash_command("/teleport", "me", user_id="U1", channel_id=C),
        h.srv.send_interactive({"type": "block_actions", "actions": "not a list"}),
        h.srv.send_interactive({"type": "block_actions", "actions": [{"action_id": "cancel_job", "value": 42}],
                                "user": {"id": 7}}),
        h.srv.send_interactive({"type": "view_submission"}),
        h.srv.send_interactive({"type": "shortcut", "callback_id": "x"}),
    ]
    event_ids = [
        h.srv.send_event({"type": "app_mention", "text": None, "user": ["U1"], "channel": C}),
        h.srv.send_event({"type": "reaction_added", "user": "U1"}),
        h.srv.send_event({"type": "message", "channel": C}),
        h.srv.send_event({"type": "app_mention", "text": f"<@{h.srv.bot_user_id}> " + "render a cube " * 8000,
                          "user": "U1", "channel": C}),
    ]
    for env in envs:
        h.srv.wait_for_ack(env, timeout=3.0)
    ack = h.srv.wait_for_ack(envs[1])
    assert "/teleport" in ack.payload["text"]
    h.wait(lambda: len(h.srv.acks) >= len(envs) + len(event_ids), what="all acked")
    assert not h.srv.operation_timeouts
    # The 100 kB /render still renders (truncated, with a warning); the agent is still healthy.
    job = h.wait(lambda: [j for j in h.store.list_jobs() if j.request_text.startswith("xxx") and j.status.is_final],
                 timeout=20, what="long job")[0]
    assert len(job.request_text) <= 4000 and any("characters" in w for w in job.warnings)
    assert h.agent.status().state == "connected"
    _render_and_wait(h, "a red cube")


def test_restart_does_not_rerun_a_redelivered_event(tmp_path: Path) -> None:
    state = tmp_path / "agent_state.db"
    h1 = make_harness(tmp_path / "a", state_path=state)
    h1.agent.start()
    assert h1.agent.wait_until_connected(10)
    h1.start_drain()
    event = {"type": "app_mention", "text": f"<@{h1.srv.bot_user_id}> render a red cube", "user": "U1",
             "channel": C, "ts": "1700000200.000100"}
    try:
        h1.srv.send_event(event, event_id="EvRESTART")
        h1.wait(lambda: h1.store.list_jobs() and h1.job_done(h1.store.list_jobs()[0].id), what="first job")
    finally:
        close_harness(h1)
    # A new process (same state file, same job store) gets Slack's retry of that event.
    h2 = make_harness(tmp_path / "b", state_path=state, store=h1.store)
    h2.agent.start()
    assert h2.agent.wait_until_connected(10)
    h2.start_drain()
    try:
        h2.srv.send_event(event, event_id="EvRESTART")
        h2.wait(lambda: len(h2.srv.acks) >= 1, what="ack")
        time.sleep(1.0)
        assert h2.renderer.renders == [] and len(h2.store.list_jobs()) == 1
    finally:
        close_harness(h2)


def test_stop_is_quick_and_leaves_no_connection(harness: Harness) -> None:
    h = harness
    assert h.srv.connection_count == 1
    t0 = time.monotonic()
    assert h.agent.stop(timeout=10)
    took = time.monotonic() - t0
    assert took < 3.0, took
    h.wait(lambda: h.srv.connection_count == 0, timeout=5, what="connection closed")
    assert h.agent.status().state == "offline"


def test_bad_tokens_are_refused(tmp_path: Path) -> None:
    from slack_ai_addon.agent.service import AgentConfigError, AgentService, check_tokens
    from slack_ai_addon.core.config import Settings

    assert check_tokens(Settings(slack_bot_token="xoxb-1", slack_app_token="xapp-1")) == []
    problems = check_tokens(Settings(slack_bot_token="xoxp-1", slack_app_token=""))
    assert len(problems) == 2 and "xoxb-" in problems[0] and "SLACK_APP_TOKEN" in problems[1]
    h = make_harness(tmp_path)
    try:
        agent = AgentService(h.runtime, settings=Settings(slack_bot_token="nope", slack_app_token="xapp-1"))
        with pytest.raises(AgentConfigError) as err:
            agent.start()
        assert "nope" not in str(err.value)
        assert agent.status().state == "error"
        # A well-formed but wrong token: auth.test fails, status says so.
        agent = AgentService(h.runtime, settings=Settings(slack_bot_token="xoxb-wrong", slack_app_token="xapp-1",
                                                          slack_api_url=h.srv.api_url))
        agent.start()
        assert not agent.wait_until_connected(5)
        assert agent.status().state == "error" and "auth.test" in agent.status().detail
        agent.stop(1)
    finally:
        close_harness(h)
