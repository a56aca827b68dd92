"""Slack /render through the real provider chain: the LLM when it answers, the offline
interpreter when every provider fails, and the reply says which (issue: provider layer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_agent_harness import Harness, close_harness, make_harness, png_ok

from slack_ai_addon.core.config import Settings
from slack_ai_addon.providers import build_interpreter
from tests.fakes.fake_openai import FakeOpenAI

KEY = "sk-test-0123456789abcdef"
C = "C0RENDERS"
GREEN_TORUS = {"objects": [{"primitive": "torus", "material": {"base_color": "#00ff00"}}],
               "output": {"engine": "workbench", "width": 64, "height": 48, "samples": 1}}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = make_harness(tmp_path)
    try:
        yield h
    finally:
        close_harness(h)


def _render(h: Harness, settings: Settings, text: str) -> tuple[str, tuple[int, int, int]]:
    h.runtime.pipeline.deps.interpreter = build_interpreter(settings, store=h.store)
    h.agent.start()
    assert h.agent.wait_until_connected(10)
    h.start_drain()
    h.srv.wait_for_ack(h.srv.send_slash_command("/render", text, user_id="U1", channel_id=C), timeout=3)
    ts = h.wait(lambda: h.bot_messages(C), what="placeholder")[0]["ts"]
    final = h.wait(lambda: h.final_update(ts), timeout=30, what="final update")
    image = h.wait(lambda: [f for f in h.srv.files.values() if f.thread_ts == ts], what="upload")[0]
    return str(final.params["text"]) + str(final.params["blocks"]), png_ok(image.data)


def test_render_uses_the_llm_when_configured(harness: Harness) -> None:
    with FakeOpenAI("routellm", api_key=KEY, responder=lambda body: GREEN_TORUS) as fake:
        settings = Settings(abacus_api_key=KEY, routellm_base_url=fake.base_url, provider_order="routellm,offline")
        reply, (r, g, b) = _render(harness, settings, "a green donut")
        assert fake.chat_calls(), "the LLM was not asked"
    assert "routellm:" in reply and "offline interpreter" not in reply
    assert g > 200 and r < 60  # the LLM's green torus is what was rendered
    assert harness.store.llm_calls and harness.store.llm_calls[0]["provider"] == "routellm"


def test_render_falls_back_to_offline_and_says_so_in_slack(harness: Harness) -> None:
    with FakeOpenAI("routellm", api_key=KEY) as abacus, FakeOpenAI("openai", api_key="the-real-key-0000") as oai:
        abacus.out_of_credits = True
        settings = Settings(abacus_api_key=KEY, routellm_base_url=abacus.base_url, openai_api_key=KEY,
                            openai_base_url=oai.base_url, provider_order="routellm,openai,offline")
        reply, (r, g, b) = _render(harness, settings, "a red cube")
    assert "used the offline interpreter" in reply and "out of credits" in reply
    assert r > 200 and g < 60  # the offline grammar's red cube
    assert KEY not in reply
