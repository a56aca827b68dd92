"""The process's current asset index, shared by the interpreter, the builder and Slack.

`configure()` picks the libraries (settings plus Blender's own, which only Blender-side code
can read and pass in); `current_index()` configures from the environment and TOML on first
use. Reading (`entries`, `current_matcher`) works on any thread; refreshing reads .blend
files with bpy and belongs on Blender's main thread (`blender/asset_reader.refresh_assets`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from ..core.config import ConfigError, Settings, load_settings, user_data_dir
from ..core.scene_spec import SceneSpec
from .index import AssetIndex, library_roots
from .match import AssetMatcher

log = logging.getLogger(__name__)

_lock = threading.Lock()
_index: AssetIndex | None = None
_matcher: tuple[int, AssetMatcher] | None = None
_configured: tuple[str, tuple[tuple[str, str], ...], Path | None] | None = None  # folders, Blender's, cache


def default_cache_path() -> Path:
    return user_data_dir() / "assets" / "index.json"


def configure(settings: Settings | None = None, *, folders: str | None = None,
              blender_libraries: Iterable[tuple[str, str]] = (), cache_path: Path | None = None) -> AssetIndex:
    """Make (and return) the current index for these libraries; the cache is loaded, not refreshed."""
    global _index, _matcher, _configured
    configured = folders if folders is not None else (settings.asset_libraries if settings else "")
    blender = tuple((str(n), str(p)) for n, p in blender_libraries)
    index = AssetIndex(library_roots(configured, blender), cache_path or default_cache_path())
    with _lock:
        _index, _matcher, _configured = index, None, (configured, blender, cache_path)
    if index.libraries:
        log.info("asset libraries: %s", ", ".join(f"{lib.name} ({lib.root})" for lib in index.libraries))
    return index


def current_index() -> AssetIndex:
    """The current index; configured from the environment and config file on first use."""
    with _lock:
        index = _index
    if index is not None:
        return index
    try:
        settings = load_settings()
    except ConfigError as exc:
        log.warning("asset libraries not configured: %s", exc)
        settings = Settings()
    return configure(settings)


def use_blender_libraries(blender_libraries: Iterable[tuple[str, str]]) -> AssetIndex:
    """The current index with Blender's own libraries (which only Blender-side code can read)
    added to the configured folders; rebuilt only when they changed."""
    index = current_index()
    blender = tuple((str(n), str(p)) for n, p in blender_libraries)
    with _lock:
        configured = _configured
    if configured is None or configured[1] == blender:
        return index
    return configure(folders=configured[0], blender_libraries=blender, cache_path=configured[2])


def current_matcher() -> AssetMatcher:
    """A matcher over the current index's snapshot (rebuilt only when the index changed)."""
    global _matcher
    index = current_index()
    with _lock:
        cached = _matcher
    if cached is not None and cached[0] == index.version:
        return cached[1]
    matcher = AssetMatcher(index.entries())
    with _lock:
        _matcher = (index.version, matcher)
    return matcher


def reset() -> None:
    """Forget the current index (tests; a settings change)."""
    global _index, _matcher, _configured
    with _lock:
        _index, _matcher, _configured = None, None, None


def asset_requirement_tags(spec: SceneSpec) -> list[str]:
    """Capability tags a node needs to render `spec`: "assets:<library>" for each library its
    assets come from (the reference's own library, else the library the index finds the name
    in; a name the index does not know adds nothing, the build will say so)."""
    tags: list[str] = []
    index = current_index()
    for ref in spec.asset_refs():
        library = ref.library
        if not library:
            entry = index.find(ref.name, types=[ref.type.value] if ref.type else None)
            library = entry.library if entry else ""
        tag = f"assets:{library.strip().lower()}" if library and library.strip() else ""
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def asset_tags_for_text(text: str) -> list[str]:
    """Capability tags for a request not yet interpreted: "assets:<library>" for each asset
    phrase the offline grammar's matcher finds in it (the same matching the node will use).
    For routing at submit time, on the node that takes the request; empty without libraries."""
    matcher = current_matcher()
    if not matcher:
        return []
    from .match import words_of

    words = words_of(text)
    tags: list[str] = []
    i = 0
    while i < len(words):
        hit = matcher.match_at(words, i)
        if hit is None:
            i += 1
            continue
        tag = f"assets:{hit.entry.library.strip().lower()}"
        if tag not in tags:
            tags.append(tag)
        i = hit.end
    return tags
