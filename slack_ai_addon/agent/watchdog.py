"""Liveness watchdog for the websocket_client Socket Mode backend.

That backend runs `run_forever(ping_interval=...)` without `ping_timeout`, so a half-open
connection (the peer silently stopped answering) is never noticed: `is_connected()` stays
True and no envelope arrives again (docs/SLACK_RULES.md, "Socket Mode connections"). This
thread watches the time of the last sign of life (an inbound frame, or a pong to the
client's pings) and forces a new connection when it is older than `stale_after_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class ConnectionWatchdog:
    """Calls `reconnect()` when `last_alive()` is older than `stale_after_s`.

    `last_alive` returns a `time.time()` stamp (0 when unknown); `connected` says whether a
    connection is supposed to be up (no point judging a connection that is being made).
    """

    def __init__(self, *, last_alive: Callable[[], float], reconnect: Callable[[], None],
                 stale_after_s: float = 15.0, check_every_s: float = 1.0,
                 min_gap_s: float | None = None) -> None:
        self.last_alive = last_alive
        self.reconnect = reconnect
        self.stale_after_s = stale_after_s
        self.check_every_s = check_every_s
        # After forcing a reconnect, give the new connection a full window before judging it.
        self.min_gap_s = stale_after_s if min_gap_s is None else min_gap_s
        self.forced = 0
        self._last_forced = 0.0
        self._stop = threading.Event()
        # Daemon: must never keep a quitting Blender alive.
        self._thread = threading.Thread(target=self._run, name="slackai-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def check(self, now: float | None = None) -> bool:
        """One check; True when it forced a reconnect."""
        now = time.time() if now is None else now
        alive = max(self.last_alive(), self._last_forced)
        if alive <= 0 or now - alive < self.stale_after_s or now - self._last_forced < self.min_gap_s:
            return False
        log.warning("Socket Mode connection silent for %.1fs; forcing a new connection", now - alive)
        self._last_forced = now
        self.forced += 1
        self.reconnect()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.check_every_s):
            try:
                self.check()
            except BaseException:  # a dead watchdog would leave a half-open link forever
                log.exception("watchdog check failed")
