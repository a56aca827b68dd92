"""The studio's own Blender asset libraries: where they are, what is in them, and matching
request words against them. No bpy here (reading a .blend is `blender/asset_reader.py`, linking
one into a job's scene is `blender/builder.py`); docs/ASSETS.md says what is indexed and why.

- `catalog`: `blender_assets.cats.txt` (catalog UUID -> path).
- `index`: the library folders, the per-file index cached as JSON and refreshed by mtime.
- `match`: request words to assets (names, tags, catalog words; singular or plural), the
  bounded candidate list for an LLM, and the closest names for an unknown one.
- `service`: the process's current index (the interpreter, the builder and Slack share it).
- `contact_sheet`: the `/blender assets` picture.
"""

from __future__ import annotations

from .index import AssetEntry, AssetIndex, Library, library_roots
from .match import AssetMatcher

__all__ = ["AssetEntry", "AssetIndex", "AssetMatcher", "Library", "library_roots"]
