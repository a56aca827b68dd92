"""Render progress on stderr for the command-line tools (stdout stays for results and --json).

Blender's own per-frame prints go to `<output>/blender.log` meanwhile (see
`slack_ai_addon.blender.headless.set_blender_log`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO


class ProgressPrinter:
    """A JobListener: one line per stage, frame counts for animations (overwritten in place
    on a terminal, at most every few seconds otherwise)."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 3.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s
        self._last = float("-inf")  # the first frame always prints (monotonic time may be small)
        self._stage = ""
        self._open_line = False

    def _write(self, text: str, *, final: bool = True) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
            self._open_line = not final
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def on_job_event(self, event: Any) -> None:
        p = event.progress
        if event.kind == "started":
            self._write(f"rendering job {event.job.id} ...")
        elif event.kind == "progress" and p is not None:
            now = time.monotonic()
            if p.stage == "rendering" and p.frames > 1:
                if self.tty or now - self._last >= self.every_s or p.frame == p.frames:
                    self._last = now
                    eta = f", about {p.eta_s:.0f}s left" if p.eta_s and p.frame < p.frames else ""
                    self._write(f"  frame {p.frame}/{p.frames}  {p.elapsed_s:.1f}s{eta}", final=not self.tty)
            elif p.stage != self._stage and p.stage in ("encoding",):
                self._write(f"  {p.stage} ...")
            self._stage = p.stage
        elif event.kind in ("done", "failed", "cancelled") and self._open_line:
            self.stream.write("\n")
            self._open_line = False


def log_blender_output(output_dir: Path) -> Path:
    """Blender's render prints go to this file from now on; returns its path."""
    from ..blender import headless

    path = output_dir / "blender.log"
    headless.set_blender_log(path)
    return path
