"""The asset index: every marked asset in the library folders, cached as JSON per node.

Why a JSON file in the user data folder and not a table in the job database: the index
describes this machine's folders (a farm node may mount the libraries elsewhere, or not at
all), it is derived data that a rescan rebuilds, and the shared database should not carry
one node's file paths. Each file's entry is keyed by its path and remembered with its
mtime and size: a refresh re-reads only files whose stat changed, and drops files that
are gone. Catalog files are re-read on every refresh (they are small text files).

Reading a .blend needs bpy, so `refresh` takes the reader as a function
(`blender/asset_reader.read_blend`) and runs on Blender's main thread, within a time budget
when it runs between jobs; everything else here (listing, matching, the contact sheet) is
plain Python that any thread may use on a snapshot (`entries()`).

Only the configured folders are read: the walk does not follow links, skips hidden folders,
and a file whose real path lies outside its library's root is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..files import replace_atomically
from .catalog import CATALOG_FILE, read_catalogs

log = logging.getLogger(__name__)

INDEX_VERSION = 1
MAX_FILES = 20_000  # per refresh, over all libraries: a misconfigured root (/) stops here
MAX_DEPTH = 12
ASSET_TYPES = ("object", "collection", "material", "world", "node_group")

Reader = Callable[[Path, Path], list[dict[str, Any]]]
"""(blend file, previews folder) -> one dict per marked asset: name, type, tags, description,
catalog_id, bounds ([minx, miny, minz, maxx, maxy, maxz] or None), preview (a file name in the
previews folder, or "")."""


@dataclass(frozen=True)
class Library:
    """One asset library: a name for requests and replies, and its root folder."""

    name: str
    root: Path


def library_roots(configured: str, blender_libraries: Iterable[tuple[str, str]] = ()) -> list[Library]:
    """The libraries to index: the configured folders (`asset_libraries`, os.pathsep-separated,
    named by their folder) and Blender's own (Preferences > File Paths, with their names).
    Folders that do not exist are left out (with a warning for configured ones); a folder
    listed twice counts once."""
    out: list[Library] = []
    seen_roots: set[Path] = set()
    names: set[str] = set()
    candidates = [(Path(p).name or p, p, True) for p in configured.split(os.pathsep) if p.strip()]
    candidates += [(name, path, False) for name, path in blender_libraries if path]
    for name, raw, configured_here in candidates:
        try:
            root = Path(raw.strip()).expanduser().resolve()
        except (OSError, RuntimeError):
            log.warning("asset library %r: not a usable path", raw)
            continue
        if not root.is_dir():
            # Blender lists a default "User Library" folder that often does not exist: only a
            # folder the admin configured is worth a warning.
            log.log(logging.WARNING if configured_here else logging.DEBUG,
                    "asset library %r: %s is not a folder", name, root)
            continue
        if root in seen_roots:
            continue
        seen_roots.add(root)
        base, k = name.strip() or root.name, 2
        unique = base
        while unique.lower() in names:
            unique, k = f"{base} {k}", k + 1
        names.add(unique.lower())
        out.append(Library(unique, root))
    return out


@dataclass
class AssetEntry:
    """One marked asset as requests, replies and the builder see it."""

    name: str
    type: str  # one of ASSET_TYPES
    library: str
    file: str  # absolute path of the .blend; never shown in Slack
    tags: list[str] = field(default_factory=list)
    description: str = ""
    catalog: str = ""  # catalog path ("Props/Lighting"), "" when none or unknown
    bounds: list[float] | None = None  # [minx, miny, minz, maxx, maxy, maxz], the asset's own units
    preview: str = ""  # absolute path of a PNG preview, "" when none

    @property
    def size(self) -> tuple[float, float, float] | None:
        if not self.bounds:
            return None
        b = self.bounds
        return (b[3] - b[0], b[4] - b[1], b[5] - b[2])

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.library, self.type, self.name)

    def public_dict(self, *, with_file: bool = False) -> dict[str, Any]:
        """For JSON output and LLM prompts: no file path unless asked (the CLI asks)."""
        d = asdict(self)
        if not with_file:
            d.pop("file")
            d.pop("preview")
        size = self.size
        d["size_m"] = [round(v, 3) for v in size] if size else None
        d.pop("bounds")
        return d


@dataclass
class RefreshReport:
    read: int = 0  # files (re)read
    removed: int = 0  # files gone since the last refresh
    pending: int = 0  # changed files left for the next refresh (time budget)
    failed: int = 0
    seconds: float = 0.0


@dataclass
class _FileRecord:
    library: str
    mtime_ns: int
    size: int
    assets: list[dict[str, Any]]
    error: str = ""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def list_blend_files(library: Library, limit: int = MAX_FILES) -> list[Path]:
    """The .blend files under a library's root, sorted; links are not followed out of it."""
    found: list[Path] = []
    root_depth = len(library.root.parts)
    for dirpath, dirnames, filenames in os.walk(library.root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and len(here.parts) - root_depth < MAX_DEPTH)
        for name in sorted(filenames):
            if not name.lower().endswith(".blend"):
                continue
            path = here / name
            if path.is_symlink() and not _inside(path, library.root):
                log.warning("asset library %s: %s links outside the library; skipped", library.name, path)
                continue
            found.append(path)
            if len(found) >= limit:
                log.warning("asset library %s: more than %d .blend files; the rest are not indexed",
                            library.name, limit)
                return found
    return found


