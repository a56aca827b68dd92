"""Two nodes, one job table: the node that receives a /render is not always the one that
renders it. The rendering node takes over the replies (progress, upload, final update) on the
placeholder the receiving node posted."""

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

C = "C0RENDERS"


def test_a_job_received_on_one_node_and_rendered_on_another_is_answered(tmp_path: Path) -> None:
    store = temp_job_store()
    # Node B: renders, connected first (the fake delivers envelopes to the newest connection).
    b_out = tmp_path / "b"
    b_out.mkdir()
    renderer = StubRenderer(frame_s=0.01)
    deps = PipelineDeps(store=store, interpreter=StubInterpreter(), analyzer=StubAnalyzer(), output_dir=b_out,
                        node_id="node-b", renderer=renderer)
    a = make_harness(tmp_path / "a", store=store)
    settings_b = Settings(slack_bot_token="xoxb-sandbox", slack_app_token="xapp-sandbox",
                          slack_api_url=a.srv.api_url, output_dir=str(b_out), node_id="node-b", heartbeat_s=0.5)
    runtime_b = Runtime(settings=settings_b, pipeline=JobPipeline(deps), store=store, output_dir=b_out)
    agent_b = AgentService(runtime_b, update_interval_s=1.0, post_interval_s=0.1, ping_interval_s=2.0,
                           state_path=tmp_path / "b_state.db")
    dispatcher_b = runtime_b.dispatcher()
    try:
        agent_b.start()
        assert agent_b.wait_until_connected(10)
        a.agent.start()  # node A: receives, never drains
        assert a.agent.wait_until_connected(10)
        env = a.srv.send_slash_command("/render", "a red cube", user_id="U7", channel_id=C, user_name="li")
        a.srv.wait_for_ack(env, timeout=3.0)
        placeholder = a.wait(lambda: a.bot_messages(C), what="placeholder")[0]
        ts = placeholder["ts"]
        a.wait(lambda: store.list_jobs() and store.list_jobs()[0].slack_ts == ts, what="slack_ts on the job")
        job_id = store.list_jobs()[0].id
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not a.final_update(ts):
            dispatcher_b.drain(0.05)
            time.sleep(0.01)
        final = a.final_update(ts)
        assert final is not None and "Done" in final.params["text"]
        job = store.get(job_id)
        assert job is not None and job.status is JobStatus.DONE and job.attempts == 1
        assert renderer.renders == [job_id]
        uploads = [f for f in a.srv.files.values() if f.thread_ts == ts]
        assert uploads and png_ok(uploads[0].data)[0] > 200  # the red still, in the placeholder's thread
        # Node A rendered nothing: its own output folder has no job folder.
        assert not (tmp_path / "a" / "out" / job_id).exists()
    finally:
        agent_b.stop(timeout=15)
        runtime_b.close()
        close_harness(a)
