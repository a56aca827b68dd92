"""Every Slack entry point given input it must refuse or cannot act on: the real agent
against the local Slack server. Each test checks the reply the user sees (ephemeral,
response_url or in the thread, from the server's records) and that nothing is left queued;
refused input creates no job row."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_agent_harness import Harness, close_harness, make_harness

from slack_ai_addon.core.jobs import Job, JobStatus

C = "C0GENERAL"
UNKNOWN_ID = "20200101-000000-abcdef"  # well-formed, never issued


# ------------------------------------------------------------------ fixtures and helpers

def _start(h: Harness, *, drain: bool) -> Harness:
    h.agent.start()
    assert h.agent.wait_until_connected(10), h.agent.status()
    if drain:
        h.start_drain()
    return h


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Harness]:
    """Agent and a worker draining the queue."""
    h = _start(make_harness(tmp_path), drain=True)
    try:
        yield h
    finally:
        close_harness(h)


@pytest.fixture
def idle(tmp_path: Path) -> Iterator[Harness]:
    """Agent without a worker: a submitted job stays queued. UADMIN is an admin."""
    h = _start(make_harness(tmp_path, admins="UADMIN"), drain=False)
    try:
        yield h
    finally:
        close_harness(h)


def ephemeral_for(h: Harness, user: str, needle: str, timeout: float = 10.0) -> dict[str, Any]:
    """The one ephemeral reply `user` saw containing `needle` (ack, response_url or chat.postEphemeral)."""
    found = h.wait(lambda: [e for e in h.srv.ephemerals if e["user"] == user and needle in e["text"]],
                   timeout=timeout, what=f"an ephemeral reply to {user} containing {needle!r}")
    assert len(found) == 1, found
    return found[0]


def thread_replies(h: Harness, channel: str, thread_ts: str, needle: str,
                   timeout: float = 10.0) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = h.wait(
        lambda: [m for m in h.srv.thread_messages(channel, thread_ts)
                 if m.get("bot_id") and m["ts"] != thread_ts and needle in m["text"]],
        timeout=timeout, what=f"a bot reply in {channel}/{thread_ts} containing {needle!r}")
    return found


def thread_reply(h: Harness, channel: str, thread_ts: str, needle: str, timeout: float = 10.0) -> dict[str, Any]:
    found = thread_replies(h, channel, thread_ts, needle, timeout)
    assert len(found) == 1, found
    return found[0]


def assert_nothing_queued(h: Harness) -> None:
    assert h.store.list_jobs(statuses=(JobStatus.QUEUED,)) == []


def settle(h: Harness, seconds: float = 0.6) -> None:
    """Give the I/O pool time to do anything it should not."""
    time.sleep(seconds)


def submit_render(h: Harness, text: str, user: str = "U1") -> tuple[Job, str]:
    """/render through Slack; returns the job row and its placeholder's ts."""
    before = {j.id for j in h.store.list_jobs(limit=100)}
    h.srv.send_slash_command("/render", text, user_id=user, channel_id=C)
    job = h.wait(lambda: next((j for j in h.store.list_jobs(limit=100) if j.id not in before), None),
                 what="the job row")
    ts = h.wait(lambda: (row := h.store.get(job.id)) is not None and row.slack_ts, what="the placeholder")
    return job, str(ts)


def finished(h: Harness, job_id: str, timeout: float = 15.0) -> Job:
    job: Job = h.wait(lambda: (row := h.store.get(job_id)) is not None and row.status.is_final and row,
                      timeout=timeout, what=f"job {job_id} to finish")
    return job


def blender(h: Harness, text: str, user: str = "U1") -> None:
    env = h.srv.send_slash_command("/blender", text, user_id=user, channel_id=C)
    assert h.srv.wait_for_ack(env).payload is None  # answered through response_url after the lookup


# ------------------------------------------------------------------ /blender cancel

def test_cancel_without_an_id_asks_which_job(idle: Harness) -> None:
    blender(idle, "cancel")
    assert "/blender cancel JOB_ID" in ephemeral_for(idle, "U1", "Which job?")["text"]
    settle(idle)
    assert idle.store.list_jobs() == []


@pytest.mark.parametrize(("arg", "answer"), [(UNKNOWN_ID, f"No job `{UNKNOWN_ID}`"),
                                             ("drop-table", "`drop-table` is not a job id")])
