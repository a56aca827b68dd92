"""What a message asks for: render, edit, analyze, help, status or chitchat.

Used for mentions and thread replies, where there is no slash command to say it. This is
the agent's one classifier, with two strategies: the LLM strategy here (a one-field schema
and a short deadline) and the offline keyword strategy (`offline/intent.py`), which answers
when no provider is configured or all of them fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..core.scene_spec import make_strict_schema
from .chain import AllProvidersFailed, ProviderChain, StructuredTask
from .offline.intent import offline_intent
from .structured import model_parser

log = logging.getLogger(__name__)

IntentKind = Literal["render", "edit", "analyze", "help", "status", "chitchat"]
INTENT_KINDS: tuple[str, ...] = ("render", "edit", "analyze", "help", "status", "chitchat")
INTENT_DEADLINE_S = 8.0  # a mention waits on this before anything visible happens


@dataclass
class Intent:
    kind: str  # one of INTENT_KINDS
    provider: str = "offline"


class _IntentAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: IntentKind


INTENT_SCHEMA = make_strict_schema(_IntentAnswer.model_json_schema())

SYSTEM_PROMPT = """Classify a chat message sent to a Blender rendering bot. Answer {"kind": ...}:
render: asks for a new image or animation of a scene; edit: changes an earlier render
("make it blue", "higher quality", "add a sphere"); analyze: asks for the sentiment or tone of a text;
help: asks what the bot can do; status: asks about queued or running jobs; chitchat: anything else."""

def _as_kind(value: Any) -> str:
    kind = value if isinstance(value, str) else getattr(value, "kind", "chitchat")
    kind = str(getattr(kind, "value", kind))
    return kind if kind in INTENT_KINDS else "chitchat"


class IntentClassifier:
    """classify(text) -> Intent: the LLM strategy first when a chain is configured, then the offline one."""

    def __init__(self, chain: ProviderChain | None = None, *, offline: Callable[[str], Any] | None = None,
                 deadline_s: float = INTENT_DEADLINE_S) -> None:
        self.chain = chain
        self.offline: Callable[[str], Any] = offline or offline_intent
        self.deadline_s = deadline_s

    def classify(self, text: str, *, correlation_id: str = "") -> Intent:
        """The intent of one message; never raises for provider failures."""
        if self.chain:
            intent = llm_intent(self.chain, text, correlation_id=correlation_id, deadline_s=self.deadline_s)
            if intent is not None:
                return intent
        return Intent(kind=_as_kind(self.offline(text)), provider="offline")


def llm_intent(chain: ProviderChain, text: str, *, correlation_id: str = "",
               deadline_s: float = INTENT_DEADLINE_S) -> Intent | None:
    """The LLM strategy: the chain's answer, or None when every provider failed."""
    task = StructuredTask(task="intent", parse=model_parser(_IntentAnswer), schema=INTENT_SCHEMA,
                          schema_name="intent", max_tokens=20, temperature=0.0, repair=False,
                          messages=[{"role": "system", "content": SYSTEM_PROMPT},
                                    {"role": "user", "content": text[:2000]}])
    try:
        answer = chain.run(task, correlation_id=correlation_id, deadline_s=deadline_s)
    except AllProvidersFailed as failed:
        log.info("intent: LLMs failed, using offline", extra={"correlation_id": correlation_id,
                                                              "failures": str(failed)})
        return None
    return Intent(kind=answer.value.kind, provider=answer.provider_tag)
