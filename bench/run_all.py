"""Run every benchmark in bench/ and write the summary table of docs/BENCHMARKS.md.

    ./scripts/bench [--quick] [--no-write] [--only NAME[,NAME]]

Each bench script runs in its own process, one after the other (they measure the machine,
so they must not overlap), on the embedded defaults (bpy from PyPI, SQLite, the fake
Slack server, the offline interpreter). Their headline figures are collected from their
output into one table, printed and written at the top of docs/BENCHMARKS.md ("## Summary")
with the machine, the date and the exact command. The full run also lets each script
rewrite its own section below the summary; `--quick` (CI: under 2 minutes) only checks
that every benchmark still runs and produces numbers, with smaller sizes and fewer runs,
and writes no per-script section. `--no-write` writes nothing.

A bench script that fails is listed with its exit status and the tail of its output; the
command exits 1 when any failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _common import SUMMARY_PREFIX, benchmarks_md, load_average  # noqa: E402

SUMMARY_SECTION = "## Summary"
Row = tuple[str, str, str, bool | None]  # measure, result, target, met (None: no target)


@dataclass
class Bench:
    name: str
    script: str
    full: list[list[str]]  # one argument list per run; several runs give a median
    quick: list[list[str]]
    parse: Callable[[list[str]], list[Row]]
    writes_section: bool = False  # takes --no-write; writes its own section on a full run
    timeout_s: float = 1800
    outputs: list[str] = field(default_factory=list)


def _floats(pattern: str, outputs: list[str]) -> list[float]:
    found = []
    for out in outputs:
        m = re.search(pattern, out)
        if m:
            found.append(float(m.group(1)))
    return found


def _med(values: list[float], unit: str, fmt: str = "{:.0f}") -> str:
    if not values:
        return "no number (see its output)"
    if len(values) == 1:
        return fmt.format(values[0]) + unit
    return (f"{fmt.format(statistics.median(values))}{unit} (median of {len(values)}, "
            f"{fmt.format(min(values))}-{fmt.format(max(values))})")


def _summary_rows(outputs: list[str]) -> list[Row]:
    rows: list[Row] = []
    for out in outputs:
        for line in out.splitlines():
            if line.startswith(SUMMARY_PREFIX):
                data = json.loads(line[len(SUMMARY_PREFIX):])
                rows.extend((r[0], r[1], r[2], r[3]) for r in data["rows"])
    return rows


def _ack_rows(label: str, p99_target: float | None) -> Callable[[list[str]], list[Row]]:
    def parse(outputs: list[str]) -> list[Row]:
        p50 = _floats(r"ack[^\n]*ms: p50=([\d.]+)", outputs)
        p99 = _floats(r"ack[^\n]*ms:[^\n]*p99=([\d.]+)", outputs)
        missing = _floats(r"missing=(\d+)", outputs)
        spf = _floats(r"render: ([\d.]+) s per frame", outputs)
        met = (statistics.median(p99) < p99_target and not any(missing)) if p99 and p99_target else None
        return [(f"ack latency, 200-command burst, {label}: p99",
                 _med(p99, " ms") + (f" (p50 {_med(p50, ' ms')})" if p50 else "")
                 + (f"; render {_med(spf, ' s/frame', '{:.3f}')}" if spf else ""),
                 f"< {p99_target:.0f} ms" if p99_target else "", met)]
    return parse


def _pipeline_rows(outputs: list[str]) -> list[Row]:
    over = _floats(r"per-job overhead \(wall minus render_s\) \| p50 \*\*([\d.]+) ms", outputs)
    proc = _floats(r"import bpy\\?\"?`? \| (\d+) ms", outputs)
    rss = [re.search(r"RSS after 10 jobs / after (\d+) \| (\d+) MB / (\d+) MB: \*\*([+-][\d.]+)%", o) for o in outputs]
    rows: list[Row] = [("per-job overhead, real dispatcher + SQLite (p50)", _med(over, " ms", "{:.1f}"), "< 50 ms",
                        bool(over) and statistics.median(over) < 50)]
    if proc and over:
        ratio = statistics.median(proc) / statistics.median(over)
        rows.append(("process per job (fresh `import bpy`) vs in-process overhead",
                     f"{statistics.median(proc):.0f} ms: {ratio:.0f}x", ">= 10x", ratio >= 10))
    for m in rss:
        if m:
            rows.append((f"RSS after 10 jobs / after {m.group(1)}", f"{m.group(2)} MB / {m.group(3)} MB "
                         f"({m.group(4)}%)", "< 5% growth", abs(float(m.group(4))) < 5))
            break
    return rows


def _db_rows(outputs: list[str]) -> list[Row]:
    claims = _floats(r"-> (\d+) claims/s", outputs)
    return [("SQLite atomic claims", _med(claims, " claims/s"), "", None)]


def _provider_rows(outputs: list[str]) -> list[Row]:
    worst = _floats(r"worst median added by the layer: ([\d.]+) ms", outputs)
    return [("provider-layer overhead (worst median added)", _med(worst, " ms", "{:.2f}"), "< 5 ms",
             bool(worst) and max(worst) < 5)]


def _farm_rows(outputs: list[str]) -> list[Row]:
    rows: list[Row] = []
    for out in outputs:
        m = re.search(r"Scheduling overhead per job \(the render-to-render gap\): "
                      r"(p50 [^:]*?ms, p95 at most \d+ ms)", out)
        if m:
            rows.append(("farm: scheduling overhead per job (render-to-render gap, 1-3 worker processes)",
                         m.group(1).replace("\u2013", "-"), "< 100 ms", "target is met" in out))
    return rows or _generic_rows("farm")(outputs)


def _assets_rows(outputs: list[str]) -> list[Row]:
    for out in outputs:
        for line in reversed(out.splitlines()):
            if line.startswith("{") and "asset_overhead_ms_median" in line:
                d = json.loads(line)
                return [("assets: index per file (cold) / added build time per asset object",
                         f"{d['index_cold_per_file_ms']} ms / {d['asset_overhead_ms_median']} ms", "", None)]
    return _generic_rows("assets")(outputs)


def _generic_rows(name: str) -> Callable[[list[str]], list[Row]]:
    def parse(outputs: list[str]) -> list[Row]:
        rows = _summary_rows(outputs)
        if rows:
            return rows
        lines = [ln for o in outputs for ln in o.splitlines()
                 if ln.strip() and not re.match(r"^\d\d:\d\d\.\d+ |Fra:|\s", ln)]
        return [(name, lines[-1][:160].replace("|", "/") if lines else "ran (no summary line)", "", None)]
    return parse


def benches() -> list[Bench]:
    known = [
        Bench("ack latency, idle", "bench_ack_process.py", [["--busy", "0"]] * 3,
              [["--busy", "0", "--commands", "200"]], _ack_rows("idle, Slack in its own process", 100)),
        Bench("ack latency, during a render", "bench_ack_process.py", [["--busy", "0.25"]] * 3,
              [["--busy", "0.25", "--commands", "200"]], _ack_rows("during a render, Slack in its own process", 100)),
        Bench("ack latency, real Cycles render", "bench_ack_process.py",
              [["--render", "blender", "--threads", "0"]] * 3, [],
              _ack_rows("during a real Cycles render, all cores", 100)),
        Bench("ack latency, real Cycles render, a core left", "bench_ack_process.py",
              [["--render", "blender", "--threads", str(max(1, _cores() - 1))]] * 3, [],
              _ack_rows(f"during a real Cycles render, {max(1, _cores() - 1)} render threads (cores - 1)", 100)),
        Bench("ack latency, in one process", "bench_ack.py", [["--busy", "0"]], [["--busy", "0", "--commands", "50"]],
              _ack_rows("idle, fake Slack in the agent's process", None)),
        Bench("pipeline", "bench_pipeline.py", [["--jobs", "200"]], [["--jobs", "20"]], _pipeline_rows,
              writes_section=True),
        Bench("database", "bench_db.py", [["--jobs", "2000", "--workers", "4"]], [["--jobs", "200", "--workers", "2"]],
              _db_rows),
        Bench("providers", "bench_providers.py", [["--n", "300"]], [["--n", "30"]], _provider_rows),
        Bench("quality", "bench_quality.py", [[]], [["--quick"]], _summary_rows, writes_section=True),
        Bench("slack", "bench_slack.py", [[]], [["--quick"]], _summary_rows, writes_section=True),
    ]
    known += [Bench("farm", "bench_farm.py", [[]], [["--quick", "--workers", "1,2"]], _farm_rows, writes_section=True),
              Bench("assets", "bench_assets.py", [[]], [["--files", "30", "--jobs", "10"]], _assets_rows)]
    scripts = {b.script for b in known}
    for path in sorted((ROOT / "bench").glob("bench_*.py")):  # e.g. bench_farm.py: its own defaults
        if path.name not in scripts:
            takes_quick = "--quick" in path.read_text(encoding="utf-8")
            known.append(Bench(path.stem.removeprefix("bench_"), path.name, [[]],
                               [["--quick"]] if takes_quick else [[]], _generic_rows(path.stem),
                               writes_section="--no-write" in path.read_text(encoding="utf-8")))
    return known


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = _cores()
    blender = subprocess.run([sys.executable, "-c", "import bpy; print(bpy.app.version_string)"],
                             capture_output=True, text=True, timeout=120).stdout.strip().splitlines()
    return {"cpu": cpu, "cores": str(cores), "python": platform.python_version(),
            "blender": f"bpy {blender[-1]}" if blender else "bpy not importable",
            "os": f"{platform.system()} {platform.release()}"}


def run_bench(b: Bench, quick: bool, no_write: bool) -> tuple[int, float]:
    runs = b.quick if quick else b.full
    start = time.perf_counter()
    rc = 0
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for args in runs:
        cmd = [sys.executable, str(ROOT / "bench" / b.script), *args]
        if b.writes_section and (quick or no_write):
            cmd.append("--no-write")
        print(f"$ {shlex.join(cmd[1:])}", flush=True)
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=b.timeout_s)
            out, code = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as exc:
            out, code = f"{exc.stdout or ''}\n{exc.stderr or ''}\ntimed out after {b.timeout_s:.0f} s", 124
        b.outputs.append(out)
        # The ack benches exit 1 when the p99 target is missed; that is a result, not a failure.
        if code not in (0, 1) or (code == 1 and "p99=" not in out):
            rc = code or 1
            print("\n".join(out.splitlines()[-15:]), file=sys.stderr)
    return rc, time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one run each: checks they work (CI)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    ap.add_argument("--only", default="", help="comma-separated bench names or scripts")
    args = ap.parse_args()
    command = "./scripts/bench" + "".join(f" {a}" for a in sys.argv[1:])
    selected = [b for b in benches() if not args.only or any(
        o in (b.name, b.script, b.script.removesuffix(".py")) for o in args.only.split(","))]
    selected = [b for b in selected if (b.quick if args.quick else b.full)]
    t0 = time.perf_counter()
    load_start = load_average()
    rows: list[Row] = []
    failed: list[str] = []
    for b in selected:
        rc, seconds = run_bench(b, args.quick, args.no_write)
        if rc:
            failed.append(f"{b.name} ({b.script}): exit {rc}")
            rows.append((b.name, f"FAILED (exit {rc})", "", False))
        else:
            rows.extend(b.parse(b.outputs))
        print(f"  {b.name}: {seconds:.0f} s", flush=True)
    elapsed = time.perf_counter() - t0
    info = machine()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    mark = {True: "yes", False: "**no**", None: ""}
    table = "\n".join(f"| {m} | {r} | {t} | {mark[ok]} |" for m, r, t, ok in rows)
    quick_note = "Quick run (small sizes, one run each): checks that every benchmark works; rough figures. " \
        if args.quick else ""
    text = f"""{SUMMARY_SECTION}

