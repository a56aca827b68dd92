"""The `/blender assets` picture: matching assets' previews in a grid, each with its name,
type and catalog. Pillow only (no bpy): previews are PNG files the index made on Blender's
main thread; an asset without one gets a plain tile with its type's initial."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .index import AssetEntry

TILE = 128
LABEL_H = 40
COLUMNS = 5
MAX_TILES = 30
BACKGROUND = (32, 34, 40)
TEXT = (235, 235, 235)
DIM = (150, 155, 165)
TYPE_COLORS = {"object": (70, 110, 170), "collection": (90, 140, 90), "material": (160, 90, 140),
               "world": (80, 130, 150), "node_group": (140, 120, 70)}


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _tile(entry: AssetEntry) -> Image.Image:
    if entry.preview and Path(entry.preview).is_file():
        try:
            with Image.open(entry.preview) as opened:
                img = opened.convert("RGBA")
                img.thumbnail((TILE, TILE))
                tile = Image.new("RGB", (TILE, TILE), BACKGROUND)
                tile.paste(img, ((TILE - img.width) // 2, (TILE - img.height) // 2), img)
                return tile
        except OSError:
            pass
    tile = Image.new("RGB", (TILE, TILE), TYPE_COLORS.get(entry.type, (90, 90, 90)))
    draw = ImageDraw.Draw(tile)
    font = ImageFont.load_default(size=48)
    letter = entry.type[:1].upper()
    draw.text((TILE / 2, TILE / 2), letter, fill=TEXT, font=font, anchor="mm")
    return tile


def render_contact_sheet(entries: Sequence[AssetEntry], path: Path, *, title: str = "") -> Path:
    """A PNG of up to MAX_TILES assets (name, type, catalog under each preview)."""
    shown = list(entries)[:MAX_TILES]
    cols = max(1, min(COLUMNS, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    head = 28 if title else 0
    sheet = Image.new("RGB", (cols * TILE + (cols + 1) * 8, head + rows * (TILE + LABEL_H) + (rows + 1) * 8),
                      BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=11)
    if title:
        draw.text((8, 8), _fit(draw, title, font, sheet.width - 16), fill=TEXT, font=font)
    for k, entry in enumerate(shown):
        r, c = divmod(k, cols)
        x = 8 + c * (TILE + 8)
        y = head + 8 + r * (TILE + LABEL_H + 8)
        sheet.paste(_tile(entry), (x, y))
        draw.text((x, y + TILE + 3), _fit(draw, entry.name, font, TILE), fill=TEXT, font=font)
        detail = entry.type.replace("_", " ") + (f" · {entry.catalog}" if entry.catalog else "")
        draw.text((x, y + TILE + 20), _fit(draw, detail, small, TILE), fill=DIM, font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def format_asset_list(entries: Sequence[AssetEntry], *, query: str = "", limit: int = 30) -> str:
    """Plain text lines (name, type, library, catalog, tags); the caller escapes for Slack."""
    if not entries:
        return f'No assets match "{query}".' if query else "No assets are indexed (set asset_libraries)."
    lines = []
    for e in list(entries)[:limit]:
        extra = f" [{', '.join(e.tags)}]" if e.tags else ""
        lines.append(f"{e.name} ({e.type.replace('_', ' ')}, {e.library}{', ' + e.catalog if e.catalog else ''})"
                     f"{extra}")
    if len(entries) > limit:
        lines.append(f"… and {len(entries) - limit} more")
    return "\n".join(lines)
