"""Fallback, retries, cooldowns, the deadline and the repair re-prompt, against fake servers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from slack_ai_addon.core.pipeline import Interpretation
from slack_ai_addon.core.scene_spec import SceneSpec
from slack_ai_addon.providers import (
    AllProvidersFailed,
    CooldownBook,
    ErrorKind,
    LLMSpecInterpreter,
    ProviderChain,
    ProviderClient,
    RetryPolicy,
    SentimentAnalyzer,
)
from slack_ai_addon.providers.accounting import CallRecorder
from slack_ai_addon.providers.profiles import LMSTUDIO, OPENAI, ROUTELLM
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.job_store import temp_job_store

KEY = "sk-primary-test-key-0001"
RED_CUBE = {"objects": [{"primitive": "cube", "name": "cube", "location": {"x": 0, "y": 0, "z": 0.5},
                         "rotation_deg": {"x": 0, "y": 0, "z": 0}, "scale": {"x": 1, "y": 1, "z": 1},
                         "material": {"base_color": "#ff0000", "metallic": 0, "roughness": 0.5,
                                      "emission_strength": 0, "transmission": 0, "checker": None},
                         "text": None}]}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class TinyOffline:
    """Stands in for providers.offline.OfflineInterpreter: always a grey sphere."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, SceneSpec | None]] = []

    def interpret(self, text: str, *, previous: SceneSpec | None = None,
                  correlation_id: str = "") -> Interpretation:
        self.calls.append((text, previous))
        return Interpretation(spec=SceneSpec.model_validate({"objects": [{"primitive": "sphere"}]}))


@pytest.fixture
def primary() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("openai", api_key=KEY) as fake:
        yield fake


@pytest.fixture
def backup() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("lmstudio") as fake:
        fake.responder = lambda body: RED_CUBE
        yield fake


def make_chain(primary: FakeOpenAI, backup: FakeOpenAI, *, clock: FakeClock | None = None,
               store: Any = None, **policy: Any) -> ProviderChain:
    clients = [ProviderClient(OPENAI, base_url=primary.base_url, api_key=KEY, model="gpt-4o-mini"),
               ProviderClient(LMSTUDIO, base_url=backup.base_url, model="qwen2.5-7b-instruct")]
    defaults: dict[str, Any] = {"base_delay_s": 0.01, "max_delay_s": 0.02, "deadline_s": 10.0}
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs.update(clock=clock, sleep=clock.sleep)
    return ProviderChain(clients, recorder=CallRecorder(store), policy=RetryPolicy(**{**defaults, **policy}),
                         cooldowns=CooldownBook(), **kwargs)


def interpreter(chain: ProviderChain) -> tuple[LLMSpecInterpreter, TinyOffline]:
    offline = TinyOffline()
    return LLMSpecInterpreter(chain, offline), offline


# (scripted failure, expected class, calls on the primary: 2 when retried)
FAILURES = [
    (Reply.error(400, {"success": False, "error": "You have no remaining credits to use the LLM apis."}),
     ErrorKind.QUOTA_EXHAUSTED, 1),
    (Reply.openai_error(401, "Incorrect API key provided", code="invalid_api_key"), ErrorKind.AUTH, 1),
    (Reply.openai_error(400, "Invalid value for 'messages'"), ErrorKind.BAD_REQUEST, 1),
    (Reply.server_error(), ErrorKind.TRANSIENT, 2),
    (Reply.html(502), ErrorKind.TRANSIENT, 2),
    (Reply.rate_limited(retry_after=600), ErrorKind.RATE_LIMITED, 1),  # too long to wait: fall back now
    (Reply.error(404, {"error": {"message": "No models loaded.", "type": "invalid_request_error"}}),
     ErrorKind.MODEL_NOT_LOADED, 1),
    (Reply.context_overflow_empty(), ErrorKind.CONTEXT_OVERFLOW, 1),
    (Reply.text("", refusal="I can't help with that."), ErrorKind.REFUSAL, 1),
    (Reply.malformed(), ErrorKind.INVALID_OUTPUT, 1),
]


@pytest.mark.parametrize("failure, kind, primary_calls", FAILURES, ids=[k.value + str(i) for i, (_, k, _) in
                                                                        enumerate(FAILURES)])
