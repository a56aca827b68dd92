"""Request words to assets: names, tags and catalog words, case-insensitive, multiword,
singular or plural; a ranked search for listings and LLM prompts; closest names for a miss.

Plain Python over an index snapshot: the interpreter runs this on whatever thread it runs on.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .index import AssetEntry

MAX_SPAN = 5  # words in one asset phrase
PLACEABLE = ("object", "collection")
_WORD = re.compile(r"[a-z0-9]+")
_IRREGULAR = {"children": "child", "people": "person", "men": "man", "women": "woman", "feet": "foot",
              "teeth": "tooth", "mice": "mouse", "geese": "goose", "leaves": "leaf", "knives": "knife",
              "shelves": "shelf", "wolves": "wolf", "lives": "life", "cacti": "cactus", "fungi": "fungus"}
_KEEP_S = ("ss", "us", "is", "os", "as")


def singular(word: str) -> str:
    """A plural English noun's singular, by the common rules ("barrels", "boxes", "skies")."""
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 3 or not w.endswith("s") or w.endswith(_KEEP_S):
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("ches", "shes", "xes", "zes", "sses")):
        return w[:-2]
    if w.endswith("oes") and len(w) > 4:
        return w[:-2]
    return w[:-1]


def words_of(text: str) -> list[str]:
    """Lower-case words of a name, tag or catalog path, each made singular."""
    return [singular(w) for w in _WORD.findall(text.lower())]


@dataclass(frozen=True)
class AssetHit:
    """One asset phrase found in a request: the asset, where the phrase ends, whether plural."""

    entry: AssetEntry
    start: int
    end: int
    plural: bool
    score: float


@dataclass
class _Vocab:
    entry: AssetEntry
    name: tuple[str, ...]
    name_words: frozenset[str]
    tag_phrases: frozenset[tuple[str, ...]]
    words: frozenset[str]  # name, tag and catalog words


