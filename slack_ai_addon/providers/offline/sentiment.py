"""Offline sentiment for `/analyze`: VADER, no network.

Rules (VADER's own thresholds): compound >= 0.05 positive, <= -0.05 negative, else
neutral; "mixed" when both the positive and the negative share are substantial.
"""

from __future__ import annotations

import threading
from typing import Any

MIXED_SHARE = 0.15  # pos and neg shares both at least this ...
MIXED_BALANCE = 0.5  # ... and the smaller at least half the larger: "mixed"

_vader: Any = None
_vader_lock = threading.Lock()


def offline_sentiment(text: str) -> dict[str, Any]:
    """VADER sentiment: sentiment, score (compound), provider "offline", model "vader"."""
    global _vader
    with _vader_lock:
        if _vader is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            _vader = SentimentIntensityAnalyzer()
    scores = _vader.polarity_scores(text)
    compound = float(scores["compound"])
    pos, neg = float(scores["pos"]), float(scores["neg"])
    if min(pos, neg) >= MIXED_SHARE and min(pos, neg) >= MIXED_BALANCE * max(pos, neg):
        sentiment = "mixed"
    elif compound >= 0.05:
        sentiment = "positive"
    elif compound <= -0.05:
        sentiment = "negative"
    else:
        sentiment = "neutral"
    return {"sentiment": sentiment, "score": round(compound, 4), "provider": "offline", "model": "vader",
            "emotions": [], "summary": "", "key_phrases": [],
            "detail": {"pos": scores["pos"], "neg": scores["neg"], "neu": scores["neu"]}}