def test_cancel_of_an_unknown_id(idle: Harness, arg: str, answer: str) -> None:
    blender(idle, f"cancel {arg}")
    ephemeral_for(idle, "U1", answer)
    settle(idle)
    assert idle.store.list_jobs() == []
    assert not idle.bot_messages(C)  # nothing public


def test_cancel_of_someone_elses_job_is_refused(idle: Harness) -> None:
    h = idle
    job, _ts = submit_render(h, "a red cube")
    blender(h, f"cancel {job.id}", user="U2")
    ephemeral_for(h, "U2", f"Only <@U1> (who asked for it) or an admin can cancel `{job.id}`")
    settle(h)
    row = h.store.get(job.id)
    assert row is not None and row.status is JobStatus.QUEUED  # untouched
    assert [(a["actor"], a["allowed"]) for a in h.store.audit if a["action"] == "cancel"] == [("U2", False)]
    blender(h, f"cancel {job.id}", user="U1")  # its owner clears it
    ephemeral_for(h, "U1", f"Cancelled `{job.id}` before it started")
    assert finished(h, job.id).status is JobStatus.CANCELLED
    assert_nothing_queued(h)


def test_cancel_of_my_queued_job(idle: Harness) -> None:
    h = idle
    job, ts = submit_render(h, "a red cube")
    blender(h, f"cancel {job.id}")
    ephemeral_for(h, "U1", f"🛑 Cancelled `{job.id}` before it started.")
    assert finished(h, job.id).status is JobStatus.CANCELLED
    final = h.wait(lambda: h.final_update(ts), what="the placeholder turned into Cancelled")
    assert "Cancelled by <@U1>" in final.params["text"]
    assert_nothing_queued(h)
    assert h.renderer.renders == []


def test_cancel_of_my_running_job(live: Harness) -> None:
    h = live
    h.renderer.frame_s = 0.2
    job, ts = submit_render(h, "a red cube rotating 40")
    assert h.renderer.started.wait(5)
    blender(h, f"cancel {job.id}")
    ephemeral_for(h, "U1", f"🛑 Cancelling `{job.id}`: it stops after the current frame.")
    assert finished(h, job.id).status is JobStatus.CANCELLED
    final = h.wait(lambda: h.final_update(ts), what="the cancelled message")
    assert "Cancelled" in final.params["text"]
    assert not [f for f in h.srv.files.values() if f.filename == "turntable.gif"]
    assert_nothing_queued(h)


def test_cancel_of_a_finished_job(live: Harness) -> None:
    h = live
    job, ts = submit_render(h, "a red cube")
    assert finished(h, job.id).status is JobStatus.DONE
    h.wait(lambda: h.final_update(ts), what="the result message")
    blender(h, f"cancel {job.id}")
    ephemeral_for(h, "U1", f"Job `{job.id}` is already done.")
    settle(h)
    row = h.store.get(job.id)
    assert row is not None and row.status is JobStatus.DONE
    assert "Done" in h.final_update(ts).params["text"]  # the result message is left alone
    assert_nothing_queued(h)


def test_an_admin_may_cancel_anyones_job(idle: Harness) -> None:
    h = idle
    job, _ts = submit_render(h, "a red cube")
    blender(h, f"cancel {job.id}", user="UADMIN")
    ephemeral_for(h, "UADMIN", f"Cancelled `{job.id}` before it started")
    assert finished(h, job.id).status is JobStatus.CANCELLED
    assert [(a["actor"], a["allowed"]) for a in h.store.audit if a["action"] == "cancel"] == [("UADMIN", True)]
    assert_nothing_queued(h)


# ------------------------------------------------------------------ buttons

def test_buttons_on_a_job_that_does_not_exist(live: Harness) -> None:
    h = live
    job, ts = submit_render(h, "a green cube")
    finished(h, job.id)
    h.wait(lambda: h.final_update(ts), what="the result message with its buttons")
    h.srv.click_button(C, ts, "rerender_hq", user_id="U1", value=UNKNOWN_ID)
    ephemeral_for(h, "U1", "That job is gone; start a new `/render`.")
    h.srv.click_button(C, ts, "get_blend", user_id="U2", value="../../etc/passwd")
    ephemeral_for(h, "U2", "That job is gone; start a new `/render`.")
    settle(h)
    assert [j.id for j in h.store.list_jobs()] == [job.id]  # no derived job
    assert not [f for f in h.srv.files.values() if f.filename.endswith(".blend")]
    assert_nothing_queued(h)


