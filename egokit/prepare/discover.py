"""Find the input videos of a dataset folder and give each one the ``video_uid`` its chunks are stored under.

Layouts
    ``ego4d``     ``SRC/<video_uid>.mp4`` (or ``SRC/full_scale/<video_uid>.mp4`` as the Ego4D CLI downloads them)
    ``epic``      EPIC-KITCHENS ``SRC/P01/videos/P01_01.MP4`` or ``SRC/P01/P01_01.MP4`` (any depth, as long as a
                  parent folder is the participant); the uid is ``P01_01``
    ``charades``  ``SRC/<id>.mp4`` (Charades / Charades-Ego, e.g. ``46GP8``); the uid is the id
    ``plain``     every video under ``SRC``, recursively; the uid is the path relative to ``SRC`` without its
                  extension (``kitchen/day1``), so sub-folders keep names unique
    ``auto``      ``epic`` if any file looks like an EPIC video, ``ego4d``/``charades`` for a flat folder of
                  Ego4D-style (UUID) / Charades-style names, else ``plain``

Hidden files and folders, and anything inside the output folder, are ignored. Two videos with the same uid are an
error (name both files).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from egokit.errors import ConfigError, DataError

__all__ = ["LAYOUTS", "VIDEO_EXTENSIONS", "VideoJob", "detect_layout", "discover"]

LAYOUTS = ("auto", "ego4d", "epic", "charades", "plain")
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"})

_EPIC = re.compile(r"^(P\d{2,})_\d{2,}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_CHARADES = re.compile(r"^[0-9A-Z]{5}(EGO)?$")


@dataclass(frozen=True)
class VideoJob:
    """One input video and the uid its chunks go to (``DST/<uid>/<k>.mp4``)."""

    uid: str
    path: Path


def discover(
    src: str | os.PathLike, layout: str = "auto", exclude: str | os.PathLike | None = None
) -> tuple[str, list[VideoJob]]:
    """``(layout used, videos sorted by uid)`` under ``src`` (a folder, or a single video file: layout plain)."""
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    src = Path(src)
    if src.is_file():
        if src.suffix.lower() not in VIDEO_EXTENSIONS:
            raise DataError(f"{src} is not a video file (extensions: {', '.join(sorted(VIDEO_EXTENSIONS))})")
        return "plain", [VideoJob(src.stem, src)]
    if not src.is_dir():
        raise DataError(f"source {src} does not exist; give a folder of videos or one video file")
    files = _video_files(src, Path(exclude) if exclude is not None else None)
    if layout == "auto":
        layout = detect_layout(src, files)
    if layout == "epic":
        jobs = [VideoJob(p.stem, p) for p in files if _is_epic(src, p)]
    elif layout in ("ego4d", "charades"):
        top = _top_level(src, files)
        if not top and layout == "ego4d" and (src / "full_scale").is_dir():
            top = _top_level(src / "full_scale", files)
        jobs = [VideoJob(p.stem, p) for p in top]
    else:
        jobs = [VideoJob(p.relative_to(src).with_suffix("").as_posix(), p) for p in files]
    _check_unique(jobs)
    return layout, sorted(jobs, key=lambda j: j.uid)


def detect_layout(src: Path, files: list[Path] | None = None) -> str:
    """The layout ``auto`` picks for ``src`` (see the module doc)."""
    files = _video_files(src, None) if files is None else files
    if any(_is_epic(src, p) for p in files):
        return "epic"
    top = _top_level(src, files)
    if not top and (src / "full_scale").is_dir():
        top = _top_level(src / "full_scale", files)
        if top and all(_UUID.match(p.stem) for p in top):
            return "ego4d"
    if top and len(top) == len(files):
        if all(_UUID.match(p.stem) for p in top):
            return "ego4d"
        if all(_CHARADES.match(p.stem) for p in top):
            return "charades"
    return "plain"


def _video_files(src: Path, exclude: Path | None) -> list[Path]:
    exclude = exclude.resolve() if exclude is not None else None
    found = []
    for folder, dirs, names in os.walk(src, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (exclude is None or Path(folder, d).resolve() != exclude))
        found += [Path(folder, n) for n in sorted(names)
                  if not n.startswith(".") and Path(n).suffix.lower() in VIDEO_EXTENSIONS]
    return found


def _top_level(folder: Path, files: list[Path]) -> list[Path]:
    return [p for p in files if p.parent == folder]


def _is_epic(src: Path, path: Path) -> bool:
    match = _EPIC.match(path.stem)
    return bool(match) and match.group(1) in path.relative_to(src).parts[:-1]


def _check_unique(jobs: list[VideoJob]) -> None:
    seen: dict[str, Path] = {}
    for job in jobs:
        if job.uid in seen:
            raise DataError(f"two videos would be stored as {job.uid!r}: {seen[job.uid]} and {job.path}; "
                            "use --layout plain to keep sub-folder names in the uid")
        seen[job.uid] = job.path
