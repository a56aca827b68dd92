"""Build the Blender extension zips (one per platform) and the legacy vendor folder.

Called by `scripts/build_extension`. Steps:

1. download the wheel closure of `[project].dependencies` (pyproject.toml) per platform and
   per Python ABI (cp311 for Blender 4.2-5.0, cp313 for 5.1 and later) with
   `pip download --only-binary=:all: --python-version X.Y` into a cache folder; pure-Python
   wheels common to both closures are shipped once, and Blender installs the compiled ones
   that match its own Python;
2. stage a copy of the add-on: the package (its command line, `slack_ai_addon/cli`, is what
   farm nodes run with `--command slack_ai`), the wheels, and a copy of the repository's
   blender_manifest.toml with `wheels = [...]` and `platforms` filled in. The repository's
   `headless_runner/` (the development command line and the local Slack stand-in, with
   aiohttp from the `sandbox` extra) is not shipped;
3. build with Blender's own builder (`blender --command extension build --split-platforms`
   when a 4.2+ blender is on PATH, else the `blender_ext.py` shipped inside the bpy wheel).

`--vendor DIR` instead installs the closure for this machine (Linux x86_64, cp311) with
`pip install --target`, for the legacy add-on path on Blender < 4.2 (e.g. Debian's 3.4).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess  # noqa: S404 - runs pip and Blender's builder with fixed argument lists
import sys
import tomllib
from pathlib import Path

log = logging.getLogger("build_extension")

ROOT = Path(__file__).resolve().parent.parent
ADDON_ID = "slack_ai_addon"

# Blender platform -> pip --platform tags. pip expands manylinux2014 to the older manylinux
# tags and a macOS tag to older macOS versions (and universal2), but not manylinux_2_28,
# so that one is listed explicitly (Blender 4.2+ needs glibc 2.28 anyway).
PLATFORMS: dict[str, list[str]] = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux2014_x86_64"],
    "macos-arm64": ["macosx_11_0_arm64"],
    "macos-x64": ["macosx_10_15_x86_64"],
    "windows-x64": ["win_amd64"],
}
# CPython of the Blenders the manifest covers: 3.11 in 4.2 to 5.0, 3.13 in 5.1 and later.
PYTHON_VERSIONS = ("3.11", "3.13")
PYTHON_VERSION = PYTHON_VERSIONS[0]  # default of --vendor (Debian 12's Blender 3.4 embeds 3.11)
# The local Slack stand-in and its server library are development tools: never in a zip.
DEV_ONLY_NAMES = {"sandbox", "headless_runner"}
DEV_ONLY_DISTRIBUTIONS = {"aiohttp"}


def runtime_requirements() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(data["project"]["dependencies"])


def default_cache_dir() -> Path:
    env = os.environ.get("SLACK_AI_WHEEL_CACHE")
    return Path(env) if env else ROOT / "build" / "wheel-cache"


def _pip(*args: str, capture: bool = False) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    log.info("running %s", " ".join(cmd))
    # Only stderr is captured (to read which requirement had no wheel); progress stays visible.
    subprocess.run(cmd, check=True, stderr=subprocess.PIPE if capture else None,  # noqa: S603 - fixed pip call
                   text=True)


def download_wheels(platform: str, cache: Path) -> list[Path]:
    """The wheel closures for one Blender platform, one per Python in PYTHON_VERSIONS."""
    wheels: list[Path] = []
    for python_version in PYTHON_VERSIONS:
        wheels.extend(download_wheels_for(platform, python_version, cache))
    return wheels


def _abi(python_version: str) -> str:
    return "cp" + python_version.replace(".", "")


def download_wheels_for(platform: str, python_version: str, cache: Path) -> list[Path]:
    """The wheel closure for one Blender platform and one CPython; cached by the requirement list."""
    reqs = runtime_requirements()
    abi = _abi(python_version)
    stamp_value = hashlib.sha256(json.dumps([reqs, PLATFORMS[platform], python_version]).encode()).hexdigest()
    dest = cache / platform / abi
    stamp = dest / ".stamp"
    if not (stamp.is_file() and stamp.read_text() == stamp_value):
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        plat_args = [a for tag in PLATFORMS[platform] for a in ("--platform", tag)]
        notes: list[str] = []
        for _attempt in range(2 * len(reqs)):
            try:
                _pip("download", "--quiet", "--only-binary=:all:", "--python-version", python_version,
                     "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none",
                     *plat_args, "--dest", str(dest), *reqs, capture=True)
                break
            except subprocess.CalledProcessError as exc:
                missing = re.search(r"No matching distribution found for ([A-Za-z0-9_.\-]+)(\S*)", exc.stderr or "")
                if not missing:
                    sys.stderr.write(exc.stderr or "")
                    raise
                name, spec = missing.group(1), missing.group(2)
                # A compiled wheel can lag behind on one platform (pymssql on macOS arm64):
                # first accept an older release, then leave the package out for that platform.
                if spec:
                    reqs = [name if _req_name(r) == _req_name(name) else r for r in reqs]
                    notes.append(f"{name}: no wheel for {spec}; took the newest available")
                else:
                    reqs = [r for r in reqs if _req_name(r) != _req_name(name)]
                    notes.append(f"{name}: no wheel at all; left out")
                log.warning("%s %s: %s", platform, abi, notes[-1])
        else:
            raise SystemExit(f"could not resolve the {abi} wheels for {platform}")
        (dest / "NOTES.txt").write_text("\n".join(notes) + "\n")
        stamp.write_text(stamp_value)
    notes_file = dest / "NOTES.txt"
    if notes_file.is_file() and notes_file.read_text().strip():
        log.warning("%s %s: %s", platform, abi, notes_file.read_text().strip().replace("\n", "; "))
    return sorted(dest.glob("*.whl"))


def _req_name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def stage_addon(stage: Path, wheels: list[Path], platforms: list[str]) -> Path:
    """A copy of the add-on ready for Blender's builder; returns its folder."""
    if stage.exists():
        shutil.rmtree(stage)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "wheels", "_vendor")
    shutil.copytree(ROOT / ADDON_ID, stage, ignore=ignore)
    dev_only = [p.relative_to(stage) for p in stage.rglob("*") if p.name in DEV_ONLY_NAMES]
    if dev_only:
        raise SystemExit(f"the add-on package holds development-only files: {dev_only}")
    dev_wheels = [w.name for w in wheels if _req_name(w.name.split("-")[0]) in DEV_ONLY_DISTRIBUTIONS]
    if dev_wheels:
        raise SystemExit(f"development-only wheels in the runtime closure: {dev_wheels}")
    # The cp311 and cp313 closures share their pure-Python wheels; two versions of one pure
    # distribution would both be installed by Blender, whichever its Python.
    pure: dict[str, set[str]] = {}
    for wheel in wheels:
        if wheel.name.endswith("-none-any.whl"):
            pure.setdefault(_req_name(wheel.name.split("-")[0]), set()).add(wheel.name)
    clashes = {name: sorted(files) for name, files in pure.items() if len(files) > 1}
    if clashes:
        raise SystemExit(f"the cp311 and cp313 closures disagree on pure-Python wheels: {clashes}")
    wheel_dir = stage / "wheels"
    wheel_dir.mkdir()
    names: list[str] = []
    for wheel in wheels:
        if wheel.name not in names:
            shutil.copy2(wheel, wheel_dir / wheel.name)
            names.append(wheel.name)
    manifest = (ROOT / "blender_manifest.toml").read_text(encoding="utf-8")
    wheel_list = "wheels = [\n" + "".join(f'  "./wheels/{n}",\n' for n in sorted(names)) + "]"
    manifest, n_wheels = re.subn(r"(?m)^wheels = \[[^\]]*\]", lambda _m: wheel_list, manifest)
    manifest, n_platforms = re.subn(r"(?m)^platforms = \[[^\]]*\]",
                                    lambda _m: "platforms = " + json.dumps(platforms), manifest)
    if n_wheels != 1 or n_platforms != 1:
        raise SystemExit("blender_manifest.toml must have one `wheels = [...]` and one `platforms = [...]` line")
    (stage / "blender_manifest.toml").write_text(manifest, encoding="utf-8")
    return stage


