"""The provider layer inside the job pipeline, and `python -m headless_runner analyze`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slack_ai_addon.core.config import Settings
from slack_ai_addon.core.dispatcher import run_one_job
from slack_ai_addon.core.jobs import Job, JobKind, JobStatus
from slack_ai_addon.core.pipeline import Interpretation, JobPipeline, PipelineDeps
from slack_ai_addon.core.scene_spec import SceneSpec
from slack_ai_addon.providers import (
    CooldownBook,
    IntentClassifier,
    build_analyzer,
    build_chain,
    build_intent_classifier,
)
from slack_ai_addon.providers import client as client_module
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.job_store import JobStoreForTests, temp_job_store

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-pipeline-test-key-42424242"

EXAMPLES = [("I love this new AI system!", "positive"),
            ("This is the worst update ever. I hate it.", "negative"),
            ("The meeting is at 3 pm on Tuesday in room 4.", "neutral")]


def llm_sentiment(body: dict[str, Any]) -> dict[str, Any]:
    """The fake LLM's judgement: keyed on the words, like a (very) small model."""
    text = body["messages"][-1]["content"].lower()
    if "love" in text:
        return {"sentiment": "positive", "score": 0.92, "emotions": ["joy", "excitement"],
                "summary": "Enthusiasm about a new AI system.", "key_phrases": ["love", "new AI system"]}
    if "hate" in text or "worst" in text:
        return {"sentiment": "negative", "score": -0.85, "emotions": ["anger"],
                "summary": "Strong dislike of an update.", "key_phrases": ["worst update"]}
    return {"sentiment": "neutral", "score": 0.0, "emotions": [], "summary": "A meeting time.",
            "key_phrases": ["meeting"]}


class NoInterpreter:
    def interpret(self, text: str, *, previous: SceneSpec | None = None,
                  correlation_id: str = "") -> Interpretation:
        raise AssertionError("analysis jobs do not interpret scenes")


@pytest.fixture(autouse=True)
def _no_local_lm_studio(monkeypatch: pytest.MonkeyPatch) -> None:
    import slack_ai_addon.providers as providers

    monkeypatch.setattr(providers, "LM_STUDIO_DEFAULT_URL", "http://127.0.0.1:9/v1")
    client_module.clear_probe_cache()


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("openai", api_key=KEY, responder=llm_sentiment) as fake:
        yield fake


def pipeline(tmp_path: Path, store: JobStoreForTests, *, analyzer: Any = None, interpreter: Any = None) -> JobPipeline:
    return JobPipeline(PipelineDeps(store=store, interpreter=interpreter or NoInterpreter(), analyzer=analyzer,
                                    output_dir=tmp_path, node_id="test-node"))


@pytest.mark.parametrize("text, expected", EXAMPLES)
def test_analyze_offline_through_the_pipeline(tmp_path: Path, text: str, expected: str) -> None:
    store = temp_job_store()
    analyzer = build_analyzer(Settings(provider_order="offline"), store=store)
    job = run_one_job(pipeline(tmp_path, store, analyzer=analyzer), Job(kind=JobKind.ANALYZE, request_text=text))
    assert job.status is JobStatus.DONE
    assert job.result["sentiment"] == expected
    assert job.result["provider"] == "offline" and job.result["model"] == "vader"
    assert store.llm_calls == []  # no LLM, nothing to account


@pytest.mark.parametrize("text, expected", EXAMPLES)
def test_analyze_with_the_llm_through_the_pipeline(tmp_path: Path, openai_fake: FakeOpenAI, text: str,
                                                   expected: str) -> None:
    store = temp_job_store()
    settings = Settings(openai_api_key=KEY, openai_base_url=openai_fake.base_url, provider_order="openai,offline")
    job = run_one_job(pipeline(tmp_path, store, analyzer=build_analyzer(settings, store=store)),
        Job(kind=JobKind.ANALYZE, request_text=text))
    assert job.status is JobStatus.DONE
    assert job.result["sentiment"] == expected
    assert job.result["provider"] == "openai:gpt-4o-mini-2024-07-18"
    assert job.result["model"] == "gpt-4o-mini-2024-07-18"
    assert isinstance(job.result["emotions"], list) and job.result["summary"]
    (row,) = store.llm_calls
    assert row["correlation_id"] == job.correlation_id and row["task"] == "analysis"


