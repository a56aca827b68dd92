"""Mention and link injection: what a user typed as Slack markup, and whatever an LLM or a
provider answers, never comes back from the bot as live markup.

Slack sends typed angle brackets escaped (`&lt;!channel&gt;`); the bot unescapes them to read
the request. Every text, block, fallback, ephemeral, response_url answer and file comment the
local Slack server received is scanned for `<!channel>`, `<!here>`, `<!everyone>`, a user
mention and a labelled link: none may be there live. The only mention the bot writes is
the requester's, built by its own code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_agent_harness import Harness
from test_agent_harness import harness as harness  # noqa: F401  (the fixture)

from slack_ai_addon.agent.router import clean_text
from slack_ai_addon.core.jobs import Job, JobStatus
from slack_ai_addon.core.pipeline import Interpretation
from slack_ai_addon.core.scene_spec import SceneSpec, parse_scene_spec
from slack_ai_addon.providers.offline.interpreter import OfflineInterpreter

C = "C0GENERAL"
USER = "U1REQUESTER"  # the only user the bot may mention
LIVE = ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<https://evil.example", "Open your render>")
# As Slack delivers what a user typed: &, < and > escaped.
ENCODED = ("&lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt; &lt;@U123&gt; "
           "&lt;https://evil.example/login|Open your render&gt; &amp;lt;!here&amp;gt; &lt;&lt;!here&gt;&gt;")
# What an LLM server (or a compromised one) may answer: live markup everywhere.
HOSTILE = "<!channel> <!here> <!everyone> <@U123> <https://evil.example/login|Open your render>"


class HostileInterpreter:
    """A spec whose provider name, notes and warnings carry live markup (an LLM's answer)."""

    def interpret(self, text: str, *, previous: SceneSpec | None = None, correlation_id: str = "") -> Interpretation:
        data = previous.to_json_dict() if previous else {"objects": [{"primitive": "cube"}]}
        data["output"] = dict(data.get("output") or {}, width=64, height=48, samples=1, engine="workbench")
        spec, warnings = parse_scene_spec(data)
        return Interpretation(spec=spec, provider=HOSTILE, warnings=[*warnings, HOSTILE],
                              not_understood=[HOSTILE], notes=[HOSTILE])


class HostileAnalyzer:
    def analyze(self, text: str, *, correlation_id: str = "") -> dict[str, Any]:
        return {"sentiment": HOSTILE, "score": HOSTILE, "provider": HOSTILE, "model": HOSTILE, "summary": HOSTILE,
                "explanation": HOSTILE, "emotions": [HOSTILE], "key_phrases": [HOSTILE], "notes": [HOSTILE]}


class FailingInterpreter:
    def interpret(self, text: str, *, previous: SceneSpec | None = None, correlation_id: str = "") -> Interpretation:
        raise RuntimeError(f"provider {HOSTILE} said: {text}")




@pytest.fixture
def h(harness: Harness) -> Harness:
    """The shared harness fixture, under the short name these tests use."""
    return harness


def everything_posted(h: Harness) -> list[str]:
    """Every text the bot sent to Slack: Web API calls (text, blocks, comments, titles), the
    files it shared, ephemerals, response_url answers and ack payloads."""
    out = [json.dumps(c.params, default=str) for c in h.srv.calls() if c.method != "upload"]
    out += [json.dumps(p, default=str) for p in h.srv.response_url_posts]
    out += [json.dumps(e, default=str) for e in h.srv.ephemerals]
    out += [json.dumps(a.payload, default=str) for a in h.srv.acks if a.payload]
    out += [f"{f.title}\n{f.initial_comment or ''}" for f in h.srv.files.values()]
    return out


def assert_nothing_live(h: Harness) -> None:
    posted = everything_posted(h)
    assert posted
    for text in posted:
        # json.dumps keeps "<" and ">" as they are, so a live sequence shows as itself.
        for live in LIVE:
            assert live not in text, f"{live!r} posted live in {text[:600]}"
        for mention in ("<@",):
            for at in range(len(text)):
                at = text.find(mention, at)
                if at < 0:
                    break
                assert text.startswith(f"<@{USER}>", at), f"a mention the bot did not build: {text[at:at + 40]}"


def finished(h: Harness, job_id: str, timeout: float = 15.0) -> Job:
    job: Job = h.wait(lambda: (row := h.store.get(job_id)) is not None and row.status.is_final and row,
                      timeout=timeout, what=f"job {job_id} to finish")
    return job


def new_job(h: Harness, before: set[str]) -> Job:
    job: Job = h.wait(lambda: next((j for j in h.store.list_jobs(limit=100) if j.id not in before), None),
                      what="the new job")
    return job


def final_posted(h: Harness, job_id: str) -> None:
    h.wait(lambda: (row := h.store.get(job_id)) is not None and row.slack_ts and h.final_update(row.slack_ts),
           what="the final message")


def test_clean_text_never_makes_live_markup() -> None:
    text = clean_text(f"<@UBOT> render a cube {ENCODED} <!here> <https://x.example|label>", "UBOT")
    for live in LIVE:
        assert live not in text, text
    assert "Open your render" in text and "label" in text  # the words stay
    assert clean_text("a &lt; b &amp; c") == "a < b & c"


def test_slash_command_and_mention_with_encoded_markup(h: Harness) -> None:
    before: set[str] = set()
    h.srv.send_slash_command("/render", f"a red cube {ENCODED}", user_id=USER, channel_id=C)
    job = new_job(h, before)
    for live in LIVE:
        assert live not in job.request_text, job.request_text  # what the database holds is words
    assert finished(h, job.id).status is JobStatus.DONE
    final_posted(h, job.id)
    ts = str(h.store.get(job.id).slack_ts)  # type: ignore[union-attr]

    # A mention, a thread edit and an analysis, each carrying the same markup.
    before = {j.id for j in h.store.list_jobs(limit=100)}
    h.srv.post_user_message(C, USER, f"<@{h.srv.bot_user_id}> render a blue cube {ENCODED}")
    mention_job = new_job(h, before)
    assert finished(h, mention_job.id).status is JobStatus.DONE
    final_posted(h, mention_job.id)

    before = {j.id for j in h.store.list_jobs(limit=100)}
    h.srv.post_user_message(C, USER, f"make it green {ENCODED}", thread_ts=ts)
    edit = new_job(h, before)
    assert finished(h, edit.id).status is JobStatus.DONE
    final_posted(h, edit.id)

    before = {j.id for j in h.store.list_jobs(limit=100)}
    h.srv.send_slash_command("/analyze", f"I love this {ENCODED}", user_id=USER, channel_id=C)
    analysis = new_job(h, before)
    assert finished(h, analysis.id).status is JobStatus.DONE
    h.wait(lambda: any("Sentiment" in str(c.params.get("text", "")) for c in h.srv.calls("chat.postMessage")),
           what="the analysis")
    # /blender with markup as its subcommand and as a cancel argument, and the job list.
    h.srv.wait_for_ack(h.srv.send_slash_command("/blender", ENCODED, user_id=USER, channel_id=C))
    h.srv.send_slash_command("/blender", f"cancel {ENCODED}", user_id=USER, channel_id=C)
    h.srv.send_slash_command("/blender", "jobs", user_id=USER, channel_id=C)
    h.wait(lambda: any("Your recent jobs" in e["text"] for e in h.srv.ephemerals), what="the job list")
    h.wait(lambda: any("not a job id" in e["text"] for e in h.srv.ephemerals), what="the cancel answer")
    assert_nothing_live(h)
    # The requester is still mentioned, by the bot's own code.
    assert any(f"<@{USER}>" in text for text in everything_posted(h))


def test_llm_and_provider_output_is_escaped(h: Harness) -> None:
    h.runtime.pipeline.deps.interpreter = HostileInterpreter()  # type: ignore[assignment]
    h.runtime.pipeline.deps.analyzer = HostileAnalyzer()  # type: ignore[assignment]
    before: set[str] = set()
    h.srv.send_slash_command("/render", "a cube", user_id=USER, channel_id=C)
    job = new_job(h, before)
    assert finished(h, job.id).status is JobStatus.DONE
    final_posted(h, job.id)
    before = {j.id for j in h.store.list_jobs(limit=100)}
    h.srv.send_slash_command("/analyze", "some text", user_id=USER, channel_id=C)
    analysis = new_job(h, before)
    assert finished(h, analysis.id).status is JobStatus.DONE
    h.wait(lambda: any("Sentiment" in str(c.params.get("text", "")) for c in h.srv.calls("chat.postMessage")),
           what="the analysis")
    h.wait(lambda: any("Analysis" in str(c.params.get("text", "")) for c in h.srv.calls("chat.update")),
           what="the analysis placeholder")
    assert_nothing_live(h)


@pytest.mark.parametrize("interpreter", [OfflineInterpreter, FailingInterpreter], ids=["offline", "error"])
def test_error_messages_quoting_the_request_are_escaped(h: Harness, interpreter: type) -> None:
    h.runtime.pipeline.deps.interpreter = interpreter()
    before: set[str] = set()
    h.srv.send_slash_command("/render", f"zzz qqq {ENCODED}", user_id=USER, channel_id=C)
    job = new_job(h, before)
    failed = finished(h, job.id)
    assert failed.status is JobStatus.FAILED
    if interpreter is OfflineInterpreter:
        assert "could not find anything to render" in failed.error
    final_posted(h, job.id)
    h.wait(lambda: any(c.params.get("thread_ts") and "❌" in str(c.params.get("text", ""))
                       for c in h.srv.calls("chat.postMessage")), what="the error in the thread")
    assert_nothing_live(h)