def test_cancel_button_for_a_job_that_does_not_exist(idle: Harness) -> None:
    h = idle
    job, ts = submit_render(h, "a red cube")
    h.srv.click_button(C, ts, "cancel_job", user_id="U1", value=UNKNOWN_ID)
    ephemeral_for(h, "U1", f"No job `{UNKNOWN_ID}`.")
    settle(h)
    row = h.store.get(job.id)
    assert row is not None and row.status is JobStatus.QUEUED  # the real job is untouched
    h.srv.click_button(C, ts, "cancel_job", user_id="U1")
    assert finished(h, job.id).status is JobStatus.CANCELLED
    assert_nothing_queued(h)


def test_double_click_on_rerender_gives_one_job(live: Harness) -> None:
    h = live
    parent, ts = submit_render(h, "a green cube")
    finished(h, parent.id)
    h.wait(lambda: h.final_update(ts), what="the result message with its buttons")
    h.srv.click_button(C, ts, "rerender_hq", user_id="U1")
    h.srv.click_button(C, ts, "rerender_hq", user_id="U1")
    children = h.wait(lambda: [j for j in h.store.list_jobs() if j.parent_job_id == parent.id],
                      what="the high-quality job")
    finished(h, children[0].id)
    ephemeral_for(h, "U1", "already")
    settle(h, 1.0)
    assert len([j for j in h.store.list_jobs() if j.parent_job_id == parent.id]) == 1
    assert len(h.renderer.renders) == 2  # the parent and one re-render
    assert_nothing_queued(h)


def test_double_click_on_get_blend_uploads_once(live: Harness) -> None:
    h = live
    job, ts = submit_render(h, "a green cube")
    finished(h, job.id)
    h.wait(lambda: h.final_update(ts), what="the result message with its buttons")
    h.srv.click_button(C, ts, "get_blend", user_id="U1")
    h.srv.click_button(C, ts, "get_blend", user_id="U1")
    h.wait(lambda: [f for f in h.srv.files.values() if f.filename == "scene.blend"], what=".blend upload")
    ephemeral_for(h, "U1", "already")
    settle(h, 1.0)
    assert len([f for f in h.srv.files.values() if f.filename == "scene.blend"]) == 1
    assert [j.id for j in h.store.list_jobs()] == [job.id]
    assert_nothing_queued(h)


# ------------------------------------------------------------------ thread replies

def test_an_edit_the_interpreter_cannot_apply_fails_in_the_thread(live: Harness) -> None:
    h = live
    parent, ts = submit_render(h, "a red cube")
    finished(h, parent.id)
    h.wait(lambda: h.final_update(ts), what="the first result")
    h.srv.post_user_message(C, "U1", "make it unrenderable", thread_ts=ts)
    (edit,) = h.wait(lambda: [j for j in h.store.list_jobs() if j.parent_job_id == parent.id], what="the edit")
    assert finished(h, edit.id).status is JobStatus.FAILED
    # The edit's own message, in the thread, says why.
    replies = thread_replies(h, C, ts, "nothing I can build from that")
    edit_ts = h.wait(lambda: (row := h.store.get(edit.id)) is not None and row.slack_ts, what="edit placeholder")
    assert any(m["ts"] == edit_ts and m["text"].startswith("❌ Render failed") for m in replies), replies
    settle(h)
    parent_row = h.store.get(parent.id)
    assert parent_row is not None and parent_row.status is JobStatus.DONE  # the parent stays as it was
    assert len(h.renderer.renders) == 1  # nothing rendered for the failed edit
    assert_nothing_queued(h)


def test_a_thread_reply_whose_job_is_gone(tmp_path: Path) -> None:
    # The agent remembers which thread belongs to which job (agent_state.db); the job table
    # it meets after a restart (another DATABASE_URL, a cleaned database) no longer has it.
    state = tmp_path / "agent_state.db"
    first = _start(make_harness(tmp_path / "a", state_path=state), drain=True)
    try:
        parent, ts = submit_render(first, "a red cube")
        finished(first, parent.id)
        first.wait(lambda: first.final_update(ts), what="the first result")
    finally:
        close_harness(first)
    h = _start(make_harness(tmp_path / "b", state_path=state), drain=True)
    try:
        h.srv.post_user_message(C, "U1", "make it blue", thread_ts=ts)
        reply = thread_reply(h, C, ts, "/render")
        assert "find" in reply["text"]
        settle(h)
        assert h.store.list_jobs() == []
        assert h.renderer.renders == []
    finally:
        close_harness(h)


