"""Access control, quotas and cost tiers through Slack (the fake Slack server, the real agent,
the real SQLite store): a refused user hears why, alone, and the audit log has the row; a
quota says when to try again (time moves through the store's clock); the worst-case scene
from a non-admin is clamped with a message whether it came from text, an LLM or a thread edit."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_agent_harness import Harness, close_harness, make_harness

from slack_ai_addon.agent import blocks as bk
from slack_ai_addon.core.config import Settings
from slack_ai_addon.core.cost import estimate_cost_s
from slack_ai_addon.core.jobs import Job, JobStatus
from slack_ai_addon.core.scene_spec import SceneSpec
from slack_ai_addon.providers import build_interpreter
from slack_ai_addon.providers.offline.interpreter import OfflineInterpreter
from tests.fakes.fake_openai import FakeOpenAI

C = "C0RENDERS"
KEY = "sk-tier-test-0123456789"
WORST_TEXT = "a turntable of 50 glass spheres at 4096x4096 with 4096 samples, 600 frames"
GLASS = {"base_color": "#ffffff", "transmission": 1.0, "roughness": 0.0}
WORST_SPEC = {"objects": [{"primitive": "sphere", "material": GLASS} for _ in range(50)],
              "animation": {"kind": "turntable", "frames": 600, "fps": 24},
              "output": {"engine": "cycles", "width": 4096, "height": 4096, "samples": 4096, "time_limit_s": 3600}}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(*, drain: bool = True, admins: str = "UADMIN", **settings: Any) -> Harness:
        h = make_harness(tmp_path, frame_s=0.001, admins=admins, settings_kwargs=settings)
        made.append(h)
        h.agent.start()
        assert h.agent.wait_until_connected(10), h.agent.status()
        if drain:
            h.start_drain()
        return h

    yield make
    for h in made:
        close_harness(h)


def ephemerals_for(h: Harness, user: str, needle: str) -> list[dict[str, Any]]:
    return [e for e in h.srv.ephemerals if e["user"] == user and needle in e["text"]]


def new_job(h: Harness, before: set[str]) -> Job:
    job: Job = h.wait(lambda: next((j for j in h.store.list_jobs(limit=100) if j.id not in before), None),
                      what="a new job row")
    return job


def finished(h: Harness, job_id: str, timeout: float = 20.0) -> Job:
    job: Job = h.wait(lambda: (row := h.store.get(job_id)) is not None and row.status.is_final and row,
                      timeout=timeout, what=f"job {job_id} to finish")
    return job


def final_text(h: Harness, job: Job) -> str:
    ts = str(h.wait(lambda: (row := h.store.get(job.id)) is not None and row.slack_ts, what="the placeholder"))
    call = h.wait(lambda: h.final_update(ts), what="the final message")
    return str(call.params["text"]) + str(call.params.get("blocks"))


def audit(h: Harness, action_prefix: str) -> list[dict[str, Any]]:
    return [a for a in h.store.audit if a["action"].startswith(action_prefix)]


# ---------------------------------------------------------------- access control

def test_allowlist_refuses_politely_alone_and_audits(start: Callable[..., Harness]) -> None:
    h = start(drain=False, allowed_user_ids="UOK", allowed_channel_ids=C)
    env = h.srv.send_slash_command("/render", "a red cube <!channel>", user_id="UBAD", channel_id=C)
    ack = h.srv.wait_for_ack(env, timeout=3).payload
    assert ack["response_type"] == "ephemeral" and "not on the list of people who may use this bot" in ack["text"]
    # A mention in an allowed channel from someone not on the list: told alone, in the thread.
    ts = h.srv.post_user_message(C, "UBAD", f"<@{h.srv.bot_user_id}> render a blue cube")
    h.wait(lambda: ephemerals_for(h, "UBAD", "not on the list"), what="the ephemeral refusal")
    # Another channel, for someone on the list: refused for the channel.
    env = h.srv.send_slash_command("/render", "a red cube", user_id="UOK", channel_id="C0OTHER")
    assert "don't take requests in this channel" in h.srv.wait_for_ack(env, timeout=3).payload["text"]
    rows = h.wait(lambda: len(audit(h, "refused:access")) >= 3 and audit(h, "refused:access"), what="audit rows")
    # (The socket workers audit in whatever order they run: compare as sets. A mention comes
    # as app_mention and message events; whichever is handled first is the one acted on.)
    kinds = {"app_mention": "mention", "message": "mention", "slash": "slash"}
    assert sorted((r["actor"], r["allowed"], kinds[r["detail"].split(":")[0]]) for r in rows) == [
        ("UBAD", 0, "mention"), ("UBAD", 0, "slash"), ("UOK", 0, "slash")]
    assert {r["detail"].split(": ", 1)[1] for r in rows} == {"user UBAD is not in the allowlist",
                                                             "channel C0OTHER is not in the allowlist"}
    time.sleep(0.5)
    assert h.store.list_jobs() == []  # nothing was queued
    assert not h.bot_messages(C) and not [m for m in h.srv.thread_messages(C, ts) if m.get("bot_id")]  # nothing public
    # On the list, and an admin (not on the list, passes it): accepted.
    h.srv.send_slash_command("/render", "a red cube", user_id="UOK", channel_id=C)
    h.srv.send_slash_command("/render", "a red cube", user_id="UADMIN", channel_id="C0OTHER")
    h.wait(lambda: len(h.store.list_jobs()) == 2, what="two jobs")


def test_cancelling_someone_elses_job_is_for_admins(start: Callable[..., Harness]) -> None:
    h = start(drain=False)
    before: set[str] = set()
    h.srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id=C)
    job = new_job(h, before)
    h.srv.send_slash_command("/blender", f"cancel {job.id}", user_id="U2", channel_id=C)
    h.wait(lambda: ephemerals_for(h, "U2", "or an admin can cancel"), what="the refusal")
    row = h.store.get(job.id)
    assert row is not None and row.status is JobStatus.QUEUED
    h.srv.send_slash_command("/blender", f"cancel {job.id}", user_id="UADMIN", channel_id=C)
    h.wait(lambda: ephemerals_for(h, "UADMIN", "Cancelled"), what="the admin's cancel")
    assert finished(h, job.id).status is JobStatus.CANCELLED
    assert [(a["actor"], a["allowed"]) for a in h.store.audit if a["action"] == "cancel"] == [("U2", 0),
                                                                                             ("UADMIN", 1)]


# ---------------------------------------------------------------- quotas

def test_requests_per_minute_at_the_limit_one_over_and_after_the_window(start: Callable[..., Harness]) -> None:
    h = start(drain=False, quota_user_requests_per_minute=2)
    for i in range(2):  # at the limit: both accepted
        h.srv.send_slash_command("/render", f"a red cube {i}", user_id="U1", channel_id=C)
        h.wait(lambda i=i: len(h.store.list_jobs()) == i + 1, what=f"job {i + 1}")
    h.srv.send_slash_command("/render", "one more", user_id="U1", channel_id=C)  # one over
    refusal = h.wait(lambda: ephemerals_for(h, "U1", "requests per minute"), what="the quota refusal")[0]
    assert "over your limit of 2 requests per minute" in refusal["text"]
    assert "Please try again in " in refusal["text"] and " s." in refusal["text"]  # e.g. "in 60 s"
    assert refusal["source"] == "response_url"  # to the user alone
    rows = h.wait(lambda: audit(h, "refused:user_per_minute"), what="the audit row")
    assert rows[0]["actor"] == "U1" and rows[0]["allowed"] == 0 and "2 requests in the last minute" in rows[0]["detail"]
    assert len(h.store.list_jobs()) == 2
    # Someone else, and an admin, are not held back by U1's quota.
    h.srv.send_slash_command("/render", "a blue cube", user_id="U2", channel_id=C)
    for i in range(3):
        h.srv.send_slash_command("/render", f"admin cube {i}", user_id="UADMIN", channel_id=C)
    h.wait(lambda: len(h.store.list_jobs(limit=100)) == 6, what="U2's and the admin's jobs")
    # After the window (the store's clock, not a sleep): accepted again.
    h.store.clock = lambda: time.time() + 61
    h.srv.send_slash_command("/render", "a green cube", user_id="U1", channel_id=C)
    h.wait(lambda: len(h.store.list_jobs(user_id="U1", limit=100)) == 3, what="U1's job after the window")
    assert len(audit(h, "refused:")) == 1


def test_unfinished_jobs_quota_through_a_mention(start: Callable[..., Harness]) -> None:
    h = start(drain=False, quota_user_queued=1)
    h.srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id=C)
    h.wait(lambda: len(h.store.list_jobs()) == 1, what="the first job")
    ts = h.srv.post_user_message(C, "U1", f"<@{h.srv.bot_user_id}> render a blue cube")
    reply = h.wait(lambda: [m for m in h.srv.thread_messages(C, ts) if m.get("bot_id")], what="the refusal")[0]
    assert "You have 1 unfinished jobs, the limit is 1" in reply["text"]
    assert len(h.store.list_jobs()) == 1


# ---------------------------------------------------------------- cost tiers, from every source of a spec

def assert_clamped(h: Harness, job: Job) -> str:
    done = finished(h, job.id)
    assert done.status is JobStatus.DONE, done.error
    assert done.spec is not None
    spec = SceneSpec.model_validate(done.spec)
    assert estimate_cost_s(spec) <= 300  # the user tier (Settings.user_max_cost_s default)
    assert spec.output.samples < 4096 and spec.output.width < 4096
    text = final_text(h, done)
    assert "scaled down to fit the render budget (300 s of CPU)" in text and "samples 4096 → 16" in text
    assert [a["target"] for a in audit(h, "cost:clamped")][-1] == job.id
    return text


def test_worst_case_from_text_is_clamped(start: Callable[..., Harness]) -> None:
    h = start()
    h.runtime.pipeline.deps.interpreter = OfflineInterpreter()
    h.srv.send_slash_command("/render", WORST_TEXT, user_id="U1", channel_id=C)
    job = new_job(h, set())
    text = assert_clamped(h, job)
    assert "resolution 4096x4096 → 320x320" in text and "frames 600 → " in text
    # "Re-render in high quality" on it: the tier would scale it straight back, so no job.
    ts = h.store.get(job.id).slack_ts  # type: ignore[union-attr]
    h.srv.click_button(C, ts, bk.ACTION_RERENDER_HQ, user_id="U1", value=job.id)
    h.wait(lambda: ephemerals_for(h, "U1", "already as detailed as your render budget allows"), what="the answer")
    assert [a["target"] for a in audit(h, "refused:high_quality")] == [job.id]
    assert len(h.store.list_jobs(limit=100)) == 1


def test_worst_case_from_an_llm_is_clamped_and_its_time_limit_capped(start: Callable[..., Harness]) -> None:
    h = start()
    with FakeOpenAI("routellm", api_key=KEY, responder=lambda body: WORST_SPEC) as fake:
        settings = Settings(abacus_api_key=KEY, routellm_base_url=fake.base_url, provider_order="routellm,offline")
        h.runtime.pipeline.deps.interpreter = build_interpreter(settings, store=h.store)
        h.srv.send_slash_command("/render", "the heaviest scene you can imagine", user_id="U1", channel_id=C)
        job = new_job(h, set())
        text = assert_clamped(h, job)
        assert fake.chat_calls()
    assert "routellm:" in text
    row = h.store.get(job.id)
    assert row is not None and row.spec is not None and row.spec["output"]["time_limit_s"] == 300  # not 3600


def test_worst_case_from_a_thread_edit_is_clamped(start: Callable[..., Harness]) -> None:
    h = start()
    h.runtime.pipeline.deps.interpreter = OfflineInterpreter()
    h.srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id=C)
    parent = finished(h, new_job(h, set()).id)
    assert parent.status is JobStatus.DONE and not audit(h, "cost:")  # an everyday request is not touched
    ts = str(h.wait(lambda: (row := h.store.get(parent.id)) is not None and row.slack_ts, what="placeholder"))
    h.wait(lambda: h.final_update(ts), what="the parent's final message")
    h.srv.post_user_message(C, "U1", "make it 4096x4096 with 4096 samples and 50 glass spheres, 600 frames turntable",
                            thread_ts=ts)
    edit = h.wait(lambda: [j for j in h.store.list_jobs(limit=100) if j.parent_job_id == parent.id], what="edit")[0]
    assert_clamped(h, edit)
