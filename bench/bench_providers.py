"""Time the provider layer adds per request, excluding the server's own response time.

Two measurements:
1. in-process: the chain around a stub client that returns a canned completion at once
   (request adaptation, extraction, pydantic validation, accounting, logging) - no network;
2. over loopback: the chain against the fake OpenAI server, minus a bare `openai` SDK call
   with the same body to the same server (the SDK and the server cost the same in both).

    .venv/bin/python bench/bench_providers.py [--n 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slack_ai_addon.core.scene_spec import SceneSpec  # noqa: E402
from slack_ai_addon.providers import CooldownBook, ProviderChain, ProviderClient, StructuredTask  # noqa: E402
from slack_ai_addon.providers.accounting import CallRecorder  # noqa: E402
from slack_ai_addon.providers.analysis import ANALYSIS_SCHEMA, _parse_analysis  # noqa: E402
from slack_ai_addon.providers.client import Completion  # noqa: E402
from slack_ai_addon.providers.profiles import OPENAI, adapt_request  # noqa: E402
from slack_ai_addon.providers.spec_interpreter import parse_spec_completion, spec_messages  # noqa: E402
from tests.fakes.fake_openai import FakeOpenAI  # noqa: E402
from tests.job_store import temp_job_store  # noqa: E402

KEY = "sk-bench-key-000000000000"
SPEC = {"objects": [{"primitive": "cube", "material": {"base_color": "#ff0000"}},
                    {"primitive": "sphere", "location": {"x": 2, "y": 0, "z": 1}}],
        "floor": {"kind": "checkered"}, "animation": {"kind": "turntable", "frames": 24, "fps": 12}}
SENTIMENT = {"sentiment": "positive", "score": 0.9, "emotions": ["joy"], "summary": "Loves it.",
             "key_phrases": ["love"]}


class StubClient(ProviderClient):
    """Answers instantly: what remains is the layer's own work."""

    def __init__(self, content: str) -> None:
        super().__init__(OPENAI, base_url="http://stub/v1", api_key=KEY, model="gpt-4o-mini")
        self._content = content

    def chat(self, kwargs: dict[str, Any], *, timeout_s: float | None = None) -> Completion:
        return Completion(content=self._content, model="gpt-4o-mini-2024-07-18", prompt_tokens=900,
                          completion_tokens=120)


def tasks() -> dict[str, StructuredTask[Any]]:
    return {
        "scene_spec": StructuredTask(task="scene_spec", messages=spec_messages("a red cube and a sphere", None),
                                     parse=parse_spec_completion, schema=SceneSpec.model_json_schema(),
                                     schema_name="scene_spec", max_tokens=2000),
        "analysis": StructuredTask(task="analysis", messages=[{"role": "user", "content": "I love this!"}],
                                   parse=_parse_analysis, schema=ANALYSIS_SCHEMA, schema_name="sentiment",
                                   max_tokens=400, temperature=0.0),
    }


def timed(fn: Any, n: int) -> list[float]:
    for _ in range(max(5, n // 10)):  # warm up: imports, connection pool, pydantic caches
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def summary(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[int(len(samples) * 0.95) - 1]
    return f"median {statistics.median(samples):.3f} ms, p95 {p95:.3f} ms"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    answers = {"scene_spec": json.dumps(SPEC), "analysis": json.dumps(SENTIMENT)}
    results: dict[str, Any] = {}
    for name, task in tasks().items():
        chain = ProviderChain([StubClient(answers[name])], recorder=CallRecorder(temp_job_store()),
                              cooldowns=CooldownBook())
        samples = timed(lambda chain=chain, task=task: chain.run(task), args.n)
        results[f"in_process/{name}"] = statistics.median(samples)
        print(f"in-process layer, {name:<10}: {summary(samples)}")

    with FakeOpenAI("openai", api_key=KEY) as fake:
        for name, task in tasks().items():
            fake.responder = lambda body, name=name: json.loads(answers[name])
            client = ProviderClient(OPENAI, base_url=fake.base_url, api_key=KEY, model="gpt-4o-mini")
            chain = ProviderChain([client], recorder=CallRecorder(temp_job_store()), cooldowns=CooldownBook())
            kwargs = adapt_request(OPENAI, model="gpt-4o-mini", messages=task.messages, schema=task.schema,
                                   schema_name=task.schema_name, max_tokens=task.max_tokens,
                                   temperature=task.temperature)
            sdk = client.sdk()
            # Interleave the two so drift in machine load hits both alike.
            bare: list[float] = []
            layered: list[float] = []
            for _ in range(3):
                bare += timed(lambda kwargs=kwargs, sdk=sdk: sdk.chat.completions.create(**kwargs), args.n // 3)
                layered += timed(lambda chain=chain, task=task: chain.run(task), args.n // 3)
            added = statistics.median(layered) - statistics.median(bare)
            results[f"loopback/{name}"] = added
            print(f"loopback, {name:<10}: bare SDK {summary(bare)}; through the chain {summary(layered)}; "
                  f"added {added:.3f} ms")
    worst = max(results.values())
    print(f"worst median added by the layer: {worst:.3f} ms (target < 5 ms): {'OK' if worst < 5 else 'OVER'}")
    return 0 if worst < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
