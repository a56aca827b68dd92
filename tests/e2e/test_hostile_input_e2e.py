"""Hostile input through the real parts: an LLM server answering deeply nested or runaway
JSON (the chain falls back), Socket Mode frames the decoder cannot take (still acked; the
agent's threads live on), and Slack text with control characters and lone surrogates
(cleaned before the job row is written)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_agent_harness import Harness
from test_agent_harness import harness as harness  # noqa: F401  (the fixture)

from slack_ai_addon.providers import CooldownBook, LLMSpecInterpreter, ProviderChain, ProviderClient, RetryPolicy
from slack_ai_addon.providers.profiles import LMSTUDIO, OPENAI
from tests.fakes.fake_openai import FakeOpenAI, Reply

KEY = "sk-primary-test-key-0001"
CUBE = {"objects": [{"primitive": "cube"}]}


class TinyOffline:
    def interpret(self, text: str, *, previous: Any = None, correlation_id: str = "") -> Any:
        raise AssertionError("the LM Studio backup should have answered")


@pytest.fixture
def servers() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI("openai", api_key=KEY) as primary, FakeOpenAI("lmstudio") as backup:
        backup.responder = lambda body: CUBE
        yield primary, backup


@pytest.mark.parametrize("answer", [
    '{"objects":' * 1600,  # the RecursionError
    json.dumps(CUBE)[:-1] + ', "pad": "' + "x" * 150_000 + '"}',  # far more than max_tokens allows
    "{ " * 90_000,
], ids=["deep", "runaway", "braces"])
def test_a_hostile_answer_falls_back_to_the_next_provider(servers: tuple[FakeOpenAI, FakeOpenAI],
                                                          answer: str) -> None:
    primary, backup = servers
    primary.script(Reply.text(answer), Reply.text(answer))  # the answer and its repair
    chain = ProviderChain([ProviderClient(OPENAI, base_url=primary.base_url, api_key=KEY, model="gpt-4o-mini"),
                           ProviderClient(LMSTUDIO, base_url=backup.base_url, model="qwen2.5-7b-instruct")],
                          policy=RetryPolicy(base_delay_s=0.01, max_delay_s=0.02, deadline_s=20.0),
                          cooldowns=CooldownBook())
    start = time.perf_counter()
    result = LLMSpecInterpreter(chain, TinyOffline()).interpret("a cube")
    assert result.provider.startswith("lmstudio:")
    assert "unusable answer" in result.notes[0]
    assert time.perf_counter() - start < 5


# ------------------------------------------------------------------ Socket Mode frames

class RecordingClient:
    """Stands in for the SocketModeClient: records the acks `_on_raw` sends."""

    def __init__(self) -> None:
        self.acked: list[str] = []

    def send_socket_mode_response(self, response: Any) -> None:
        self.acked.append(response.envelope_id)




def test_deep_frames_are_acked_and_the_socket_thread_lives_on(harness: Harness) -> None:
    h = harness
    real = h.agent._client
    fake = RecordingClient()
    frames = ['{"envelope_id": "e1", "type": "events_api", "payload": ' + '{"a":' * 100_000,
              '{"envelope_id": "e2", "type": "slash_commands", "accepts_response_payload": true, "payload": '
              + '{"a":' * 3000 + "1" + "}" * 3000 + "}",
              '{"envelope_id": "e3", "type": "interactive", "payload": ' + "[" * 50_000 + "]" * 50_000 + "}"]
    h.agent._client = fake  # type: ignore[assignment]
    try:
        for raw in frames:
            h.agent._on_raw(None, raw)  # would raise RecursionError before
    finally:
        h.agent._client = real
    assert fake.acked == ["e1", "e2", "e3"]
    # The real connection still works end to end afterwards.
    env = h.srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id="C0GENERAL")
    assert h.srv.wait_for_ack(env).payload == {"response_type": "in_channel"}


def test_fuzzed_frames_are_all_acked(harness: Harness) -> None:
    h = harness
    real = h.agent._client
    fake = RecordingClient()
    leaves = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=30),
                       st.sampled_from(["\ud800", "<!channel>", "\x00"]))
    payloads = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                            max_leaves=20)
    sent: list[str] = []

    @settings(derandomize=True, max_examples=600, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(kind=st.sampled_from(["events_api", "slash_commands", "interactive", "hello", "disconnect"]),
           payload=payloads, depth=st.sampled_from([0, 0, 0, 70, 2000]))
    def one(kind: str, payload: Any, depth: int) -> None:
        envelope_id = f"fz-{len(sent)}"
        sent.append(envelope_id)
        body = json.dumps(payload)
        raw = (f'{{"envelope_id": "{envelope_id}", "type": "{kind}", "accepts_response_payload": true, '
               f'"payload": {"[" * depth}{body}{"]" * depth}}}')
        h.agent._on_raw(None, raw)
        # What slack_sdk's worker pool would hand over next (parsed or not): routing never raises.
        if depth < 500:
            h.agent._on_frame(None, json.loads(raw))

    h.agent._client = fake  # type: ignore[assignment]
    try:
        one()
    finally:
        h.agent._client = real
    assert fake.acked == sent
    assert h.agent.status().state == "connected"


# ------------------------------------------------------------------ Slack text

def test_control_characters_and_lone_surrogates_never_reach_the_database(harness: Harness) -> None:
    h = harness
    h.srv.send_slash_command("/render", "a red\x00 cube\x1b[2J \ud800\u0085 &lt;!channel&gt;", user_id="U1",
                             channel_id="C0GENERAL")
    h.srv.post_user_message("C0GENERAL", "U1", f"<@{h.srv.bot_user_id}> render a blue\x07 cube \udfff")
    jobs = h.wait(lambda: len(h.store.list_jobs()) == 2 and h.store.list_jobs(), what="both jobs")
    texts = {j.request_text for j in jobs}
    assert texts == {"a red cube[2J  !channel", "a blue cube"}, texts
    for job in jobs:
        job.request_text.encode("utf-8")
        h.wait(lambda job=job: (row := h.store.get(job.id)) is not None and row.status.is_final,
               what="the job to finish")


def test_a_command_of_control_characters_only_gets_the_usage_hint(harness: Harness) -> None:
    h = harness
    ack = h.srv.wait_for_ack(h.srv.send_slash_command("/render", "\x00\x1b\ud800 \x07", user_id="U1",
                                                      channel_id="C0GENERAL"))
    assert ack.payload is not None and ack.payload["response_type"] == "ephemeral"
    assert "Tell me what to render" in ack.payload["text"]
    time.sleep(0.5)
    assert h.store.list_jobs() == []
