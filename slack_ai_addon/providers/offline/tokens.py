"""Tokens for the offline grammar: the tokenizer, the token list passes mark as used, and the
small text helpers the messages share (clipped phrases, hints, shortened requests)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_QUOTE_RE = re.compile(r'"([^"]{0,400})"|\u201c([^\u201d]{0,400})\u201d'
                       r"|(?<![A-Za-z0-9])'([^']{1,200})'(?![A-Za-z0-9])")
_TOKEN_RE = re.compile(
    r"(?P<quote>__q\d+__)"
    r"|(?P<hex>#[0-9a-fA-F]{6})(?![0-9a-fA-F])"
    r"|(?P<res>\d{1,9}\s*[x\u00d7]\s*\d{1,9})(?![0-9])"
    r"|(?P<num>\d{1,12}(?:\.\d+)?[a-zA-Z]*)"
    r"|(?P<word>[a-zA-Z][a-zA-Z0-9]*(?:'[a-zA-Z]+)?)"
    r"|(?P<punct>[,;.!?&+:=/()])"
)
_NUM_RE = re.compile(r"^(\d+(?:\.\d+)?)([a-z]*)$")
CLAUSE_BREAKS = frozenset({",", ";", ".", "!", "?", "and", "&", "+", "then", "but", "plus", "also", "with",
                            "while", "(", ")", ":", "/"})
ARTICLES = frozenset({"a", "an", "the", "some", "another", "this", "that", "these", "those", "my", "its"})
# Shade words that also work alone, before a shape with no colour: "a dark cube" is a dark grey.
BARE_SHADES = frozenset({"dark", "light", "pale", "bright", "pastel", "deep"})


# ------------------------------------------------------------------------------ tokens

@dataclass
class Tok:
    raw: str
    low: str
    kind: str  # quote | hex | res | num | word | punct


class Tokens:
    """Tokens with a `used` mark per position; passes match phrases only over unused tokens."""

    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.used = [False] * len(toks)

    def __len__(self) -> int:
        return len(self.toks)

    def w(self, i: int) -> str:
        return self.toks[i].low if 0 <= i < len(self.toks) else ""

    def free(self, i: int) -> bool:
        return 0 <= i < len(self.toks) and not self.used[i]

    def take(self, start: int, end: int) -> None:
        for k in range(start, end):
            self.used[k] = True

    def match(self, i: int, words: tuple[str, ...]) -> int | None:
        """End index if the free tokens at i spell `words` ("*" matches any one word), else None."""
        for k, word in enumerate(words):
            j = i + k
            if not self.free(j):
                return None
            if word != "*" and self.toks[j].low != word:
                return None
        return i + len(words)

    def find(self, phrases: dict[tuple[str, ...], Any]) -> list[tuple[int, int, Any]]:
        """All non-overlapping occurrences of any phrase, longest first at each position."""
        ordered = sorted(phrases, key=len, reverse=True)
        out: list[tuple[int, int, Any]] = []
        i = 0
        while i < len(self.toks):
            for phrase in ordered:
                end = self.match(i, phrase)
                if end is not None:
                    out.append((i, end, phrases[phrase]))
                    i = end - 1
                    break
            i += 1
        return out

    def num(self, i: int) -> tuple[float, str] | None:
        """(value, suffix) of a number token at a free position."""
        if not self.free(i) or self.toks[i].kind != "num":
            return None
        m = _NUM_RE.match(self.toks[i].low)
        if not m:
            return None
        return float(m.group(1)), m.group(2)


def tokenize(text: str) -> tuple[Tokens, list[str]]:
    quotes: list[str] = []

    def keep(m: re.Match[str]) -> str:
        quotes.append(next(g for g in m.groups() if g is not None))
        return f" __q{len(quotes) - 1}__ "

    text = _QUOTE_RE.sub(keep, text)
    toks = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup or "word"
        raw = m.group(0)
        low = re.sub(r"\s+", "", raw.lower()).replace("\u00d7", "x") if kind == "res" else raw.lower()
        toks.append(Tok(raw, low, kind))
    return Tokens(toks), quotes



MAX_REPORTED_WORD = 40  # characters of one not-understood word ("x" * 10240 is one word)
MAX_HINT_CHARS = 300  # characters of the not-understood hint in a SpecError message


def clip_phrase(words: list[str], limit: int = 6) -> str:
    # A run of unknown words can be thousands long ("blah blah ..."), and so can one word
    # with no spaces: messages stay short either way.
    clipped = [w if len(w) <= MAX_REPORTED_WORD else w[:MAX_REPORTED_WORD - 1] + "\u2026" for w in words[:limit]]
    return " ".join(clipped) + (" \u2026" if len(words) > limit else "")


def hint_text(words: list[str], limit: int = 5) -> str:
    """The first not-understood phrases for an error message, at most MAX_HINT_CHARS long."""
    text = ", ".join(words[:limit])
    return text if len(text) <= MAX_HINT_CHARS else text[:MAX_HINT_CHARS - 1] + "\u2026"




def shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
