"""Polling for tests that watch other threads and processes: one loop instead of a copy per file."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], Any], timeout: float, what: str, *, every: float = 0.1) -> Any:
    """The first truthy value `condition()` returns within `timeout` seconds; AssertionError
    naming `what` when none came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