def test_fallback_under_each_failure_class(primary: FakeOpenAI, backup: FakeOpenAI, failure: Reply,
                                           kind: ErrorKind, primary_calls: int) -> None:
    primary.script(*([failure] * primary_calls))
    store = temp_job_store()
    interp, offline = interpreter(make_chain(primary, backup, store=store))
    result = interp.interpret("a red cube", correlation_id="cid-9")
    assert result.provider == "lmstudio:qwen2.5-7b-instruct"
    assert result.spec.objects[0].material.base_color == "#ff0000"
    assert len(primary.chat_calls()) == primary_calls
    assert offline.calls == []
    assert f"OpenAI was unavailable ({kind.user_words})" in result.notes[0]
    classes = [row["error_class"] for row in store.llm_calls if row["provider"] == "openai"]
    assert classes == [kind.value] * primary_calls
    assert store.llm_calls[-1]["provider"] == "lmstudio" and store.llm_calls[-1]["error_class"] == ""


def test_all_failing_falls_back_to_offline_with_a_readable_note(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    primary.api_key = "another-key-entirely"  # ours is now wrong: 401
    backup.loaded = False  # LM Studio: 404 No models loaded
    interp, offline = interpreter(make_chain(primary, backup))
    result = interp.interpret("a sphere")
    assert result.provider == "offline"
    assert len(offline.calls) == 1
    assert result.notes == ["OpenAI and LM Studio were unavailable (bad key; no model loaded); "
                            "used the offline interpreter"]
    assert KEY not in json.dumps(result.notes)


def test_retry_after_is_honoured_by_our_layer(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    clock = FakeClock()
    primary.script(Reply.rate_limited(retry_after=1), Reply.json(RED_CUBE))
    interp, _ = interpreter(make_chain(primary, backup, clock=clock))
    result = interp.interpret("a red cube")
    assert result.provider == "openai:gpt-4o-mini-2024-07-18"
    assert clock.sleeps == [1.0]
    calls = primary.chat_calls()
    assert len(calls) == 2
    # The SDK itself never retried: every attempt is its first.
    assert [c.headers["x-stainless-retry-count"] for c in calls] == ["0", "0"]


def test_retry_after_ms_really_waits(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    primary.script(Reply.error(429, {"error": {"message": "slow down"}}, {"retry-after-ms": "300"}),
                   Reply.json(RED_CUBE))
    interp, _ = interpreter(make_chain(primary, backup))
    start = time.perf_counter()
    assert interp.interpret("a red cube").provider.startswith("openai:")
    assert time.perf_counter() - start >= 0.3


def test_transient_backoff_is_capped_and_jittered(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    clock = FakeClock()
    primary.script(Reply.server_error(), Reply.server_error(), Reply.server_error(), Reply.json(RED_CUBE))
    chain = make_chain(primary, backup, clock=clock, max_attempts=4, base_delay_s=1.0, max_delay_s=1.5)
    interp, _ = interpreter(chain)
    assert interp.interpret("x").provider.startswith("openai:")
    assert len(clock.sleeps) == 3
    for wanted, slept in zip([1.0, 1.5, 1.5], clock.sleeps, strict=True):
        assert 0.75 * wanted <= slept <= wanted


def test_no_retry_on_400_or_401(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    for reply in (Reply.openai_error(400, "bad"), Reply.openai_error(401, "bad key")):
        primary.reset()
        primary.script(reply)
        chain = make_chain(primary, backup)
        interp, _ = interpreter(chain)
        assert interp.interpret("x").provider.startswith("lmstudio:")
        assert len(primary.chat_calls()) == 1


def test_cooldown_skips_a_failing_provider(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    clock = FakeClock()
    primary.script(Reply.server_error(), Reply.server_error())
    chain = make_chain(primary, backup, clock=clock, short_cooldown_s=20.0)
    interp, _ = interpreter(chain)
    assert interp.interpret("one").provider.startswith("lmstudio:")
    assert len(primary.chat_calls()) == 2
    second = interp.interpret("two")
    assert second.provider.startswith("lmstudio:")
    assert len(primary.chat_calls()) == 2  # skipped while cooling down
    assert "OpenAI was unavailable (not reachable or timed out, cooling down)" in second.notes[0]
    assert chain.status()[0]["cooling_down_s"] > 0
    clock.now += 21
    assert interp.interpret("three").provider.startswith("openai:")  # back after the cooldown


def test_bad_key_cooldown_lifts_only_when_the_health_check_passes(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    clock = FakeClock()
    real_key = primary.api_key
    primary.api_key = "rotated-key-on-the-server"
    chain = make_chain(primary, backup, clock=clock, health_check_interval_s=60.0)
    interp, _ = interpreter(chain)
    assert interp.interpret("one").provider.startswith("lmstudio:")
    clock.now += 61  # health check due: /v1/models still says 401
    assert interp.interpret("two").provider.startswith("lmstudio:")
    assert [c.path for c in primary.calls].count("/v1/models") == 1
    primary.api_key = real_key  # the key works again
    clock.now += 30
    assert interp.interpret("three").provider.startswith("lmstudio:")  # not due yet: no probe
    assert [c.path for c in primary.calls].count("/v1/models") == 1
    clock.now += 31
    assert interp.interpret("four").provider.startswith("openai:")
    assert [c.path for c in primary.calls].count("/v1/models") == 2


def test_the_deadline_holds_against_a_hanging_server(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    primary.script(Reply.hang(30))
    backup.script(Reply.hang(30))
    interp, offline = interpreter(make_chain(primary, backup))
    interp.deadline_s = 1.0
    start = time.perf_counter()
    result = interp.interpret("a red cube")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, elapsed
    assert result.provider == "offline" and len(offline.calls) == 1
    assert "not reachable or timed out" in result.notes[0]


def test_invalid_output_is_repaired_once(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    primary.script(Reply.json({"objects": "lots of cubes"}), Reply.text("```json\n" + json.dumps(RED_CUBE) + "\n```"))
    interp, _ = interpreter(make_chain(primary, backup))
    result = interp.interpret("a red cube")
    assert result.provider.startswith("openai:")
    assert result.spec.objects[0].primitive.value == "cube"
    assert "corrected" in result.notes[-1]
    first, second = primary.chat_calls()
    repair = second.json["messages"]
    assert repair[:2] == first.json["messages"]
    assert repair[2]["role"] == "assistant" and "lots of cubes" in repair[2]["content"]
    assert repair[3]["role"] == "user" and "objects" in repair[3]["content"]  # names the bad field


def test_invalid_twice_falls_back_and_the_spec_is_valid(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    primary.script(Reply.text("Sure! A red cube, coming up."), Reply.json({"objects": [{"primitive": "dragon"}]}))
    interp, _ = interpreter(make_chain(primary, backup))
    result = interp.interpret("a red cube")
    assert result.provider.startswith("lmstudio:")
    assert len(primary.chat_calls()) == 2
    assert "unusable answer" in result.notes[0]
    SceneSpec.model_validate(result.spec.to_json_dict())


def test_out_of_range_numbers_are_clamped_not_rejected(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    spec = {"output": {"engine": "cycles", "width": 100000, "height": 48, "samples": 8, "format": "png",
                       "time_limit_s": 60}}
    primary.script(Reply.json(spec))
    interp, _ = interpreter(make_chain(primary, backup))
    result = interp.interpret("a huge render")
    assert result.spec.output.width == 4096
    assert any("width" in w for w in result.warnings)
    assert len(primary.chat_calls()) == 1


def test_edit_sends_the_previous_spec(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    previous = SceneSpec.model_validate(RED_CUBE)
    blue = json.loads(json.dumps(RED_CUBE))
    blue["objects"][0]["material"]["base_color"] = "#0000ff"
    primary.script(Reply.json(blue))
    interp, _ = interpreter(make_chain(primary, backup))
    result = interp.interpret("make it blue", previous=previous)
    assert result.spec.objects[0].material.base_color == "#0000ff"
    user = primary.chat_calls()[0].json["messages"][1]["content"]
    assert "make it blue" in user and '"base_color":"#ff0000"' in user


def test_capability_mismatch_is_fixed_once(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    backup.script(Reply.openai_error(400, "Unsupported parameter: 'max_tokens' is not supported with this model.",
                                     code="unsupported_parameter", param="max_tokens"))
    chain = ProviderChain([ProviderClient(LMSTUDIO, base_url=backup.base_url, model="qwen2.5-7b-instruct")],
                          cooldowns=CooldownBook(), policy=RetryPolicy(deadline_s=5))
    interp, _ = interpreter(chain)
    assert interp.interpret("a red cube").provider.startswith("lmstudio:")
    first, second = backup.chat_calls()
    assert "max_tokens" in first.json and "max_completion_tokens" in second.json


def test_chain_raises_with_every_failure_in_order(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    routellm = ProviderClient(ROUTELLM, base_url="http://127.0.0.1:9/v1", api_key="k" * 16)
    chain = ProviderChain([routellm], cooldowns=CooldownBook(), policy=RetryPolicy(max_attempts=1))
    analyzer = SentimentAnalyzer(chain)
    result = analyzer.analyze("I love this new AI system!")
    assert result["sentiment"] == "positive" and result["provider"] == "offline"
    assert result["notes"] == ["RouteLLM was unavailable (not reachable or timed out); used offline sentiment "
                               "(VADER)"]
    with pytest.raises(AllProvidersFailed) as info:
        from slack_ai_addon.providers.analysis import ANALYSIS_SCHEMA, SentimentResult
        from slack_ai_addon.providers.chain import StructuredTask
        from slack_ai_addon.providers.structured import model_parser

        chain.run(StructuredTask(task="analysis", messages=[], parse=model_parser(SentimentResult),
                                 schema=ANALYSIS_SCHEMA))
    assert [f.label for f in info.value.failures] == ["RouteLLM"]
    assert info.value.failures[0].skipped  # cooling down after the first failure


def test_keys_never_reach_logs_or_errors(primary: FakeOpenAI, backup: FakeOpenAI,
                                         caplog: pytest.LogCaptureFixture) -> None:
    # OpenAI's 401 echoes the key it received; our layer must not repeat it anywhere.
    primary.api_key = "not-the-key-we-send"
    backup.loaded = False
    caplog.set_level("DEBUG")
    interp, _ = interpreter(make_chain(primary, backup))
    result = interp.interpret("a red cube")
    assert result.provider == "offline"
    assert "Incorrect API key provided" in json.dumps([r.__dict__ for r in caplog.records], default=str)
    everything = json.dumps([r.__dict__ for r in caplog.records], default=str) + caplog.text + json.dumps(
        result.notes)
    assert KEY not in everything


def test_json_inside_the_reasoning_block_is_used(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    backup.script(Reply(content="", reasoning="Let me think. " + json.dumps(RED_CUBE)))
    chain = ProviderChain([ProviderClient(LMSTUDIO, base_url=backup.base_url, model="qwen2.5-7b-instruct")],
                          cooldowns=CooldownBook())
    interp, _ = interpreter(chain)
    result = interp.interpret("a red cube")
    assert result.provider.startswith("lmstudio:") and result.spec.objects[0].primitive.value == "cube"
    assert len(backup.chat_calls()) == 1


@pytest.mark.parametrize("failure", ["out_of_credits", "bad_key"])
def test_public_model_list_does_not_end_a_long_cooldown(backup: FakeOpenAI, failure: str) -> None:
    """RouteLLM's /v1/models answers without a key or credits, so it cannot vouch for
    either: the provider sits out a fixed cooldown instead of returning every 2 minutes."""
    clock = FakeClock()
    with FakeOpenAI("routellm", api_key="abacus-key-0123456789") as abacus:
        abacus.out_of_credits = failure == "out_of_credits"
        key = "abacus-key-0123456789" if failure == "out_of_credits" else "abacus-key-revoked-000"
        chain = ProviderChain([ProviderClient(ROUTELLM, base_url=abacus.base_url, api_key=key),
                               ProviderClient(LMSTUDIO, base_url=backup.base_url, model="qwen2.5-7b-instruct")],
                              policy=RetryPolicy(deadline_s=10.0, health_check_interval_s=120.0,
                                                 public_list_cooldown_s=1800.0),
                              cooldowns=CooldownBook(), clock=clock, sleep=clock.sleep)
        interp, _ = interpreter(chain)
        assert interp.interpret("one").provider.startswith("lmstudio:")
        assert len(abacus.chat_calls()) == 1
        for _ in range(10):  # 20 minutes of health-check intervals
            clock.now += 121
            assert interp.interpret("again").provider.startswith("lmstudio:")
        assert len(abacus.chat_calls()) == 1  # not retried on the strength of a public /v1/models
        assert chain.status()[0]["cooling_down_s"] > 0
        abacus.out_of_credits = False
        abacus.api_key = key  # credits bought, key fixed
        clock.now += 1800
        assert interp.interpret("later").provider.startswith("routellm:")
        assert len(abacus.chat_calls()) == 2