def test_analyze_quoted_question_analyses_the_quote(tmp_path: Path, openai_fake: FakeOpenAI) -> None:
    settings = Settings(openai_api_key=KEY, openai_base_url=openai_fake.base_url, provider_order="openai")
    analyzer = build_analyzer(settings)
    result = analyzer.analyze('What sentiment does this convey: "I love this"')
    assert result["sentiment"] == "positive" and result["analyzed_text"] == "I love this"
    assert openai_fake.chat_calls()[0].json["messages"][-1]["content"] == "I love this"


def test_render_prepare_uses_the_llm_when_configured(tmp_path: Path) -> None:
    from slack_ai_addon.providers import build_interpreter

    spec = {"objects": [{"primitive": "torus", "material": {"base_color": "#00ff00"}}],
            "output": {"engine": "workbench", "width": 64, "height": 48, "samples": 1}}
    with FakeOpenAI("routellm", api_key=KEY, responder=lambda body: spec) as fake:
        store = temp_job_store()
        settings = Settings(abacus_api_key=KEY, routellm_base_url=fake.base_url, provider_order="routellm,offline")
        pipe = pipeline(tmp_path, store, interpreter=build_interpreter(settings, store=store))
        job = store.claim(pipe.submit(Job(kind=JobKind.RENDER, request_text="a green donut")).id, "n", 60)
        assert job is not None
        job = pipe.prepare(job)
    assert job.result["provider"] == "routellm:gpt-4o-mini-2024-07-18"
    assert job.spec is not None and job.spec["objects"][0]["primitive"] == "torus"
    assert job.spec["objects"][0]["material"]["base_color"] == "#00ff00"
    assert job.result["notes"] == []
    assert store.llm_calls[0]["task"] == "scene_spec"


def test_render_prepare_falls_back_to_offline_and_says_so(tmp_path: Path) -> None:
    from slack_ai_addon.providers import build_interpreter

    with FakeOpenAI("routellm", api_key=KEY) as abacus, FakeOpenAI("openai", api_key="the-real-key-0000") as oai:
        abacus.out_of_credits = True
        store = temp_job_store()
        settings = Settings(abacus_api_key=KEY, routellm_base_url=abacus.base_url, openai_api_key=KEY,
                            openai_base_url=oai.base_url, provider_order="routellm,openai,offline")
        pipe = pipeline(tmp_path, store, interpreter=build_interpreter(settings, store=store))
        job = store.claim(pipe.submit(Job(kind=JobKind.RENDER, request_text="a red cube on a checkered floor")).id,
                          "n", 60)
        assert job is not None
        job = pipe.prepare(job)
    assert job.result["provider"] == "offline"
    assert job.result["notes"] == ["RouteLLM and OpenAI were unavailable (out of credits; bad key); "
                                   "used the offline interpreter"]
    assert job.spec is not None and job.spec["objects"]  # the offline grammar understood it
    assert [r["error_class"] for r in store.llm_calls] == ["quota_exhausted", "auth"]
    assert KEY not in json.dumps(store.llm_calls, default=str) + json.dumps(job.result)


def test_intent_with_the_llm_and_offline(openai_fake: FakeOpenAI) -> None:
    openai_fake.responder = lambda body: {"kind": "edit"}
    settings = Settings(openai_api_key=KEY, openai_base_url=openai_fake.base_url, provider_order="openai")
    intent = build_intent_classifier(settings).classify("make it blue")
    assert (intent.kind, intent.provider) == ("edit", "openai:gpt-4o-mini-2024-07-18")
    assert openai_fake.chat_calls()[0].json["response_format"]["json_schema"]["schema"]["properties"]["kind"][
        "enum"] == ["render", "edit", "analyze", "help", "status", "chitchat"]
    # The LLM failing: the offline classifier answers.
    openai_fake.script(Reply.server_error(), Reply.server_error())
    failing = IntentClassifier(build_chain(settings, cooldowns=CooldownBook()), offline=lambda text: "render")
    assert failing.classify("a red cube").kind == "render"
    assert failing.classify("a red cube").provider == "offline"
    assert build_intent_classifier(Settings(provider_order="offline")).classify("help").provider == "offline"


