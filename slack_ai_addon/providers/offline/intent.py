"""The offline intent strategy: a message to render, edit, analyze, help, status or chitchat by keywords.

The agent's one `IntentClassifier` (providers/intent.py) asks the LLMs first when one is
configured and falls back to `offline_intent`; `keyword_intent` is the same function under the
name the agent uses for its own last resort.
"""

from __future__ import annotations

import re

from ...core.jobs import MAX_REQUEST_CHARS
from .vocab import (
    SHAPE_WORDS,
)

_ANALYZE_RE = re.compile(r"\b(analy[sz]e|analysis|sentiment|how does (this|that|it) sound|what tone|tone of|"
                         r"the tone|mood of|emotion|feel(ing)? about|is (this|that|it) (positive|negative)|"
                         r"positive or negative|classify)\b")
_HELP_RE = re.compile(r"^\W*(help|usage|commands|examples?|\?+)\W*$|\b(what can you do|how do i|how to use|"
                      r"what do you do|how does this work|what are the commands|show me (the )?commands|"
                      r"help me|can you help)\b")
_STATUS_RE = re.compile(r"\b(status|queue|queued|what are you doing|are you (busy|up|alive|there|running|online)|"
                        r"uptime|ping|my jobs|list jobs|jobs|progress|how long|still working|is it done|eta)\b")
_EDIT_START_RE = re.compile(r"^\W*(?:(?:now|then|please|ok|okay|and|also|can you|could you|pls)\W+)*"
                            r"(make|turn|change|paint|color|colour|add|remove|delete|use|switch|set|increase|"
                            r"decrease|bigger|smaller|larger|higher|lower|more|less|stop|again|redo|rerender|"
                            r"re-render|same|instead|swap|replace|move|rotate it|spin it|zoom|without)\b")
_RENDER_RE = re.compile(r"\b(render|draw|show me|create|generate|paint|model|build|make|give me|i want|"
                        r"picture of|image of|scene)\b")
_CHITCHAT_RE = re.compile(r"^\W*(hi|hello|hey|thanks|thank you|thx|cool|nice|great|good (morning|night|evening)|"
                          r"bye|lol|ok|okay|yo|sup)\W*$")


def _mentions_shape(text: str) -> bool:
    words = re.findall(r"[a-z]+", text)
    if any(w in ("text", "word") for w in words) and ('"' in text or "\u201c" in text):
        return True
    for n in (3, 2, 1):
        for k in range(len(words) - n + 1):
            if tuple(words[k:k + n]) in SHAPE_WORDS:
                return True
    return False


def offline_intent(text: str) -> str:
    """Classify a message by keywords: render, edit, analyze, help, status or chitchat."""
    low = " ".join((text or "").lower().split())[:MAX_REQUEST_CHARS]
    if not low or _CHITCHAT_RE.match(low):
        return "chitchat"
    if _ANALYZE_RE.search(low):
        return "analyze"
    shape = _mentions_shape(low)
    if _HELP_RE.search(low) and not (shape and _RENDER_RE.search(low)):
        return "help"
    edit_start = _EDIT_START_RE.match(low)
    if edit_start:
        rest = low[edit_start.end():]
        # "make a red cube" asks for a new scene; "make it blue" / "make the cube red" edit one.
        if not (edit_start.group(1) in ("make", "paint", "model") and re.match(r"\W*(an?|\d+|one|two|three|four|"
                                                                               r"five|six|some|several)\b", rest)):
            return "edit"
    if shape or _RENDER_RE.search(low) and re.search(r"\b(floor|sky|background|scene|lighting)\b", low):
        return "render"
    if _STATUS_RE.search(low):
        return "status"
    if re.match(r"^\W*(it|them|everything)\b", low) or re.search(r"\b(bigger|smaller|higher quality|4k|"
                                                                r"in eevee|with cycles)\b", low):
        return "edit"
    if _RENDER_RE.search(low):
        return "render"
    return "chitchat"


keyword_intent = offline_intent
