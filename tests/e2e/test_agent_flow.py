"""The agent end to end against FakeSlackServer with real slack_sdk: /render, /analyze,
/blender, mentions, follow-ups, dedupe and the self-event filter."""

from __future__ import annotations

import io
import time

from PIL import Image
from test_agent_harness import Harness, png_ok
from test_agent_harness import harness as harness  # noqa: F401  (the fixture)

C = "C0GENERAL"


def _placeholder(h: Harness, channel: str = C, n: int = 1) -> list[dict]:
    return h.wait(lambda: (msgs := h.bot_messages(channel)) and len(msgs) >= n and msgs, what="placeholder")


def test_render_ack_placeholder_progress_upload_final_in_order(harness: Harness) -> None:
    h = harness
    h.renderer.frame_s = 0.3  # 8 frames, 2.4 s: long enough for paced (1 s) progress updates
    t0 = time.monotonic()
    env = h.srv.send_slash_command("/render", "a red cube rotating 8", user_id="U1", channel_id=C, user_name="ana")
    ack = h.srv.wait_for_ack(env, timeout=3.0)
    assert time.monotonic() - t0 < 1.0
    assert ack.payload == {"response_type": "in_channel"}
    placeholder = _placeholder(h)[0]
    ts = placeholder["ts"]
    assert "Queued" in placeholder["text"] and placeholder.get("thread_ts") in (None, ts)  # top level (a parent)
    h.wait(lambda: h.final_update(ts), timeout=20, what="final update")
    # Everything in order: placeholder post, progress updates, upload, final update.
    names = []
    for call in h.srv.calls():
        if call.method == "chat.postMessage" and call.params.get("channel") == C and not call.params.get("thread_ts"):
            names.append("post")
        elif call.method == "chat.update" and call.params.get("ts") == ts:
            names.append("final" if "Done" in call.params["text"] else "progress")
        elif call.method == "files.completeUploadExternal":
            names.append("upload")
            assert call.params.get("thread_ts") == ts and call.params.get("channel_id") == C
    assert names[0] == "post" and names[-1] == "final" and names[-2] == "upload", names
    assert "progress" in names[1:-2], names  # at least one progress update before the upload
    # Every chat.update carried blocks with its text.
    for call in h.srv.calls("chat.update"):
        assert call.params.get("blocks") and call.params.get("text")
    files = [f for f in h.srv.files.values() if f.thread_ts == ts]
    by_name = {f.filename: f for f in files}
    assert set(by_name) == {"poster.png", "turntable.gif"}
    assert png_ok(by_name["poster.png"].data)[0] > 200  # red
    gif = Image.open(io.BytesIO(by_name["turntable.gif"].data))
    assert by_name["turntable.gif"].data[:6] in (b"GIF87a", b"GIF89a") and gif.n_frames == 8
    final = h.final_update(ts)
    assert "Done in" in final.params["text"]
    final_blocks = str(final.params["blocks"])
    assert "workbench" in final_blocks and "stub" in final_blocks and "Re-render in high quality" in final_blocks
    job = h.store.list_jobs()[0]
    assert job.requester.user_id == "U1" and job.slack_ts == ts
    assert any(m["direction"] == "in" and m["kind"] == "slash:/render" for m in h.store.messages)


def test_progress_updates_are_paced_per_message(harness: Harness) -> None:
    h = harness
    h.renderer.frame_s = 0.25  # 20 frames, 5 s: many progress events, few updates
    h.srv.send_slash_command("/render", "a blue cube rotating 20", user_id="U1", channel_id=C)
    ts = _placeholder(h)[0]["ts"]
    h.wait(lambda: h.final_update(ts), timeout=25, what="final update")
    updates = [c.at for c in h.srv.calls("chat.update") if c.params.get("ts") == ts]
    posted = [c.at for c in h.srv.calls("chat.postMessage") if not c.params.get("thread_ts")][0]
    stamps = [posted] + updates
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert len(updates) >= 3  # progress did reach Slack
    assert min(gaps) >= 0.9, gaps  # update_interval_s=1.0 in the harness
    assert any("frame" in c.params["text"] for c in h.srv.calls("chat.update"))


def test_ack_is_fast_while_a_render_runs(harness: Harness) -> None:
    h = harness
    h.renderer.frame_s = 0.3
    h.srv.send_slash_command("/render", "a green cube rotating 10", user_id="U1", channel_id=C)
    assert h.renderer.started.wait(5)
    latencies = []
    for i in range(10):
        t0 = time.monotonic()
        env = h.srv.send_slash_command("/analyze", f"I love this {i}", user_id="U2", channel_id=C)
        h.srv.wait_for_ack(env, timeout=3.0)
        latencies.append(time.monotonic() - t0)
    assert max(latencies) < 0.5, latencies
    assert not h.srv.operation_timeouts


