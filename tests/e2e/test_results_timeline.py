"""The streamed task timeline (agent/timeline.py) through the real agent and the local Slack:
opened, appended and stopped in order within the server's rules; with streaming refused, the
placeholder's paced chat.update progress carries on and the result still arrives."""

from __future__ import annotations

from test_agent_harness import Harness, harness  # noqa: F401 - the fixture

C = "C0RENDERS"


def _render(h: Harness, text: str) -> str:
    h.renderer.frame_s = 0.3  # 8 frames, 2.4 s: several paced appends
    h.srv.send_slash_command("/render", text, user_id="U1", channel_id=C)
    ts = h.wait(lambda: [m["ts"] for m in h.bot_messages(C) if m.get("thread_ts") in (None, m["ts"])],
                what="placeholder")[0]
    h.wait(lambda: h.final_update(ts), timeout=30, what="final update")
    return str(ts)


def test_timeline_is_streamed_in_the_thread_in_order(harness: Harness) -> None:  # noqa: F811
    h = harness
    ts = _render(h, "a red cube rotating 8")
    calls = [c for c in h.srv.calls() if c.method.endswith("Stream")]
    methods = [c.method for c in calls]
    assert methods[0] == "chat.startStream" and methods[-1] == "chat.stopStream", methods
    assert methods.count("chat.startStream") == 1 and methods.count("chat.stopStream") == 1
    assert "chat.appendStream" in methods
    assert all(c.status == 200 and c.response and c.response["ok"] for c in calls), \
        [(c.method, c.response) for c in calls]
    start = calls[0]
    assert start.params["thread_ts"] == ts  # a thread reply, to the requester, in the channel
    assert start.params["recipient_user_id"] == "U1" and start.params["recipient_team_id"] == h.srv.team_id
    # The timeline's steps, as the fake Slack applied the chunks.
    stream_ts = start.response["ts"]
    message = next(m for m in h.srv.thread_messages(C, ts) if m["ts"] == stream_ts)
    assert "streaming" not in message  # stopped
    steps = {t["id"]: t for t in message["chunks"]}
    assert list(steps) == ["interpret", "build", "render", "encode", "upload"]  # no draft for a tiny render
    assert all(t["status"] == "complete" for t in steps.values()), steps
    titles = [ch["title"] for c in calls for ch in c.params.get("chunks") or [] if ch["id"] == "render"]
    assert any("frame" in t and "%" in t for t in titles), titles
    # Order against the rest of the job: stream opened after the placeholder, stopped before the final.
    final = h.final_update(ts)
    upload = h.srv.calls("files.completeUploadExternal")[-1]
    assert start.at < upload.at < calls[-1].at <= final.at
    # Appends are paced (update_interval_s = 1.0 in the harness) except on a step change.
    appends = [c for c in calls if c.method == "chat.appendStream"]
    assert len(appends) <= 8, len(appends)


def test_streaming_refused_falls_back_to_paced_updates(harness: Harness) -> None:  # noqa: F811
    h = harness
    h.srv.inject_fault("chat.startStream", status=None, error="feature_not_enabled", times=5)
    ts = _render(h, "a blue cube rotating 8")
    assert [c.response["error"] for c in h.srv.calls("chat.startStream")] == ["feature_not_enabled"]
    assert not h.srv.calls("chat.appendStream") and not h.srv.calls("chat.stopStream")
    progress = [c for c in h.srv.calls("chat.update") if c.params.get("ts") == ts and "frame" in c.params["text"]]
    assert progress, "no paced progress update on the placeholder"
    assert "Done in" in h.final_update(ts).params["text"]
    assert any(f.thread_ts == ts for f in h.srv.files.values())


def test_frame_progress_appends_spend_only_the_budgets_surplus() -> None:
    """With the farm's budget, step changes are always appended; frame progress only while
    tokens beyond the reserve are there (the rest is dropped: the next append is newer)."""
    from slack_sdk import WebClient

    from headless_runner.sandbox.slack_server import FakeSlackServer
    from slack_ai_addon.agent.timeline import Timelines
    from slack_ai_addon.core.pipeline import RenderProgress
    from slack_ai_addon.storage.db.budget import SlackBudget

    with FakeSlackServer(enforce_rate_limits=True) as srv:
        web = WebClient(token=srv.bot_token, base_url=srv.api_url)
        parent = web.chat_postMessage(channel="D0SANDBOX", text="/render")["ts"]
        budget = SlackBudget(None, workspace="w", updates_per_minute=50, posts_per_second=1)
        timelines = Timelines(web, interval_s=0.0, budget=budget, appends_per_minute=6.0)  # burst 4, reserve 2
        timelines.start("J1", channel="D0SANDBOX", thread_ts=parent, user_id="U1", is_dm=True, draft=False)
        timelines.progress("J1", RenderProgress("building", 0, 24))  # a step change
        for frame in range(1, 21):
            timelines.progress("J1", RenderProgress("rendering", frame, 24))  # the first is a step change
        timelines.progress("J1", RenderProgress("encoding", 24, 24))  # a step change
        appends = srv.calls("chat.appendStream")
        titles = [[c["title"] for c in a.params["chunks"]] for a in appends]
        assert len(appends) < 8, titles  # 22 progress events
        assert any("Encode" in t for t in titles[-1])  # a step change still had its token
        assert all(a.response and a.response["ok"] for a in appends)
