"""A thread reply reaching a node that never saw the thread's request (another node received
it, or this node restarted): the router finds the thread's job in the shared job table, so the
reply is a follow-up of that job, answered in that thread."""

from __future__ import annotations

import time
from pathlib import Path

from test_agent_harness import StubAnalyzer, StubInterpreter, StubRenderer, close_harness, make_harness, png_ok

from slack_ai_addon.agent.service import AgentService
from slack_ai_addon.core.config import Settings
from slack_ai_addon.core.jobs import JobStatus
from slack_ai_addon.core.pipeline import JobPipeline, PipelineDeps
from slack_ai_addon.runtime import Runtime
from tests.job_store import temp_job_store

C = "C0THREADS"


def test_thread_reply_on_a_node_that_never_saw_the_request_is_a_follow_up(tmp_path: Path) -> None:
    store = temp_job_store()
    # Node A receives the /render and renders it.
    a = make_harness(tmp_path / "a", store=store)
    b_out = tmp_path / "b"
    b_out.mkdir()
    renderer_b = StubRenderer(frame_s=0.01)
    interpreter_b = StubInterpreter()
    deps = PipelineDeps(store=store, interpreter=interpreter_b, analyzer=StubAnalyzer(), output_dir=b_out,
                        node_id="node-b", renderer=renderer_b)
    settings_b = Settings(slack_bot_token="xoxb-sandbox", slack_app_token="xapp-sandbox",
                          slack_api_url=a.srv.api_url, output_dir=str(b_out), node_id="node-b", heartbeat_s=0.5)
    runtime_b = Runtime(settings=settings_b, pipeline=JobPipeline(deps), store=store, output_dir=b_out)
    # Its own, fresh agent state: node B remembers no thread of node A's.
    agent_b = AgentService(runtime_b, update_interval_s=1.0, post_interval_s=0.1, ping_interval_s=2.0,
                           state_path=tmp_path / "b_state.db")
    try:
        a.agent.start()
        assert a.agent.wait_until_connected(10)
        a.start_drain()
        a.srv.send_slash_command("/render", "a red cube", user_id="U7", channel_id=C, user_name="li")
        ts = a.wait(lambda: a.bot_messages(C), what="placeholder")[0]["ts"]
        a.wait(lambda: a.final_update(ts), timeout=20, what="first final update")
        first = store.list_jobs()[0]
        assert first.status is JobStatus.DONE and first.slack_ts == ts
        assert first.spec["objects"][0]["material"]["base_color"] == "#ff0000"
        # A stops rendering; B connects last, so the fake delivers the next events to B.
        a.stop_drain.set()
        assert a.drainer is not None
        a.drainer.join(5)
        agent_b.start()
        assert agent_b.wait_until_connected(10)

        a.srv.post_user_message(C, "U7", "make it blue", thread_ts=ts)  # no mention: a plain thread reply
        child = a.wait(lambda: [j for j in store.list_jobs() if j.id != first.id], timeout=10,
                       what="a follow-up job submitted by node B")[0]
        assert child.parent_job_id == first.id and child.request_text == "make it blue"
        assert child.requester.channel_id == C and child.requester.thread_ts == ts
        dispatcher_b = runtime_b.dispatcher()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not a.job_done(child.id):
            dispatcher_b.drain(0.05)
            time.sleep(0.01)
        child = store.get(child.id)
        assert child is not None and child.status is JobStatus.DONE, child
        assert child.spec["objects"][0]["material"]["base_color"] == "#0000ff"  # the parent's cube, now blue
        assert [prev for text, prev in interpreter_b.calls if text == "make it blue"] == [first.spec]
        assert renderer_b.renders == [child.id]
        # Answered in the thread of the original request.
        upload = a.wait(lambda: [f for f in a.srv.files.values() if f.thread_ts == ts and child.id in (f.title or "")
                                 and f.completed], what="the edited render in the same thread")[0]
        r, _g, b = png_ok(upload.data)
        assert b > 200 and r < 50
        replies = [m for m in a.srv.thread_messages(C, ts) if m.get("bot_id") and m["ts"] != ts]
        assert replies, "node B posted nothing in the thread"
        assert not [m for m in a.bot_messages(C) if m["ts"] != ts and not m.get("thread_ts")], \
            "the follow-up was answered outside the thread"
    finally:
        agent_b.stop(timeout=15)
        runtime_b.close()
        close_harness(a)