# ------------------------------------------------------------------ empty commands, mentions, DMs

@pytest.mark.parametrize(("command", "hint"), [("/render", "/render a red cube"),
                                               ("/analyze", "/analyze I love this")])
@pytest.mark.parametrize("text", ["", "   "], ids=["empty", "blank"])
def test_empty_command_gets_a_private_usage_hint(live: Harness, command: str, hint: str, text: str) -> None:
    h = live
    ack = h.srv.wait_for_ack(h.srv.send_slash_command(command, text, user_id="U1", channel_id=C))
    assert ack.payload["response_type"] == "ephemeral" and hint in ack.payload["text"]
    assert ephemeral_for(h, "U1", hint)["source"] == "ack"
    settle(h)
    assert h.store.list_jobs() == []
    assert h.srv.channel_messages(C) == []  # not even the invocation is shown in the channel
    assert h.srv.response_url_posts == []


def test_a_bare_mention_gets_help_in_its_thread(live: Harness) -> None:
    h = live
    ts = h.srv.post_user_message(C, "U1", f"<@{h.srv.bot_user_id}>")
    reply = thread_reply(h, C, ts, "/blender cancel JOB_ID")  # the help text
    assert "/render" in reply["text"]
    settle(h, 1.0)
    assert len([m for m in h.bot_messages(C) if m.get("thread_ts") == ts]) == 1  # app_mention + message: once
    assert h.store.list_jobs() == []


def test_a_direct_message_is_answered_in_the_dm(live: Harness) -> None:
    h = live
    dm = "D0U1DM"
    h.srv.add_channel(dm, "u1-dm", is_im=True)
    ts = h.srv.post_user_message(dm, "U1", "hello")
    thread_reply(h, dm, ts, "I render 3D scenes")
    ts = h.srv.post_user_message(dm, "U1", "render a blue cube")
    job = h.wait(lambda: h.store.list_jobs() and h.store.list_jobs()[0], what="the job from the DM")
    assert finished(h, job.id).status is JobStatus.DONE
    assert job.requester.channel_id == dm
    h.wait(lambda: [f for f in h.srv.files.values() if f.completed and f.channel_id == dm],
           what="the render uploaded into the DM")
    assert h.bot_messages(C) == []  # nothing went to a channel
    assert_nothing_queued(h)


# ------------------------------------------------------------------ echoed text is escaped

SPECIAL = "a red cube <!channel> <@U123> & <https://example.com|x>"


def _no_raw_control(text: str) -> None:
    for raw in ("<!channel>", "<@U123>", "<https://"):
        assert raw not in text, text


def test_special_mentions_in_a_request_are_echoed_escaped(live: Harness) -> None:
    h = live
    job, ts = submit_render(h, SPECIAL)
    finished(h, job.id)
    h.wait(lambda: h.final_update(ts), what="the result")
    posts = [c for c in h.srv.calls() if c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral")]
    assert posts
    for call in posts:
        _no_raw_control(str(call.params.get("text", "")))
        _no_raw_control(str(call.params.get("blocks", "")))
    placeholder = next(c for c in posts if c.method == "chat.postMessage" and not c.params.get("thread_ts"))
    # Slack markup in a command's text is read as plain words (`@channel`), never echoed live.
    assert "a red cube @channel @U123 &amp; x" in placeholder.params["text"]
    blender(h, "jobs")
    jobs = ephemeral_for(h, "U1", "Your recent jobs")
    _no_raw_control(jobs["text"])
    ack = h.srv.wait_for_ack(h.srv.send_slash_command("/blender", "<!channel>", user_id="U1", channel_id=C))
    _no_raw_control(ack.payload["text"])
    assert_nothing_queued(h)


def test_special_mentions_in_a_mention_request_are_echoed_escaped(live: Harness) -> None:
    h = live
    ts = h.srv.post_user_message(C, "U1", f"<@{h.srv.bot_user_id}> render a red cube <!here> <@U123>")
    job = h.wait(lambda: h.store.list_jobs() and h.store.list_jobs()[0], what="the job")
    finished(h, job.id)
    h.wait(lambda: [m for m in h.bot_messages(C) if m.get("thread_ts") == ts], what="the reply in the thread")
    for call in h.srv.calls():
        if call.method in ("chat.postMessage", "chat.update"):
            text = str(call.params.get("text", "")) + str(call.params.get("blocks", ""))
            assert "<!here>" not in text and "<@U123>" not in text, text
    assert_nothing_queued(h)
