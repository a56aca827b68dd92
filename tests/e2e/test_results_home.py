"""The App Home gallery and the Messages tab's suggested prompts (agent/home.py) through the
real agent and the local Slack: app_home_opened publishes a view that passes slack_sdk's
block validation (the fake refuses any other) and lists the user's jobs with thumbnails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_agent_harness import Harness, close_harness, make_harness

C = "C0RENDERS"


def _render(h: Harness, text: str, user: str = "U1") -> str:
    before = {j.id for j in h.store.list_jobs(limit=100)}
    h.srv.send_slash_command("/render", text, user_id=user, channel_id=C)
    job = h.wait(lambda: [j for j in h.store.list_jobs(limit=100) if j.id not in before and j.status.is_final],
                 timeout=20, what=f"job {text!r}")[0]
    # the agent saved the Slack file id of the uploaded picture
    h.wait(lambda: any(o.slack_file_id for o in (h.store.get(job.id) or job).outputs), what="file id")
    return str(job.id)


def _published(h: Harness, n: int) -> dict[str, Any]:
    calls = h.wait(lambda: (c := h.srv.calls("views.publish")) and len(c) >= n and c, what=f"views.publish #{n}")
    call = calls[n - 1]
    assert call.response and call.response["ok"], call.response
    return dict(call.params["view"])


def test_home_tab_lists_the_users_jobs_with_thumbnails_and_pages(tmp_path: Path) -> None:
    h = make_harness(tmp_path, admins="U1")
    h.agent.start()
    assert h.agent.wait_until_connected(10)
    h.start_drain()
    try:
        ids = [_render(h, f"a {colour} cube") for colour in ("red", "blue", "green", "yellow", "red", "blue")]
        _render(h, "someone else's green cube", user="U2")
        h.srv.send_event({"type": "app_home_opened", "user": "U1", "channel": "D0SANDBOX", "tab": "home"})
        view = _published(h, 1)
        assert view["type"] == "home"
        text = str(view["blocks"])
        newest = ids[::-1][:5]
        for job_id in newest:  # the five newest, newest first, each with its thumbnail
            assert job_id in text
        assert ids[0] not in text and "someone else" not in text
        sections = [b for b in view["blocks"] if b["type"] == "section" and "accessory" in b]
        assert len(sections) == 5
        files = {f.id: f for f in h.srv.files.values()}
        for section, job_id in zip(sections, newest, strict=True):
            file_id = section["accessory"]["slack_file"]["id"]
            assert files[file_id].thread_ts and job_id in files[file_id].title  # the job's own picture
        assert "Node status (admins)" in text and "Older" in text
        # Older ▶: the sixth job on page 2
        h.srv.send_interactive({"type": "block_actions", "user": {"id": "U1"}, "team": {"id": h.srv.team_id},
                                "container": {"type": "view", "view_id": view.get("id", "")},
                                "actions": [{"action_id": "home_page_next", "value": "1", "type": "button"}]})
        page2 = _published(h, 2)
        assert ids[0] in str(page2["blocks"]) and "Newer" in str(page2["blocks"])
        # Re-render from the home tab: answered in the job's own thread
        h.srv.send_interactive({"type": "block_actions", "user": {"id": "U1"}, "team": {"id": h.srv.team_id},
                                "container": {"type": "view"},
                                "actions": [{"action_id": f"home_rerender_{ids[0]}", "value": ids[0],
                                             "type": "button"}]})
        child = h.wait(lambda: [j for j in h.store.list_jobs(limit=100) if j.parent_job_id == ids[0]],
                       what="re-render")[0]
        parent = h.store.get(ids[0])
        assert parent is not None and child.requester.thread_ts == parent.slack_ts
        assert child.requester.channel_id == C
        # a user who is not an admin sees no node status
        h.srv.send_event({"type": "app_home_opened", "user": "U2", "channel": "D0SANDBOX", "tab": "home"})
        other = _published(h, 3)
        assert "Node status" not in str(other["blocks"]) and "someone else" in str(other["blocks"])
    finally:
        close_harness(h)


def test_messages_tab_gets_suggested_prompts(tmp_path: Path) -> None:
    h = make_harness(tmp_path)
    h.agent.start()
    assert h.agent.wait_until_connected(10)
    try:
        h.srv.send_event({"type": "app_home_opened", "user": "U1", "channel": "D0SANDBOX", "tab": "messages"})
        call = h.srv.wait_for_call("assistant.threads.setSuggestedPrompts", timeout=10)
        assert call.response and call.response["ok"]
        prompts = h.srv.workspace.suggested_prompts[-1]
        assert prompts["channel_id"] == "D0SANDBOX" and not prompts["thread_ts"]
        assert 1 <= len(prompts["prompts"]) <= 4
        assert not h.srv.calls("views.publish")
    finally:
        close_harness(h)
