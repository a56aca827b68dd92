"""Secrets (tokens, keys, passwords) kept outside the .blend and userpref files.

Blender saves add-on preferences into userpref.blend, which people copy between machines
and attach to bug reports, so secrets never live there: the preference properties for
secrets have get/set callbacks (Blender stores nothing for those) that read and write a
user-only (0600) JSON file in Blender's user config folder. The environment still wins
(core.config precedence), which is how farm nodes get their tokens.

This module does not import bpy at import time, so the file handling is testable alone.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from ..files import replace_atomically

log = logging.getLogger(__name__)

SECRETS_FILENAME = "slack_ai_addon_secrets.json"


class SecretStore:
    """A small JSON file of secret settings, written atomically with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._cache: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._cache is None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._cache = {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
            except FileNotFoundError:
                self._cache = {}
            except (OSError, ValueError) as exc:
                # Never echo the file content: it is full of secrets.
                log.warning("secrets file %s unreadable (%s); starting empty", self.path, type(exc).__name__)
                self._cache = {}
        return self._cache

    def get(self, name: str) -> str:
        with self._lock:
            return self._load().get(name, "")

    def all(self) -> dict[str, str]:
        with self._lock:
            return dict(self._load())

    def set(self, name: str, value: str) -> None:
        with self._lock:
            data = self._load()
            if data.get(name, "") == value:
                return
            if value:
                data[name] = value
            else:
                data.pop(name, None)
            self._write(data)

    def _write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Create the temp file 0600 from the start (mkstemp does), then rename over the
        # old file, so no moment exists where the secrets are world-readable or half written.
        replace_atomically(self.path, json.dumps(data, indent=1, sort_keys=True), mode=0o600)


def default_secrets_path() -> Path:
    """`<Blender user config>/slack_ai_addon_secrets.json`; SLACK_AI_SECRETS_FILE overrides."""
    env = os.environ.get("SLACK_AI_SECRETS_FILE")
    if env:
        return Path(env)
    import bpy  # the config folder is Blender's to tell

    return Path(bpy.utils.user_resource("CONFIG")) / SECRETS_FILENAME


_store: SecretStore | None = None


def secret_store() -> SecretStore:
    """The process-wide store (created on first use, after Blender's paths are known)."""
    global _store
    path = default_secrets_path()
    if _store is None or _store.path != path:
        _store = SecretStore(path)
    return _store


def reset_secret_store() -> None:
    """Forget the cached store (unregister, tests that move the config folder)."""
    global _store
    _store = None
