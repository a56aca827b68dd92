"""LLM providers (RouteLLM, OpenAI, LM Studio) behind one chain, and the analyzers built on it.

No bpy here. The three builders are what `runtime.py` and the agent call:

- `build_interpreter(settings)`: a SpecInterpreter; LLMs in `settings.providers` order, the
  offline interpreter last.
- `build_analyzer(settings)`: an Analyzer; LLM sentiment, VADER offline.

The offline pieces (grammar interpreter, keyword intent, VADER) are in `offline/`.
- `build_intent_classifier(settings)`: `classify(text) -> Intent`.

A provider is in the chain when it is configured: RouteLLM and OpenAI with a key, LM
Studio when its URL is set or http://localhost:1234/v1 answers /v1/models quickly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..assets.service import configure as configure_assets
from ..core.config import Settings
from ..core.jobs import ActivityRecorder
from ..core.pipeline import Analyzer, SpecInterpreter
from .accounting import CallRecorder
from .analysis import SentimentAnalyzer
from .chain import (
    SHARED_COOLDOWNS,
    AllProvidersFailed,
    ChainResult,
    CooldownBook,
    ProviderChain,
    RetryPolicy,
    StructuredTask,
)
from .client import LM_STUDIO_DEFAULT_URL, Completion, ProviderClient, probe_models
from .errors import ErrorKind, InvalidOutput, ProviderError
from .intent import Intent, IntentClassifier
from .offline import OfflineInterpreter, offline_sentiment
from .profiles import LMSTUDIO, OPENAI, ROUTELLM
from .spec_interpreter import LLMSpecInterpreter

log = logging.getLogger(__name__)

__all__ = [
    "AllProvidersFailed", "ChainResult", "Completion", "CooldownBook", "ErrorKind", "Intent", "IntentClassifier",
    "InvalidOutput", "LLMSpecInterpreter", "OfflineInterpreter", "ProviderChain", "ProviderClient", "ProviderError",
    "RetryPolicy", "SentimentAnalyzer", "StructuredTask", "build_analyzer", "build_chain", "build_clients",
    "build_intent_classifier", "build_interpreter", "offline_sentiment",
]

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
ROUTELLM_DEFAULT_URL = "https://routellm.abacus.ai/v1"
LM_STUDIO_PROBE_TIMEOUT_S = 0.3


def build_clients(settings: Settings, *, order: Sequence[str] | None = None) -> list[ProviderClient]:
    """The configured providers in order (names after "offline" are ignored: offline is last)."""
    clients: list[ProviderClient] = []
    for name in order if order is not None else settings.providers:
        if name == "offline":
            break
        if name == "routellm":
            if settings.abacus_api_key:
                clients.append(ProviderClient(ROUTELLM, base_url=settings.routellm_base_url or ROUTELLM_DEFAULT_URL,
                                              api_key=settings.abacus_api_key, model=settings.routellm_model))
        elif name == "openai":
            if settings.openai_api_key:
                clients.append(ProviderClient(OPENAI, base_url=settings.openai_base_url or OPENAI_DEFAULT_URL,
                                              api_key=settings.openai_api_key, model=settings.openai_model))
        elif name == "lmstudio":
            if settings.lm_studio_base_url:
                clients.append(ProviderClient(LMSTUDIO, base_url=settings.lm_studio_base_url,
                                              model=settings.lm_studio_model))
            else:
                models = probe_models(LM_STUDIO_DEFAULT_URL, timeout_s=LM_STUDIO_PROBE_TIMEOUT_S)
                if models:
                    # No model named: the client picks a loaded chat model on first use
                    # (/v1/models lists embedding models too, in no useful order).
                    clients.append(ProviderClient(LMSTUDIO, base_url=LM_STUDIO_DEFAULT_URL,
                                                  model=settings.lm_studio_model))
        else:
            log.warning("unknown provider %r in the provider order; known: routellm, openai, lmstudio, offline",
                        name)
    return clients


def build_chain(settings: Settings, *, store: ActivityRecorder | None = None, order: Sequence[str] | None = None,
                policy: RetryPolicy | None = None, cooldowns: CooldownBook | None = None) -> ProviderChain:
    """A chain over the configured providers; empty (falsy) when none is configured."""
    return ProviderChain(build_clients(settings, order=order), recorder=CallRecorder(store), policy=policy,
                         cooldowns=cooldowns if cooldowns is not None else SHARED_COOLDOWNS)


def build_interpreter(settings: Settings, *, store: ActivityRecorder | None = None,
                      order: Sequence[str] | None = None) -> SpecInterpreter:
    """LLM scene interpretation with the offline interpreter as the last link."""
    chain = build_chain(settings, store=store, order=order)
    log.info("scene interpreter chain: %s", " -> ".join([*chain.labels, "offline"]))
    configure_assets(settings=settings)  # the asset libraries these settings name (docs/ASSETS.md)
    return LLMSpecInterpreter(chain, OfflineInterpreter())


def build_analyzer(settings: Settings, *, store: ActivityRecorder | None = None,
                   order: Sequence[str] | None = None) -> Analyzer:
    """Sentiment analysis: LLM when configured, VADER otherwise or on failure."""
    chain = build_chain(settings, store=store, order=order)
    return SentimentAnalyzer(chain if chain else None)


def build_intent_classifier(settings: Settings, *, store: ActivityRecorder | None = None,
                            order: Sequence[str] | None = None) -> IntentClassifier:
    """Message intent: LLM when configured, the offline classifier otherwise or on failure."""
    chain = build_chain(settings, store=store, order=order)
    return IntentClassifier(chain if chain else None)