def test_analyze_replies_in_thread(harness: Harness) -> None:
    h = harness
    env = h.srv.send_slash_command("/analyze", "I love this new AI system!", user_id="U1", channel_id=C)
    assert h.srv.wait_for_ack(env).payload == {"response_type": "in_channel"}
    parent = _placeholder(h)[0]
    reply = h.wait(lambda: [m for m in h.srv.thread_messages(C, parent["ts"]) if m.get("bot_id")
                            and m["ts"] != parent["ts"]], what="analysis reply")[0]
    assert "positive" in reply["text"] and "0.80" in reply["text"]
    assert "stub-1" in str(reply["blocks"])


def test_empty_render_gets_usage_hint_in_ack(harness: Harness) -> None:
    h = harness
    env = h.srv.send_slash_command("/render", "   ", user_id="U1", channel_id=C)
    ack = h.srv.wait_for_ack(env)
    assert ack.payload["response_type"] == "ephemeral" and "/render a red cube" in ack.payload["text"]
    time.sleep(0.3)
    assert h.store.list_jobs() == []


def test_blender_help_status_jobs(harness: Harness) -> None:
    h = harness
    ack = h.srv.wait_for_ack(h.srv.send_slash_command("/blender", "help", user_id="U1", channel_id=C))
    assert "/render" in ack.payload["text"] and "/blender cancel" in ack.payload["text"]
    h.srv.send_slash_command("/blender", "status", user_id="U1", channel_id=C)
    post = h.wait(lambda: [p for p in h.srv.response_url_posts if "Node status" in str(p)], what="status")[0]
    assert "queue" in str(post) and "test-node" in str(post)
    h.srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id=C)
    h.wait(lambda: h.store.list_jobs() and h.job_done(h.store.list_jobs()[0].id), what="job done")
    # The node registry: this node's heartbeat row is listed by /blender status, on any node.
    h.wait(lambda: any(n.id == "test-node" and n.jobs_done >= 1 for n in h.store.list_nodes()), what="node row")
    h.srv.send_slash_command("/blender", "status", user_id="U1", channel_id=C)
    post = h.wait(lambda: [p for p in h.srv.response_url_posts if "1 done" in str(p)], what="farm status")[0]
    assert "farm: 1 node" in str(post) and "`test-node` worker: *idle*" in str(post)
    assert "Slack: connected" in str(post)
    h.srv.send_slash_command("/blender", "jobs", user_id="U1", channel_id=C)
    post = h.wait(lambda: [p for p in h.srv.response_url_posts if "Your recent jobs" in str(p)], what="jobs")[0]
    assert h.store.list_jobs()[0].id in str(post)
    ack = h.srv.wait_for_ack(h.srv.send_slash_command("/blender", "frobnicate", user_id="U1", channel_id=C))
    assert "don't know" in ack.payload["text"]


def test_same_event_delivered_twice_renders_once(harness: Harness) -> None:
    h = harness
    event = {"type": "app_mention", "text": f"<@{h.srv.bot_user_id}> render a red cube", "user": "U1",
             "channel": C, "ts": "1700000000.000100"}
    h.srv.send_event(event, event_id="EvDUP1")
    h.srv.send_event(event, event_id="EvDUP1")  # Slack's retry: same event_id, new envelope
    h.wait(lambda: len(h.renderer.renders) >= 1, what="render")
    time.sleep(1.0)
    assert len(h.renderer.renders) == 1
    assert len(h.store.list_jobs()) == 1


def test_app_mention_and_message_pair_renders_once(harness: Harness) -> None:
    h = harness
    ts = h.srv.post_user_message(C, "U1", f"<@{h.srv.bot_user_id}> render a blue cube")
    h.wait(lambda: len(h.renderer.renders) >= 1, what="render")
    job = h.wait(lambda: h.store.list_jobs() and h.job_done(h.store.list_jobs()[0].id) and h.store.list_jobs()[0])
    time.sleep(0.8)
    assert len(h.store.list_jobs()) == 1 and len(h.renderer.renders) == 1
    assert job.requester.thread_ts == ts  # answered in the mention's thread
    placeholder = [m for m in h.bot_messages(C) if m.get("thread_ts") == ts]
    assert placeholder


def test_bot_own_messages_are_ignored(harness: Harness) -> None:
    h = harness
    h.srv.send_event({"type": "message", "text": f"<@{h.srv.bot_user_id}> render a red cube",
                      "user": h.srv.bot_user_id, "channel": C, "ts": "1700000001.000100"})
    h.srv.send_event({"type": "message", "subtype": "bot_message", "bot_id": h.srv.bot_id,
                      "text": "render a red cube", "channel": C, "ts": "1700000002.000100"})
    h.srv.send_event({"type": "app_mention", "bot_id": h.srv.bot_id, "user": "U1",
                      "text": f"<@{h.srv.bot_user_id}> render a cube", "channel": C, "ts": "1700000003.000100"})
    # A full render makes the server echo the bot's own posts back as events: no loop.
    h.srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id=C)
    h.wait(lambda: h.store.list_jobs() and h.job_done(h.store.list_jobs()[0].id), what="job done")
    time.sleep(1.0)
    assert len(h.store.list_jobs()) == 1
    assert len(h.srv.acks) >= 4


