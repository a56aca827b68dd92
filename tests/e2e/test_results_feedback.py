"""Feedback buttons on a final (context_actions with feedback_buttons): each click is stored
with the job, its spec, provider and the user, and `/blender stats` shows the counts."""

from __future__ import annotations

import json

from test_agent_harness import Harness, harness  # noqa: F401 - the fixture

C = "C0RENDERS"


def test_feedback_clicks_are_stored_and_shown_in_stats(harness: Harness) -> None:  # noqa: F811
    h = harness
    h.srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id=C)
    ts = h.wait(lambda: [m["ts"] for m in h.bot_messages(C) if m.get("thread_ts") in (None, m["ts"])],
                what="placeholder")[0]
    final = h.wait(lambda: h.final_update(ts), timeout=20, what="final")
    job = h.store.list_jobs()[0]
    feedback = [b for b in final.params["blocks"] if b["type"] == "context_actions"]
    assert feedback and feedback[0]["elements"][0]["type"] == "feedback_buttons"
    assert feedback[0]["elements"][0]["positive_button"]["value"] == f"good:{job.id}"

    h.srv.click_button(C, ts, "result_feedback", user_id="U1", value=f"good:{job.id}")
    h.srv.click_button(C, ts, "result_feedback", user_id="U2", value=f"bad:{job.id}")
    h.srv.click_button(C, ts, "result_feedback", user_id="U3", value="good:not-a-job")  # ignored
    rows = h.wait(lambda: (r := [m for m in h.store.messages if str(m["kind"]).startswith("feedback:")])
                  and len(r) >= 2 and r, what="feedback rows")
    by_user = {r["user_id"]: r for r in rows}
    assert set(by_user) == {"U1", "U2"}
    assert by_user["U1"]["kind"] == "feedback:good" and by_user["U2"]["kind"] == "feedback:bad"
    body = json.loads(by_user["U1"]["body"])
    assert by_user["U1"]["job_id"] == job.id and body["provider"] == "stub" and body["spec"] == job.spec

    h.srv.send_slash_command("/blender", "stats", user_id="U1", channel_id=C)
    shown = "Feedback on results: 1 good, 1 bad"
    h.wait(lambda: any(shown in str(p.get("body")) for p in h.srv.response_url_posts) or
           any(shown in str(e.get("text")) for e in h.srv.ephemerals), what="stats with feedback")
