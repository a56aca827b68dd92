"""Each provider's happy path through the real `openai` SDK against the fake server,
checking the exact request it sent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from slack_ai_addon.core.config import Settings
from slack_ai_addon.providers import (
    CooldownBook,
    ErrorKind,
    ProviderChain,
    ProviderClient,
    ProviderError,
    RetryPolicy,
    SentimentAnalyzer,
    StructuredTask,
    build_chain,
    build_clients,
)
from slack_ai_addon.providers import client as client_module
from slack_ai_addon.providers.analysis import SentimentResult
from slack_ai_addon.providers.profiles import LLAMACPP, LMSTUDIO
from slack_ai_addon.providers.structured import model_parser
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.job_store import temp_job_store

LEAKY_ENV_KEY = "sk-env-key-that-must-never-leave-1234567890"
ABACUS_KEY = "abacus-test-key-0123456789"
OPENAI_KEY = "sk-test-openai-key-0123456789"

POSITIVE = {"sentiment": "positive", "score": 0.9, "emotions": ["joy"], "summary": "The writer loves it.",
            "key_phrases": ["love", "new AI system"]}


@pytest.fixture(autouse=True)
def _leaky_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # If any client fell back to the SDK's environment lookup, this key would show up.
    monkeypatch.setenv("OPENAI_API_KEY", LEAKY_ENV_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # a closed port
    client_module.clear_probe_cache()


@pytest.fixture
def routellm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("routellm", api_key=ABACUS_KEY) as fake:
        yield fake


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("openai", api_key=OPENAI_KEY) as fake:
        yield fake


@pytest.fixture
def lmstudio() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("lmstudio") as fake:
        yield fake


def analysis_task(stream: bool = False) -> StructuredTask[SentimentResult]:
    from slack_ai_addon.providers.analysis import ANALYSIS_SCHEMA

    return StructuredTask(task="analysis", messages=[{"role": "user", "content": "I love this new AI system!"}],
                          parse=model_parser(SentimentResult), schema=ANALYSIS_SCHEMA, schema_name="sentiment",
                          max_tokens=300, temperature=0.0, stream=stream)


def assert_no_leak(*fakes: FakeOpenAI) -> None:
    for fake in fakes:
        for call in fake.calls:
            assert LEAKY_ENV_KEY not in json.dumps(call.headers)


def test_routellm_happy_path(routellm: FakeOpenAI) -> None:
    routellm.script(Reply.json(POSITIVE))
    store = temp_job_store()
    settings = Settings(abacus_api_key=ABACUS_KEY, routellm_base_url=routellm.base_url, provider_order="routellm")
    chain = build_chain(settings, store=store, cooldowns=CooldownBook())
    result = chain.run(analysis_task(), correlation_id="cid-1")
    assert result.value.sentiment == "positive"
    # route-llm may substitute a model: what ran is what we report and bill.
    assert result.provider_tag == "routellm:gpt-4o-mini-2024-07-18"
    (call,) = routellm.chat_calls()
    assert call.headers["authorization"] == f"Bearer {ABACUS_KEY}"
    assert call.headers["x-stainless-retry-count"] == "0"
    body = call.json
    assert body["model"] == "route-llm"
    assert body["max_tokens"] == 300 and "max_completion_tokens" not in body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["schema"]["required"] == [
        "sentiment", "score", "emotions", "summary", "key_phrases"]
    assert_no_leak(routellm)
    (row,) = store.llm_calls
    assert row["provider"] == "routellm" and row["requested_model"] == "route-llm"
    assert row["actual_model"] == "gpt-4o-mini-2024-07-18" and row["task"] == "analysis"
    assert row["correlation_id"] == "cid-1" and row["error_class"] == ""
    assert row["prompt_tokens"] > 0 and row["cost_usd"] > 0
    assert ABACUS_KEY not in json.dumps(row, default=str)


def test_openai_happy_path(openai_fake: FakeOpenAI) -> None:
    openai_fake.script(Reply.json(POSITIVE))
    settings = Settings(openai_api_key=OPENAI_KEY, openai_base_url=openai_fake.base_url, provider_order="openai")
    result = build_chain(settings, cooldowns=CooldownBook()).run(analysis_task())
    assert result.provider_tag == "openai:gpt-4o-mini-2024-07-18"
    (call,) = openai_fake.chat_calls()
    assert call.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert call.json["max_completion_tokens"] == 300 and "max_tokens" not in call.json
    assert call.json["temperature"] == 0.0
    assert call.json["response_format"]["json_schema"]["name"] == "sentiment"


def test_openai_reasoning_model_request_is_adapted(openai_fake: FakeOpenAI) -> None:
    # The fake rejects max_tokens and temperature != 1 for gpt-5 models, as OpenAI does.
    openai_fake.script(Reply.json(POSITIVE))
    settings = Settings(openai_api_key=OPENAI_KEY, openai_base_url=openai_fake.base_url, openai_model="gpt-5-mini",
                        provider_order="openai")
    result = build_chain(settings, cooldowns=CooldownBook()).run(analysis_task())
    assert result.model == "gpt-5-mini"
    (call,) = openai_fake.chat_calls()
    assert "temperature" not in call.json and call.json["max_completion_tokens"] == 300


def test_lmstudio_happy_path_discovers_the_loaded_model(lmstudio: FakeOpenAI) -> None:
    lmstudio.script(Reply.json(POSITIVE))
    settings = Settings(lm_studio_base_url=lmstudio.base_url, provider_order="lmstudio")
    store = temp_job_store()
    result = build_chain(settings, store=store, cooldowns=CooldownBook()).run(analysis_task())
    assert result.provider_tag == "lmstudio:qwen2.5-7b-instruct"
    assert [c.path for c in lmstudio.calls] == ["/api/v0/models", "/v1/chat/completions"]
    call = lmstudio.chat_calls()[0]
    assert call.json["model"] == "qwen2.5-7b-instruct"
    assert call.json["response_format"]["type"] == "json_schema"  # json_object would be a 400 here
    assert call.headers["authorization"] == "Bearer lm-studio"  # a dummy, never the env key
    assert_no_leak(lmstudio)
    assert store.llm_calls[0]["cost_usd"] == 0.0  # local


def test_llamacpp_profile_speaks_json_object_with_schema() -> None:
    with FakeOpenAI("llamacpp") as fake:
        client = ProviderClient(LLAMACPP, base_url=fake.base_url, model="gemma-3-270m")
        chain = ProviderChain([client], cooldowns=CooldownBook())
        fake.script(Reply.json(POSITIVE))
        result = chain.run(analysis_task())
        assert result.value.score == 0.9
        body = fake.chat_calls()[0].json
        assert body["response_format"]["type"] == "json_object" and "schema" in body["response_format"]
        assert body["repeat_penalty"] == 1.0


def test_streaming_answer_is_assembled(openai_fake: FakeOpenAI) -> None:
    openai_fake.script(Reply.json(POSITIVE))
    settings = Settings(openai_api_key=OPENAI_KEY, openai_base_url=openai_fake.base_url, provider_order="openai")
    store = temp_job_store()
    result = build_chain(settings, store=store, cooldowns=CooldownBook()).run(analysis_task(stream=True))
    assert result.value.model_dump() == POSITIVE
    body = openai_fake.chat_calls()[0].json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert store.llm_calls[0]["completion_tokens"] > 0  # from the usage chunk


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_come_back_whole(lmstudio: FakeOpenAI, stream: bool) -> None:
    client = ProviderClient(LMSTUDIO, base_url=lmstudio.base_url, model="qwen2.5-7b-instruct")
    lmstudio.script(Reply(tool_calls=[{"name": "render_scene", "arguments": {"prompt": "a red cube", "n": 1}}]))
    kwargs = {"model": "qwen2.5-7b-instruct", "messages": [{"role": "user", "content": "render a red cube"}],
              "tools": [{"type": "function", "function": {"name": "render_scene", "parameters": {"type": "object"}}}]}
    if stream:
        kwargs["stream"] = True
    completion = client.chat(kwargs)
    assert completion.finish_reason == "tool_calls"
    (call,) = completion.tool_calls
    # Streamed fragments carry the name only first; arguments arrive in pieces.
    assert call["name"] == "render_scene"
    assert json.loads(call["arguments"]) == {"prompt": "a red cube", "n": 1}


def test_lm_studio_is_used_only_when_it_answers(lmstudio: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    import slack_ai_addon.providers as providers

    monkeypatch.setattr(providers, "LM_STUDIO_DEFAULT_URL", lmstudio.base_url)
    clients = build_clients(Settings())
    assert [c.name for c in clients] == ["lmstudio"]
    assert clients[0].model() == "qwen2.5-7b-instruct"
    # A closed port: not configured, and the probe does not hold up startup.
    client_module.clear_probe_cache()
    monkeypatch.setattr(providers, "LM_STUDIO_DEFAULT_URL", "http://127.0.0.1:9/v1")
    start = time.perf_counter()
    assert build_clients(Settings()) == []
    assert time.perf_counter() - start < 1.0
    start = time.perf_counter()
    assert build_clients(Settings()) == []  # cached
    assert time.perf_counter() - start < 0.05


def test_keys_decide_which_providers_are_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    import slack_ai_addon.providers as providers

    monkeypatch.setattr(providers, "LM_STUDIO_DEFAULT_URL", "http://127.0.0.1:9/v1")
    assert build_clients(Settings()) == []  # the env OPENAI_API_KEY is not read here: Settings is the source
    clients = build_clients(Settings(abacus_api_key="a" * 12, openai_api_key="b" * 12,
                                     provider_order="openai,routellm,offline,lmstudio"))
    assert [c.name for c in clients] == ["openai", "routellm"]  # order kept; nothing after offline
    assert "a" * 12 not in repr(clients) and "b" * 12 not in repr(clients)


def test_analyzer_caches_identical_requests(openai_fake: FakeOpenAI) -> None:
    openai_fake.responder = lambda body: POSITIVE
    settings = Settings(openai_api_key=OPENAI_KEY, openai_base_url=openai_fake.base_url, provider_order="openai")
    analyzer = SentimentAnalyzer(build_chain(settings, cooldowns=CooldownBook(), policy=RetryPolicy()))
    first = analyzer.analyze("I love this new AI system!")
    second = analyzer.analyze("  I love this new   AI system! ")
    assert first["cached"] is False and second["cached"] is True
    assert second["sentiment"] == "positive" and second["provider"] == first["provider"]
    assert len(openai_fake.chat_calls()) == 1
    analyzer.analyze("Something else entirely.")
    assert len(openai_fake.chat_calls()) == 2


def test_lmstudio_picks_a_loaded_llm_not_the_embedding_model_listed_first(lmstudio: FakeOpenAI) -> None:
    # Under JIT loading /v1/models lists every downloaded model, an embedding model too
    # (docs/PROVIDER_RULES.md, "Model quirks"); only /api/v0/models says which is a loaded LLM.
    lmstudio.embedding_models = ["text-embedding-nomic-embed-text-v1.5"]
    lmstudio.models = ["llama-3.2-3b-instruct", "qwen2.5-7b-instruct"]
    lmstudio.not_loaded_models = ["llama-3.2-3b-instruct"]
    client = ProviderClient(LMSTUDIO, base_url=lmstudio.base_url)
    assert client.list_models() == ["text-embedding-nomic-embed-text-v1.5", "llama-3.2-3b-instruct",
                                    "qwen2.5-7b-instruct"]
    assert client.model() == "qwen2.5-7b-instruct"  # the loaded one
    assert client_module.choose_lmstudio_model(
        [{"id": "nomic-embed", "type": "embeddings", "state": "loaded"},
         {"id": "a", "type": "llm", "state": "not-loaded"}, {"id": "b", "type": "llm", "state": "not-loaded"}]) == "a"
    assert client_module.choose_lmstudio_model([{"id": "nomic-embed", "type": "embeddings", "state": "loaded"}]) == ""


def test_lmstudio_without_the_native_api_falls_back_to_v1_models(lmstudio: FakeOpenAI) -> None:
    lmstudio.native_api = False  # before 0.3.6: /api/v0/models is a 404
    client = ProviderClient(LMSTUDIO, base_url=lmstudio.base_url)
    assert client.model() == "qwen2.5-7b-instruct"  # the embedding model listed first is passed over
    assert [c.path for c in lmstudio.calls] == ["/api/v0/models", "/v1/models"]


def test_lmstudio_with_only_embedding_models_has_no_model(lmstudio: FakeOpenAI) -> None:
    lmstudio.models = []
    with pytest.raises(ProviderError) as caught:
        ProviderClient(LMSTUDIO, base_url=lmstudio.base_url).model()
    assert caught.value.kind is ErrorKind.MODEL_NOT_LOADED
