"""Helpers for tests that watch other threads and processes over loopback: one polling loop,
one free-port finder and one GET, instead of a copy of each per file."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], Any], timeout: float, what: str, *, every: float = 0.1,
               ignoring: tuple[type[BaseException], ...] = ()) -> Any:
    """The first truthy value `condition()` returns within `timeout` seconds (an exception in
    `ignoring` counts as not yet); AssertionError naming `what` when none came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except ignoring:
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> tuple[int, bytes]:
    """(status, body) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback only)
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