`{command}` on {now}: {info['cpu']}, {info['cores']} cores, {info['os']}, Python {info['python']},
{info['blender']}; load average {load_start:.1f} at the start, {load_average():.1f} at the end; ran {elapsed:.0f} s.
{quick_note}Each figure is a median of the runs named; comparisons are ratios measured in the same run.
The sections below hold each benchmark's details (written by its script on a full run).

| measure | result | target | met |
|---|---|---|---|
{table}
"""
    if failed:
        text += "\nFailed: " + "; ".join(failed) + "\n"
    print()
    print(text)
    if not args.no_write:
        write_summary(text)
    return 1 if failed else 0


def write_summary(text: str) -> None:
    """Replace (or insert) the summary right after the file's title, before the first section."""
    path = benchmarks_md()
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if not old.lstrip().startswith("# "):
        old = "# Benchmarks\n\n" + old.lstrip("\n")
    start = old.find(SUMMARY_SECTION + "\n")
    if start >= 0:
        end = old.find("\n## ", start + len(SUMMARY_SECTION))
        new = old[:start] + text.rstrip("\n") + "\n" + (old[end:] if end >= 0 else "")
    else:
        first = old.find("\n## ")
        if first < 0:
            new = old.rstrip("\n") + "\n\n" + text
        else:
            new = old[:first + 1] + text.rstrip("\n") + "\n" + old[first:]
    path.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