def test_thread_follow_up_rerenders_with_changed_spec(harness: Harness) -> None:
    h = harness
    h.srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id=C)
    ts = _placeholder(h)[0]["ts"]
    h.wait(lambda: h.final_update(ts), timeout=15, what="first final")
    first = h.store.list_jobs()[0]
    h.srv.post_user_message(C, "U1", "make it blue", thread_ts=ts)
    child = h.wait(lambda: [j for j in h.store.list_jobs() if j.parent_job_id == first.id
                            and j.status.is_final], timeout=15, what="follow-up job")[0]
    assert child.request_text == "make it blue" and child.status.value == "done"
    edit_calls = [prev for text, prev in h.interpreter.calls if text == "make it blue"]
    assert edit_calls == [first.spec], h.interpreter.calls  # the parent's spec was passed as `previous`
    assert child.spec["objects"][0]["material"]["base_color"] == "#0000ff"
    upload = h.wait(lambda: [f for f in h.srv.files.values() if f.thread_ts == ts and child.id in (f.title or "")
                             and f.completed], what="the edited render in the same thread")[0]
    r, g, b = png_ok(upload.data)
    assert b > 200 and r < 50  # now blue
    # Ordinary chatter in the channel (no mention, not in a render thread) is left alone.
    h.srv.post_user_message(C, "U1", "lunch anyone?")
    time.sleep(0.5)
    assert len(h.store.list_jobs()) == 2


def test_cancel_button_stops_animation_between_frames(harness: Harness) -> None:
    h = harness
    h.renderer.frame_s = 0.2
    h.srv.send_slash_command("/render", "a red cube rotating 40", user_id="U1", channel_id=C)
    ts = _placeholder(h)[0]["ts"]
    assert h.renderer.started.wait(5)
    time.sleep(0.5)
    # A stranger may not cancel it; the requester may.
    h.srv.click_button(C, ts, "cancel_job", user_id="U2")
    h.wait(lambda: any("Only <@U1>" in str(p) for p in h.srv.response_url_posts), what="refusal")
    h.srv.click_button(C, ts, "cancel_job", user_id="U1")
    job = h.wait(lambda: (j := h.store.list_jobs()[0]).status.is_final and j, timeout=10, what="cancel")
    assert job.status.value == "cancelled"
    final = h.wait(lambda: h.final_update(ts), what="cancel message")
    assert "Cancelled" in final.params["text"] and "U1" in final.params["text"]
    assert not any(f.filename == "turntable.gif" for f in h.srv.files.values())
    assert [a["allowed"] for a in h.store.audit if a["action"] == "cancel"] == [False, True]


def test_rerender_hq_and_get_blend_buttons(harness: Harness) -> None:
    h = harness
    h.srv.send_slash_command("/render", "a green cube", user_id="U1", channel_id=C)
    ts = _placeholder(h)[0]["ts"]
    h.wait(lambda: h.final_update(ts), timeout=15, what="final")
    parent = h.store.list_jobs()[0]
    h.srv.click_button(C, ts, "get_blend", user_id="U1")
    h.wait(lambda: [f for f in h.srv.files.values() if f.filename == "scene.blend"], what=".blend upload")
    h.srv.click_button(C, ts, "rerender_hq", user_id="U1")
    hq = h.wait(lambda: [j for j in h.store.list_jobs() if j.parent_job_id == parent.id and j.status.is_final],
                timeout=15, what="hq job")[0]
    assert hq.spec["output"]["samples"] >= 4 * parent.spec["output"]["samples"]
    assert hq.spec["output"]["width"] == 2 * parent.spec["output"]["width"]


def test_history_lines_up_by_correlation_id_and_commands_are_audited(harness: Harness) -> None:
    h = harness
    h.srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id=C)
    ts = _placeholder(h)[0]["ts"]
    h.wait(lambda: h.final_update(ts), timeout=15, what="final")
    job = h.store.list_jobs()[0]
    h.wait(lambda: any(m["kind"] == "upload" for m in h.store.messages), what="upload recorded")
    mine = [m for m in h.store.messages if m["correlation_id"] == job.correlation_id]
    kinds = {(m["direction"], m["kind"]) for m in mine}
    assert ("in", "slash:/render") in kinds and ("out", "upload") in kinds and ("out", "placeholder") in kinds
    assert all(m["job_id"] == job.id for m in mine)
    h.srv.send_slash_command("/blender", "jobs", user_id="U1", channel_id=C)
    h.wait(lambda: any(a["action"] == "blender:jobs" for a in h.store.audit), what="audit of /blender jobs")
    actions = [(a["actor"], a["action"], a["allowed"]) for a in h.store.audit]
    assert ("U1", "submit:render", True) in actions
