"""The offline provider: the embedded stand-in for an LLM, with no network and no model.

- `OfflineInterpreter`: natural language to a `SceneSpec` with a deterministic grammar
  (`tokens` -> `parse` passes -> `objects` -> `layout`; `edit` for follow-ups of a spec).
- `offline_intent(text)`: the keyword strategy of the agent's `IntentClassifier`.
- `offline_sentiment(text)`: VADER sentiment for `/analyze`.

Each is the last link of its provider chain and the default on a machine with no accounts.
"""

from __future__ import annotations

from .intent import keyword_intent, offline_intent
from .interpreter import OfflineInterpreter
from .sentiment import offline_sentiment

__all__ = ["OfflineInterpreter", "keyword_intent", "offline_intent", "offline_sentiment"]