def blender_ext_script() -> Path:
    """Blender's own extension tool, shipped inside the bpy wheel (observed.md)."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    found = sorted(site.glob("bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise SystemExit("blender_ext.py not found: install bpy (pip install -e .[blender]) or put Blender 4.2+ "
                         "on PATH")
    return found[-1]


def blender_on_path_supports_extensions() -> str | None:
    exe = shutil.which("blender")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"Blender (\d+)\.(\d+)", out)
    return exe if m and (int(m.group(1)), int(m.group(2))) >= (4, 2) else None


def build(stage: Path, out_dir: Path, split: bool) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    before = set(out_dir.glob("*.zip"))
    split_args = ["--split-platforms"] if split else []
    exe = blender_on_path_supports_extensions()
    if exe:
        cmd = [exe, "--factory-startup", "--command", "extension", "build", "--source-dir", str(stage),
               "--output-dir", str(out_dir), *split_args]
    else:
        cmd = [sys.executable, str(blender_ext_script()), "build", "--source-dir", str(stage),
               "--output-dir", str(out_dir), *split_args]
    log.info("running %s", " ".join(cmd))
    subprocess.run(cmd, check=True)  # noqa: S603 - fixed builder invocation
    return sorted(set(out_dir.glob("*.zip")) - before) or sorted(out_dir.glob(f"{ADDON_ID}-*.zip"))


def vendor(target: Path, python_version: str = PYTHON_VERSION) -> None:
    """Dependencies for the legacy add-on (Linux x86_64) for the Python that the `blender`
    binary embeds: 3.11 for Debian 12's Blender 3.4, 3.13 for Debian 13's 4.x."""
    reqs = runtime_requirements()
    stamp_value = hashlib.sha256(json.dumps([reqs, python_version]).encode()).hexdigest()
    stamp = target / ".stamp"
    if stamp.is_file() and stamp.read_text() == stamp_value:
        return
    if target.exists():
        shutil.rmtree(target)
    plat_args = [a for tag in PLATFORMS["linux-x64"] for a in ("--platform", tag)]
    _pip("install", "--quiet", "--target", str(target), "--only-binary=:all:", "--python-version",
         python_version, "--implementation", "cp", *plat_args, *reqs)
    stamp.write_text(stamp_value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/build_extension", description=__doc__.split("\n")[0])
    parser.add_argument("--platforms", default=",".join(PLATFORMS),
                        help="comma-separated Blender platforms (default: all four)")
    parser.add_argument("--out", default=str(ROOT / "dist"), help="where the zips go (default: dist/)")
    parser.add_argument("--cache", default=None, help="wheel cache (default: $SLACK_AI_WHEEL_CACHE or "
                        "build/wheel-cache)")
    parser.add_argument("--download-only", action="store_true", help="fill the wheel cache and stop")
    parser.add_argument("--vendor", metavar="DIR", help="install the dependencies for the legacy add-on "
                        "into DIR instead of building")
    parser.add_argument("--python-version", default=PYTHON_VERSION,
                        help="with --vendor: the Python of the target Blender, X.Y (default %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(name)s: %(message)s")
    if args.vendor:
        vendor(Path(args.vendor).resolve(), args.python_version)
        print(Path(args.vendor).resolve())
        return 0
    platforms = [p.strip() for p in args.platforms.split(",") if p.strip()]
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown:
        parser.error(f"unknown platform(s) {unknown}; known: {', '.join(PLATFORMS)}")
    cache = Path(args.cache) if args.cache else default_cache_dir()
    wheels: list[Path] = []
    for platform in platforms:
        wheels.extend(download_wheels(platform, cache))
    if args.download_only:
        return 0
    stage = stage_addon(ROOT / "build" / "extension" / ADDON_ID, wheels, platforms)
    zips = build(stage, Path(args.out), split=True)
    for z in zips:
        print(z)
    return 0


if __name__ == "__main__":
    sys.exit(main())
