"""Replies in a render's thread: only a request for a change re-renders. Thanks, laughs and
questions start no job (a question gets one short line); "make it blue" and a bare "blue"
(the offline interpreter finds something to change) still re-render. "Re-render in high
quality" is one step up from the job's own scene, however often it is clicked."""

from __future__ import annotations

import time

import pytest
from test_agent_harness import Harness, png_ok
from test_agent_harness import harness as harness  # noqa: F401  (the fixture)

from slack_ai_addon.agent import blocks as bk
from slack_ai_addon.agent.router import THREAD_HINT, high_quality
from slack_ai_addon.core.jobs import Job, JobStatus

C = "C0GENERAL"




@pytest.fixture
def h(harness: Harness) -> Harness:
    """The shared harness fixture, under the short name these tests use."""
    return harness


def finished(h: Harness, job_id: str, timeout: float = 15.0) -> Job:
    job: Job = h.wait(lambda: (row := h.store.get(job_id)) is not None and row.status.is_final and row,
                      timeout=timeout, what=f"job {job_id} to finish")
    return job


def rendered(h: Harness, text: str) -> tuple[Job, str]:
    """A /render that finished, with its final message posted; (job row, placeholder ts)."""
    before = {j.id for j in h.store.list_jobs(limit=100)}
    h.srv.send_slash_command("/render", text, user_id="U1", channel_id=C)
    job: Job = h.wait(lambda: next((j for j in h.store.list_jobs(limit=100) if j.id not in before), None),
                      what="the job row")
    assert finished(h, job.id).status is JobStatus.DONE
    ts = str(h.wait(lambda: (row := h.store.get(job.id)) is not None and row.slack_ts, what="the placeholder"))
    h.wait(lambda: h.final_update(ts), what="the final message")
    row = h.store.get(job.id)
    assert row is not None
    return row, ts


def children(h: Harness, parent_id: str) -> list[Job]:
    return [j for j in h.store.list_jobs(limit=100) if j.parent_job_id == parent_id]


@pytest.mark.parametrize("chatter", ["thanks!", "lol nice", "who made this?", "great job 🎉", "ok"])
def test_chatter_in_a_render_thread_starts_no_job(h: Harness, chatter: str) -> None:
    parent, ts = rendered(h, "a red cube")

    def bot_replies() -> list[str]:
        return [m["text"] for m in h.srv.thread_messages(C, ts) if m.get("bot_id") and m["ts"] != ts]
    h.wait(lambda: bot_replies(), what="the result in the thread")
    before = bot_replies()
    h.srv.post_user_message(C, "U2", chatter, thread_ts=ts)
    time.sleep(1.0)  # time for the agent to do what it should not
    assert children(h, parent.id) == []
    assert len(h.renderer.renders) == 1
    if "?" in chatter:
        h.wait(lambda: THREAD_HINT in bot_replies(), what="the one-line hint")
        assert bot_replies() == [*before, THREAD_HINT]
    else:
        assert bot_replies() == before  # nothing at all: thanks need no answer
    assert [a["target"] for a in h.store.audit if a["action"] == "thread:chatter"] == [parent.id]


@pytest.mark.parametrize("edit, colour", [("make it blue", (0, 0, 255)), ("blue", (0, 0, 255))],
                         ids=["keywords", "interpreter"])
def test_a_change_in_the_thread_still_re_renders(h: Harness, edit: str, colour: tuple[int, int, int]) -> None:
    parent, ts = rendered(h, "a red cube")
    h.srv.post_user_message(C, "U1", edit, thread_ts=ts)
    (job,) = h.wait(lambda: children(h, parent.id), what="the edit job")
    assert finished(h, job.id).status is JobStatus.DONE
    f = h.wait(lambda: [f for f in h.srv.files.values() if f.completed and job.id in f.title], what="the upload")[0]
    assert png_ok(f.data) == colour
    assert len(h.renderer.renders) == 2


def test_re_render_in_high_quality_is_idempotent(h: Harness) -> None:
    parent, ts = rendered(h, "a red cube")
    assert parent.spec is not None
    expected = high_quality(parent.spec)
    h.srv.click_button(C, ts, bk.ACTION_RERENDER_HQ, user_id="U1", value=parent.id)
    (first,) = h.wait(lambda: children(h, parent.id), what="the high-quality job")
    assert finished(h, first.id).status is JobStatus.DONE
    first = h.store.get(first.id)  # type: ignore[assignment]
    assert first.spec == expected and first.spec["output"]["samples"] > parent.spec["output"]["samples"]
    first_ts = str(h.wait(lambda: (row := h.store.get(first.id)) is not None and row.slack_ts,
                          what="its message"))
    h.wait(lambda: h.final_update(first_ts), what="its final message")
    # The same button on the high-quality result: the same scene again, not a second step up.
    h.srv.click_button(C, first_ts, bk.ACTION_RERENDER_HQ, user_id="U1", value=first.id)
    (second,) = h.wait(lambda: children(h, first.id), what="the second high-quality job")
    assert finished(h, second.id).status is JobStatus.DONE
    assert second.spec == expected
    # An edit (of the thread's latest render) is a scene of its own: its re-render steps up from it.
    h.srv.post_user_message(C, "U1", "make it blue", thread_ts=ts)
    (edit,) = h.wait(lambda: [j for j in h.store.list_jobs(limit=100) if j.request_text == "make it blue"],
                     what="the edit")
    assert edit.parent_job_id == second.id
    assert finished(h, edit.id).status is JobStatus.DONE
    assert "high_quality_of" not in edit.options


def test_with_an_llm_the_intent_classifier_decides(h: Harness) -> None:
    """With an LLM configured its intent decides: "blue" it calls chatter starts nothing (the
    offline interpreter is not asked to overrule it); "make it blue" it calls an edit re-renders."""
    from slack_ai_addon.providers import ProviderChain, ProviderClient
    from slack_ai_addon.providers.intent import IntentClassifier
    from slack_ai_addon.providers.profiles import OPENAI
    from tests.fakes.fake_openai import FakeOpenAI

    asked: list[str] = []

    def classify(body: dict[str, object]) -> dict[str, str]:
        text = str(body["messages"][-1]["content"])  # type: ignore[index]
        asked.append(text)
        return {"kind": "edit" if text.startswith("make") else "chitchat"}

    with FakeOpenAI("openai", api_key="sk-intent-test-0001", responder=classify) as fake:
        chain = ProviderChain([ProviderClient(OPENAI, base_url=fake.base_url, api_key="sk-intent-test-0001",
                                              model="gpt-4o-mini")])
        h.agent._classifier = IntentClassifier(chain)
        parent, ts = rendered(h, "a red cube")
        h.srv.post_user_message(C, "U1", "blue", thread_ts=ts)
        h.wait(lambda: "blue" in asked, what="the LLM asked about 'blue'")
        time.sleep(1.0)
        assert children(h, parent.id) == []
        h.srv.post_user_message(C, "U1", "make it blue", thread_ts=ts)
        (job,) = h.wait(lambda: children(h, parent.id), what="the edit job")
        assert finished(h, job.id).status is JobStatus.DONE
    assert asked == ["blue", "make it blue"]
