"""The packaging tests download wheels with pip: the one external thing they may lack.

A failed download skips only when no package index pip is configured with answers (the skip
reason names them); with an index reachable, a failure is ours and the test fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

DEFAULT_INDEX = "https://pypi.org/simple/"


def package_indexes() -> list[str]:
    """pip's index, extra indexes and find-links, as `pip config list` and PIP_* see them."""
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                          timeout=60)
    settings: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        settings[key.split(".", 1)[-1]] = value.strip().strip("'\"")
    for name in ("index-url", "extra-index-url", "find-links", "no-index"):
        env = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if env:
            settings[name] = env
    found: list[str] = []
    if settings.get("no-index", "").lower() not in ("1", "true", "yes", "on"):
        found = [settings.get("index-url") or DEFAULT_INDEX, *settings.get("extra-index-url", "").split()]
    return found + settings.get("find-links", "").split()


def _answers(location: str) -> bool:
    parts = urlsplit(location)
    if parts.scheme in ("http", "https"):
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname or "", port), timeout=5):
                return True
        except OSError:
            return False
    path = Path(parts.path if parts.scheme == "file" else location)
    return path.is_dir() and any(path.iterdir())


def fail_unless_offline(what: str, proc: subprocess.CompletedProcess[str]) -> NoReturn:
    """`what` (a pip download) failed: skip when no index answers, else fail with pip's words."""
    indexes = package_indexes()
    reachable = [i for i in indexes if _answers(i)]
    if not reachable:
        pytest.skip(f"{what}: no package index answers ({', '.join(indexes) or 'none configured'}), "
                    "and no wheels are cached")
    pytest.fail(f"{what} failed although {', '.join(reachable)} answers:\n{proc.stderr[-3000:]}")