class AssetMatcher:
    """Matching over one snapshot of the index."""

    def __init__(self, entries: Iterable[AssetEntry]) -> None:
        self.entries = sorted(entries, key=lambda e: (e.name.lower(), e.type, e.library))
        self._vocab: list[_Vocab] = []
        # word -> the assets whose vocabulary has it: every phrase that scores needs all its
        # words in the asset's vocabulary, so its first word picks the only candidates.
        self._by_word: dict[str, list[_Vocab]] = {}
        for e in self.entries:
            name = tuple(words_of(e.name))
            if not name:
                continue
            tags = frozenset(tuple(words_of(t)) for t in e.tags if words_of(t))
            catalog = frozenset(words_of(e.catalog))
            tag_words = frozenset(w for t in tags for w in t)
            vocab = _Vocab(e, name, frozenset(name), tags, frozenset(name) | tag_words | catalog)
            self._vocab.append(vocab)
            for word in vocab.words:
                self._by_word.setdefault(word, []).append(vocab)

    def __bool__(self) -> bool:
        return bool(self._vocab)

    # ---------------------------------------------------------------- in a request
    def match_at(self, words: Sequence[str], i: int, *, types: Sequence[str] | None = None,
                 usable: Callable[[int], bool] = lambda _k: True,
                 reserved: Callable[[str], bool] = lambda _w: False) -> AssetHit | None:
        """The best asset phrase starting at word `i` of `words` (lower case), or None.

        A phrase is the asset's whole name ("hero lamp", "oak barrels"), a tag, or several
        words all from its name, tags and catalog with at least one name word ("dusk sky"
        for "Dusk" tagged sky). One word alone matches only as the whole name, a whole tag or
        the name's last word ("barrels"), and never when `reserved` says the request grammar
        owns it (a shape or colour word). `usable(k)` says whether word k may be read.
        """
        best: AssetHit | None = None
        candidates = self._by_word.get(singular(words[i]), []) if 0 <= i < len(words) else []
        if not candidates:
            return None
        for n in range(min(MAX_SPAN, len(words) - i), 0, -1):
            if not all(usable(k) for k in range(i, i + n)):
                continue
            raw = [w.lower() for w in words[i:i + n]]
            span = tuple(singular(w) for w in raw)
            plural = raw[-1] != span[-1]
            for v in candidates:
                if types and v.entry.type not in types:
                    continue
                score = self._score(v, span, reserved)
                if score and (best is None or score > best.score):
                    best = AssetHit(v.entry, i, i + n, plural, score)
            if best is not None:
                # A partial phrase followed by a word nobody knows is part of a longer name
                # ("hero chair" is not "Hero Lamp" tagged hero): no match, so the closest
                # names are offered instead.
                after = i + n
                if best.score < 100 and after < len(words) and usable(after) and not reserved(words[after]):
                    return None
                return best  # the longest phrase wins over any shorter one
        return best

    @staticmethod
    def _score(v: _Vocab, span: tuple[str, ...], reserved: Callable[[str], bool]) -> float:
        n = len(span)
        if n == 1 and reserved(span[0]):
            return 0.0
        if span == v.name:
            return 100.0 + n
        if span in v.tag_phrases and (n > 1 or not reserved(span[0])):
            return 60.0 + n
        if n == 1:
            word = span[0]
            if word == v.name[-1] and not reserved(word):
                return 20.0
            return 0.0
        if all(w in v.words for w in span) and any(w in v.name_words for w in span):
            return 40.0 + n + sum(1 for w in span if w in v.name_words)
        return 0.0

    # ---------------------------------------------------------------- listings and prompts
    def search(self, query: str, *, limit: int = 20, types: Sequence[str] | None = None) -> list[AssetEntry]:
        """Assets ranked for a free-text query (all, by name, for an empty one)."""
        pool = [v for v in self._vocab if not types or v.entry.type in types]
        qwords = [w for w in words_of(query) if w]
        if not qwords:
            return [v.entry for v in pool][:limit]
        q = " ".join(qwords)
        scored: list[tuple[float, str, AssetEntry]] = []
        for v in pool:
            desc = set(words_of(v.entry.description))
            score = 0.0
            for w in qwords:
                if w in v.name_words:
                    score += 3
                elif any(w in t for t in v.tag_phrases):
                    score += 2
                elif w in v.words:
                    score += 1
                elif w in desc:
                    score += 0.5
            ratio = difflib.SequenceMatcher(None, q, " ".join(v.name)).ratio()
            if ratio >= 0.6:
                score += 2 * ratio
            if score > 0:
                scored.append((-score, v.entry.name.lower(), v.entry))
        scored.sort(key=lambda t: (t[0], t[1]))
        return [e for _s, _n, e in scored[:limit]]

    def closest_names(self, phrase: str, *, n: int = 3, types: Sequence[str] | None = None) -> list[str]:
        """Names of the assets nearest to a phrase that matched none: difflib's similarity of
        the whole phrase, or shared words (so "hero chair" finds "Hero Lamp")."""
        pool = [v for v in self._vocab if not types or v.entry.type in types]
        target = " ".join(words_of(phrase))
        if not target or not pool:
            return []
        twords = set(target.split())
        ranked: list[tuple[float, str]] = []
        for v in pool:
            ratio = difflib.SequenceMatcher(None, target, " ".join(v.name)).ratio()
            shared = len(twords & v.words) / max(1, len(twords))
            score = max(ratio, 0.5 + 0.5 * shared if shared else 0.0)
            if score >= 0.55:
                ranked.append((-score, v.entry.name))
        ranked.sort()
        out: list[str] = []
        for _s, name in ranked:
            if name not in out:
                out.append(name)
        return out[:n]

    def candidates_for_prompt(self, text: str, *, limit: int = 12) -> list[AssetEntry]:
        """The bounded list an LLM sees for a request: the best matches for its words only."""
        return self.search(text, limit=limit)
