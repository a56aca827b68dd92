"""Asset libraries (issue 15): index time for 100 generated .blend files, and the added
per-job time of linking one asset into a job's scene.

    .venv/bin/python bench/bench_assets.py [--files 100] [--jobs 20]

Prints one JSON object. Index: a cold refresh (every file read through
`bpy.data.temp_data` + `libraries.load(assets_only=True)`; no preview renders), then a warm
one (nothing changed: only the folder walk and stat). Per job: building and cleaning up a
scene with one linked asset object against the same scene with a primitive cube instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

from slack_ai_addon.assets import service  # noqa: E402
from slack_ai_addon.blender import asset_reader, builder, headless  # noqa: E402
from slack_ai_addon.core.scene_spec import parse_scene_spec  # noqa: E402
from tests.blender.asset_library import build_library, write_many  # noqa: E402


def _build_seconds(spec_data: dict, jobs: int) -> list[float]:
    spec = parse_scene_spec(spec_data)[0]
    times = []
    for k in range(jobs):
        t = time.perf_counter()
        built = builder.build_scene(spec, f"bench-{k}")
        built.cleanup()
        times.append(time.perf_counter() - t)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    headless.prepare_module_mode(online=False)
    with tempfile.TemporaryDirectory(prefix="bench-assets-") as tmp:
        many = Path(tmp) / "many"
        t = time.perf_counter()
        write_many(many, args.files)
        generate_s = time.perf_counter() - t
        index = service.configure(folders=str(many), cache_path=Path(tmp) / "cache" / "index.json")
        t = time.perf_counter()
        cold = asset_reader.refresh_assets(index, previews=False)
        cold_s = time.perf_counter() - t
        t = time.perf_counter()
        warm = asset_reader.refresh_assets(index, previews=False)
        warm_s = time.perf_counter() - t

        lib = build_library(Path(tmp) / "studio")
        service.configure(folders=str(lib["props"].parent), cache_path=Path(tmp) / "cache2" / "index.json")
        asset_reader.refresh_assets(previews=False)
        base = {"floor": {"kind": "plain"}, "output": {"engine": "workbench", "width": 64, "height": 48}}
        cube = _build_seconds({**base, "objects": [{"primitive": "cube"}]}, args.jobs)
        asset = _build_seconds({**base, "objects": [{"primitive": "asset", "asset": {"name": "Hero Lamp"}}]},
                               args.jobs)
        service.reset()
    med_cube, med_asset = statistics.median(cube), statistics.median(asset)
    print(json.dumps({
        "blender": bpy.app.version_string, "files": args.files, "generate_s": round(generate_s, 3),
        "index_cold_s": round(cold_s, 3), "index_cold_per_file_ms": round(1000 * cold_s / max(1, cold.read), 2),
        "files_read": cold.read, "assets": len(index.entries()),
        "index_warm_s": round(warm_s, 4), "warm_files_read": warm.read,
        "jobs": args.jobs, "build_cleanup_cube_ms_median": round(1000 * med_cube, 2),
        "build_cleanup_asset_ms_median": round(1000 * med_asset, 2),
        "asset_overhead_ms_median": round(1000 * (med_asset - med_cube), 2),
        "asset_overhead_ms_max": round(1000 * (max(asset) - med_cube), 2),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
