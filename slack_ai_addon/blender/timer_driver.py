"""The GUI driver of the dispatcher: one persistent `bpy.app.timers` callback.

It follows Blender's rules for timers (docs/BLENDER_RULES.md, "Timers"): registered once
(an `is_registered` check, since a second registration of the same function would double
the work), persistent so it survives loading a file, never raises (an exception unregisters
it silently) and always returns a float (None unregisters it). Work is done in "pumps": callables that take
a time budget, run on the main thread and return whether they did something. The budget
is 0.9 x the interval (Flamenco's habit) so the UI gets the rest of the tick.

Timers never fire in background mode (`blender -b`, the bpy module); there the headless
runner loops over the same `Dispatcher.drain`. Tests call `tick()` directly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

BUSY_INTERVAL_S = 0.1  # while jobs are in flight: responsive progress, quick claim
IDLE_INTERVAL_S = 0.5  # nothing to do: cheap polling of the job store
BUDGET_FRACTION = 0.9
ERROR_LOG_EVERY_S = 30.0  # a failing pump logs its traceback at most this often

Pump = Callable[[float], object]  # budget_s -> truthy when it did work

_pumps: dict[str, Pump] = {}
_interval = IDLE_INTERVAL_S
_last_error_log: dict[str, float] = {}
stats = {"ticks": 0, "errors": 0}


def add_pump(name: str, pump: Pump) -> None:
    """Add (or replace) a pump; pumps run in insertion order on every tick."""
    _pumps[name] = pump


def remove_pump(name: str) -> None:
    _pumps.pop(name, None)


def pumps() -> list[str]:
    return list(_pumps)


def tick() -> float:
    """The timer callback. Never raises; always returns the next interval in seconds."""
    global _interval
    try:
        stats["ticks"] += 1
        budget = BUDGET_FRACTION * _interval
        deadline = time.monotonic() + budget
        busy = False
        for name, pump in list(_pumps.items()):
            remaining = max(0.0, deadline - time.monotonic())
            try:
                if pump(remaining):
                    busy = True
            except BaseException as exc:  # noqa: BLE001 - one broken pump must not stop the others
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    # Blender turns these into a quit; a timer is the wrong place for that.
                    log.warning("pump %s raised %s; ignored", name, type(exc).__name__)
                stats["errors"] += 1
                now = time.monotonic()
                if now - _last_error_log.get(name, -ERROR_LOG_EVERY_S) >= ERROR_LOG_EVERY_S:
                    _last_error_log[name] = now
                    log.exception("pump %s failed; it will be retried", name)
        _interval = BUSY_INTERVAL_S if busy else IDLE_INTERVAL_S
        return float(_interval)
    except BaseException:  # noqa: BLE001 - the last guard: a raising timer is unregistered for good
        return float(IDLE_INTERVAL_S)


def is_running() -> bool:
    import bpy

    return bool(bpy.app.timers.is_registered(tick))


def start(first_interval: float = 0.0) -> None:
    """Register the timer once (a second call is a no-op)."""
    import bpy

    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=first_interval, persistent=True)
        log.debug("drain timer registered")


def stop() -> None:
    """Unregister the timer and forget every pump (add-on unregister)."""
    import bpy

    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    _pumps.clear()
    _last_error_log.clear()
