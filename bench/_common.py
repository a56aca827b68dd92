"""What the bench scripts share: their section of docs/BENCHMARKS.md and the summary line.

Each script writes its own `## ...` section (replacing the old one, keeping the others) and,
at the end, prints one `BENCH_SUMMARY {json}` line: the headline figures that
`bench/run_all.py` (`./scripts/bench`) collects into the summary table at the top of the
file.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_PREFIX = "BENCH_SUMMARY "


def benchmarks_md() -> Path:
    """docs/BENCHMARKS.md, or the file named by SLACK_AI_BENCHMARKS_MD (tests write a temp copy)."""
    return Path(os.environ.get("SLACK_AI_BENCHMARKS_MD") or ROOT / "docs" / "BENCHMARKS.md")


def write_section(section: str, text: str) -> None:
    """Replace the `section` heading's part of BENCHMARKS.md with `text` (appended if missing)."""
    path = benchmarks_md()
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text(encoding="utf-8") if path.exists() else ""  # re-read just before writing
    start = old.find(section + "\n")
    if start >= 0:
        end = old.find("\n## ", start + len(section))
        new = old[:start] + text.rstrip("\n") + "\n" + (old[end:] if end >= 0 else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    path.write_text(new, encoding="utf-8")


def emit_summary(bench: str, rows: Iterable[Sequence[object]]) -> None:
    """One machine-readable line: rows of (measure, result, target, met) for run_all.py.

    `met` is True/False, or None where there is no target.
    """
    data = {"bench": bench, "rows": [[str(r[0]), str(r[1]), str(r[2]) if len(r) > 2 else "",
                                      r[3] if len(r) > 3 else None] for r in rows]}
    print(SUMMARY_PREFIX + json.dumps(data), flush=True)


def median_spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """'median (min-max, n=N)' for a few runs."""
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))}, n={len(values)})"


def load_average() -> float:
    return os.getloadavg()[0]
