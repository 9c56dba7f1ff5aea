"""Contact sheet: a grid of the selected shots' middle frames, each labelled with its time range."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egokit.io import atomic_path

LABEL_HEIGHT = 22
GAP = 4
BACKGROUND = (24, 24, 24)
TEXT = (255, 255, 255)


def format_time(seconds: float) -> str:
    minutes, sec = divmod(seconds, 60.0)
    return f"{int(minutes)}:{sec:04.1f}"


def contact_sheet(frames: Sequence[np.ndarray], labels: Sequence[str], columns: int | None = None):
    """A ``PIL.Image`` (RGB): frames (H, W, 3) uint8 of equal size in a grid, a text label under each."""
    from PIL import Image, ImageDraw, ImageFont

    if not frames:
        raise ValueError("a contact sheet needs at least one frame")
    if len(labels) != len(frames):
        raise ValueError(f"{len(labels)} labels for {len(frames)} frames")
    h, w = frames[0].shape[:2]
    if any(f.shape != frames[0].shape for f in frames):
        raise ValueError("contact sheet frames must all have the same size")
    columns = columns or min(len(frames), 4)
    rows = math.ceil(len(frames) / columns)
    cell_h = h + LABEL_HEIGHT
    sheet = Image.new("RGB", (columns * w + (columns + 1) * GAP, rows * cell_h + (rows + 1) * GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=14)
    except (TypeError, OSError):  # Pillow without FreeType: bitmap font
        font = ImageFont.load_default()
    for k, (frame, label) in enumerate(zip(frames, labels)):
        r, c = divmod(k, columns)
        x, y = GAP + c * (w + GAP), GAP + r * (cell_h + GAP)
        sheet.paste(Image.fromarray(np.ascontiguousarray(frame)), (x, y))
        draw.text((x + 3, y + h + 3), label, fill=TEXT, font=font)
    return sheet


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 scaled to fit a ``width`` x ``height`` box, centred on the sheet background (so
    frames of videos with different sizes and aspect ratios share one contact sheet)."""
    from PIL import Image

    h, w = frame.shape[:2]
    scale = min(width / w, height / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = Image.fromarray(np.ascontiguousarray(frame)).resize(size, Image.BILINEAR)
    box = Image.new("RGB", (width, height), BACKGROUND)
    box.paste(image, ((width - size[0]) // 2, (height - size[1]) // 2))
    return np.asarray(box)


def tile_box(k: int, frame_size: tuple[int, int], count: int, columns: int | None = None) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of frame ``k`` inside a sheet made by :func:`contact_sheet`."""
    h, w = frame_size
    columns = columns or min(count, 4)
    r, c = divmod(k, columns)
    x, y = GAP + c * (w + GAP), GAP + r * (h + LABEL_HEIGHT + GAP)
    return x, y, x + w, y + h


def save_png(image, path: str | Path) -> Path:
    """Save atomically (temporary file + rename)."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
    return path