def test_cli_analyze_json_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ABACUS_API_KEY")}
    env.update(SLACK_AI_PROVIDER_ORDER="offline", SLACK_AI_OUTPUT_DIR=str(tmp_path / "out"),
               PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "headless_runner", "analyze", "I love this new AI system!", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["sentiment"] == "positive"
    assert 0.05 <= out["score"] <= 1.0
    assert out["provider"] == "offline"


# ------------------------------------------------------------------ context sizing, the Slack reply

LONG_TEXT = "I love this new AI system, it renders my scenes beautifully. " * 500  # ~31,000 chars


def test_long_analyze_text_is_trimmed_to_lm_studios_context() -> None:
    # Slack jobs are cut at MAX_REQUEST_CHARS already; the analyzer itself (CLI, add-on
    # panel) takes any length, and LM Studio's usual context is 4096 tokens.
    from slack_ai_addon.agent.blocks import analysis_message
    from slack_ai_addon.providers.chain import estimate_tokens
    from slack_ai_addon.providers.profiles import LMSTUDIO

    with FakeOpenAI("lmstudio", responder=llm_sentiment) as lm:
        settings = Settings(lm_studio_base_url=lm.base_url, provider_order="lmstudio,offline")
        result = build_analyzer(settings).analyze(LONG_TEXT)
        (call,) = lm.chat_calls()
    assert result["provider"] == "lmstudio:qwen2.5-7b-instruct" and result["sentiment"] == "positive"
    sent = call.json["messages"]
    assert estimate_tokens(sent) + call.json["max_tokens"] <= LMSTUDIO.context_tokens  # 4096
    assert len(sent[-1]["content"]) < len(LONG_TEXT.strip()) and "trimmed" in sent[-1]["content"]
    assert any("trimmed" in note and "LM Studio" in note for note in result["notes"])
    _, blocks = analysis_message(Job(kind=JobKind.ANALYZE, request_text=LONG_TEXT[:200], result=result))
    assert "trimmed" in str(blocks)


def test_a_prompt_too_long_for_lm_studio_falls_back_as_context_overflow(openai_fake: FakeOpenAI) -> None:
    from slack_ai_addon.providers import ErrorKind, StructuredTask
    from slack_ai_addon.providers.analysis import SentimentResult
    from slack_ai_addon.providers.structured import model_parser

    with FakeOpenAI("lmstudio", responder=llm_sentiment) as lm:
        settings = Settings(lm_studio_base_url=lm.base_url, openai_api_key=KEY, openai_base_url=openai_fake.base_url,
                            provider_order="lmstudio,openai")
        chain = build_chain(settings, cooldowns=CooldownBook())
        task = StructuredTask(task="scene_spec", parse=model_parser(SentimentResult), max_tokens=400,
                              messages=[{"role": "user", "content": LONG_TEXT}])
        result = chain.run(task)
        assert lm.chat_calls() == []  # not sent: it could only fail
    assert result.provider == "openai"
    (failure,) = result.failures
    assert failure.error.kind is ErrorKind.CONTEXT_OVERFLOW and failure.label == "LM Studio"
    assert openai_fake.chat_calls()[0].json["messages"][-1]["content"] == LONG_TEXT  # untrimmed on 128k


def test_the_slack_reply_reads_like_text() -> None:
    from slack_ai_addon.agent.blocks import analysis_message

    job = Job(kind=JobKind.ANALYZE, request_text="I love it", result={
        "sentiment": "positive", "score": 0.9, "emotions": ["joy", "surprise"], "summary": "Loves it.",
        "key_phrases": ["love it", "new AI system"], "provider": "lmstudio:qwen", "model": "qwen",
        "notes": ["RouteLLM was unavailable (out of credits); used LM Studio"]})
    _, blocks = analysis_message(job)
    shown = blocks[0]["text"]["text"]
    assert "*Emotions:* joy, surprise" in shown and "['joy'" not in shown
    assert "*Key phrases:* love it, new AI system" in shown
    assert "RouteLLM was unavailable (out of credits); used LM Studio" in shown