def preview_name(blend: Path, asset_type: str, name: str) -> str:
    """A stable, file-system safe PNG name for one asset's preview."""
    digest = hashlib.blake2b(f"{blend}\0{asset_type}\0{name}".encode("utf-8", "surrogatepass"),
                             digest_size=10).hexdigest()
    return f"{digest}.png"


class AssetIndex:
    """The index of some libraries, cached in `cache_path` (None: memory only)."""

    def __init__(self, libraries: Sequence[Library], cache_path: Path | None = None) -> None:
        self.libraries = list(libraries)
        self.cache_path = cache_path
        self.previews_dir = (cache_path.parent / "previews") if cache_path else None
        self._files: dict[str, _FileRecord] = {}
        self._catalogs: dict[str, dict[str, str]] = {}
        self._entries: list[AssetEntry] = []
        self._lock = threading.Lock()
        self.version = 0  # bumped whenever entries change (matchers cache on it)
        self._load()

    # -------------------------------------------------------------- the cache file
    def _load(self) -> None:
        if self.cache_path is None or not self.cache_path.is_file():
            self._rebuild_entries()
            return
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
            if data.get("version") != INDEX_VERSION:
                raise ValueError(f"index version {data.get('version')!r}")
            roots = {lib.name: str(lib.root) for lib in self.libraries}
            for path, rec in data.get("files", {}).items():
                # Files of libraries no longer configured (or moved) are not carried over.
                if roots.get(rec.get("library")) and _inside(Path(path), Path(roots[rec["library"]])):
                    self._files[path] = _FileRecord(rec["library"], int(rec["mtime_ns"]), int(rec["size"]),
                                                    list(rec.get("assets", [])), str(rec.get("error", "")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("asset index cache %s unusable (%s): rebuilding", self.cache_path, exc)
            self._files = {}
        self._read_catalogs()
        self._rebuild_entries()

    def save(self) -> None:
        if self.cache_path is None:
            return
        data = {"version": INDEX_VERSION, "saved_at": time.time(),
                "files": {path: asdict(rec) for path, rec in sorted(self._files.items())}}
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(self.cache_path, json.dumps(data, indent=1, sort_keys=True))

    # -------------------------------------------------------------- refreshing
    def _read_catalogs(self) -> None:
        catalogs: dict[str, dict[str, str]] = {}
        for lib in self.libraries:
            merged: dict[str, str] = {}
            for cats in sorted(lib.root.rglob(CATALOG_FILE)):
                if _inside(cats, lib.root):
                    merged.update(read_catalogs(cats))
            catalogs[lib.name] = merged
        self._catalogs = catalogs

    def changed_files(self) -> tuple[list[tuple[Library, Path, os.stat_result]], list[str]]:
        """(files to read, with their stat; paths of files that are gone)."""
        changed: list[tuple[Library, Path, os.stat_result]] = []
        present: set[str] = set()
        for lib in self.libraries:
            for path in list_blend_files(lib):
                try:
                    st = path.stat()
                except OSError:
                    continue
                key = str(path)
                present.add(key)
                rec = self._files.get(key)
                if rec is None or rec.mtime_ns != st.st_mtime_ns or rec.size != st.st_size or rec.library != lib.name:
                    changed.append((lib, path, st))
        removed = [p for p in self._files if p not in present]
        return changed, removed

    def refresh(self, reader: Reader, *, budget_s: float | None = None,
                clock: Callable[[], float] = time.perf_counter) -> RefreshReport:
        """Re-read changed files with `reader` (on Blender's main thread), drop removed ones,
        save the cache. With `budget_s`, stops starting new files once it is spent; the report
        says how many are left for the next call."""
        start = clock()
        report = RefreshReport()
        changed, removed = self.changed_files()
        for gone in removed:
            rec = self._files.pop(gone)
            self._drop_previews(rec)
        report.removed = len(removed)
        previews = self.previews_dir or Path(os.devnull)
        if self.previews_dir:
            self.previews_dir.mkdir(parents=True, exist_ok=True)
        for k, (lib, path, st) in enumerate(changed):
            if budget_s is not None and k and clock() - start > budget_s:
                report.pending = len(changed) - k
                break
            old = self._files.get(str(path))
            try:
                assets = [a for a in reader(path, previews) if a.get("type") in ASSET_TYPES and a.get("name")]
                error = ""
            except Exception as exc:  # one broken file must not stop the index
                log.warning("asset library %s: cannot read %s: %s", lib.name, path, exc)
                assets, error = [], f"{type(exc).__name__}: {exc}"[:300]
                report.failed += 1
            if old is not None:
                self._drop_previews(old, keep={a.get("preview", "") for a in assets})
            self._files[str(path)] = _FileRecord(lib.name, st.st_mtime_ns, st.st_size, assets, error)
            report.read += 1
        self._read_catalogs()
        self._rebuild_entries()
        if report.read or report.removed:
            self.save()
        report.seconds = clock() - start
        if report.read or report.removed or report.pending:
            log.info("asset index: %d file(s) read, %d removed, %d pending, %d failed in %.2f s",
                     report.read, report.removed, report.pending, report.failed, report.seconds)
        return report

    def _drop_previews(self, rec: _FileRecord, keep: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        if not self.previews_dir:
            return
        for a in rec.assets:
            name = a.get("preview", "")
            if name and name not in keep:
                try:
                    (self.previews_dir / Path(name).name).unlink(missing_ok=True)
                except OSError:
                    pass

    def _rebuild_entries(self) -> None:
        entries: list[AssetEntry] = []
        for path, rec in sorted(self._files.items()):
            catalogs = self._catalogs.get(rec.library, {})
            for a in rec.assets:
                bounds = a.get("bounds")
                preview = str(a.get("preview") or "")
                entries.append(AssetEntry(
                    name=str(a["name"]), type=str(a["type"]), library=rec.library, file=path,
                    tags=[str(t) for t in a.get("tags", [])], description=str(a.get("description", "")),
                    catalog=catalogs.get(str(a.get("catalog_id", "")).lower(), ""),
                    bounds=[float(v) for v in bounds] if bounds and len(bounds) == 6 else None,
                    preview=str(self.previews_dir / Path(preview).name) if preview and self.previews_dir else ""))
        with self._lock:
            self._entries = entries
            self.version += 1

    def set_preview(self, entry: AssetEntry, preview: str, *, failed: bool = False) -> None:
        """Record a preview file (a name in `previews_dir`) for an asset, or that none can be made."""
        rec = self._files.get(entry.file)
        if rec is None:
            return
        for a in rec.assets:
            if a.get("name") == entry.name and a.get("type") == entry.type:
                a["preview"] = preview
                a["preview_failed"] = failed
        self._rebuild_entries()

    def preview_failed(self, entry: AssetEntry) -> bool:
        rec = self._files.get(entry.file)
        return bool(rec and any(a.get("name") == entry.name and a.get("type") == entry.type
                                and a.get("preview_failed") for a in rec.assets))

    # -------------------------------------------------------------- reading
    def entries(self) -> list[AssetEntry]:
        """A snapshot of every asset (any thread may call this)."""
        with self._lock:
            return list(self._entries)

    def failures(self) -> dict[str, str]:
        """Files that could not be read: path -> error."""
        return {p: r.error for p, r in self._files.items() if r.error}

    def find(self, name: str, *, library: str | None = None, types: Sequence[str] | None = None) -> AssetEntry | None:
        """The asset with this name (case-insensitive), optionally in one library and of some types."""
        wanted = name.strip().lower()
        for e in self.entries():
            if e.name.lower() == wanted and (library is None or e.library.lower() == library.lower()) \
                    and (not types or e.type in types):
                return e
        return None
