"""``DST/manifest.json``: what was prepared, so datasets learn lengths and chunk layout without opening videos.

Format (``"format": "egokit-prepare"``, ``"version": 1``)::

    {"format": "egokit-prepare", "version": 1,
     "videos": {"<uid>": {
         "uid", "status": "done" | "failed", "error" (failed only), "source", "source_bytes", "source_mtime_ns",
         "settings": {short_side, fps, gop_seconds, chunk_seconds, codec, crf, preset},
         "fps" (float), "rate" ("30000/1001"), "num_frames", "duration" (num_frames / fps), "width", "height",
         "source_fps", "source_width", "source_height", "gop_size",
         "chunk_seconds" (requested), "chunk_frames" (round(chunk_seconds * fps)),
         "chunks": [{"index", "path" ("<uid>/<k>.mp4", relative to the manifest), "start_frame", "end_frame"
                     (exclusive), "start", "end" (seconds), "num_frames", "bytes"}],
         "encode_seconds"}}}

Frame ``i`` of the prepared video is frame ``i - start_frame`` of the chunk whose ``[start_frame, end_frame)``
holds it. The file is rewritten atomically (temporary file + ``os.replace``) by the single process that runs
``egokit prepare``; workers never write it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from egokit.errors import DataError
from egokit.io import write_json_atomic

if TYPE_CHECKING:
    from egokit.data.video import ChunkedVideo, VideoInfo

__all__ = ["FORMAT", "MANIFEST_NAME", "PreparedVideo", "load_manifest", "read_manifest", "write_manifest"]

FORMAT = "egokit-prepare"
VERSION = 1
MANIFEST_NAME = "manifest.json"


def read_manifest(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The per-uid entries of a manifest (all statuses); ``{}`` if the file does not exist."""
    path = _manifest_path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the prepare manifest {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("videos"), dict):
        raise DataError(f"{path} is not an egokit prepare manifest (expected \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise DataError(f"{path} has manifest version {data.get('version')}; this egokit reads version {VERSION}")
    return data["videos"]


def write_manifest(path: str | os.PathLike, videos: dict[str, dict[str, Any]]) -> None:
    """Write all entries atomically: a reader sees the old or the new manifest, never a partial one."""
    path = _manifest_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "videos": dict(sorted(videos.items()))}
    write_json_atomic(path, payload, indent=1, fsync=True)


@dataclass(frozen=True)
class PreparedVideo:
    """A finished video of a manifest: its facts, and how to read it with :mod:`egokit.data.video`."""

    uid: str
    root: Path
    rate: Fraction
    num_frames: int
    width: int
    height: int
    chunk_frames: int
    chunks: tuple[dict[str, Any], ...]
    source: str

    @property
    def fps(self) -> float:
        return float(self.rate)

    @property
    def duration(self) -> float:
        return float(self.num_frames / self.rate)

    @property
    def chunk_seconds(self) -> float:
        """Exact chunk length, ``chunk_frames / fps``: equals the requested length when that is a whole number
        of frames (600 s at 30 fps), else the nearest whole-frame length (use this one with ``ChunkedVideo``)."""
        return float(self.chunk_frames / self.rate)

    @property
    def info(self) -> VideoInfo:
        """What :func:`egokit.data.video.probe_video` would report for the whole video, without opening it."""
        from egokit.data.video import VideoInfo

        return VideoInfo(fps=self.fps, duration=self.duration, num_frames=self.num_frames, width=self.width,
                         height=self.height)

    def chunked(self) -> ChunkedVideo:
        """The chunks as a :class:`~egokit.data.video.ChunkedVideo` for ``read_clip`` / ``read_frames_at``."""
        from egokit.data.video import ChunkedVideo

        return ChunkedVideo(self.root, self.uid, self.chunk_seconds)


def load_manifest(path: str | os.PathLike) -> dict[str, PreparedVideo]:
    """The finished videos (``status == "done"``) of ``DST/manifest.json`` (``path`` is the file or ``DST``)."""
    path = _manifest_path(path)
    if not path.is_file():
        raise DataError(f"no prepare manifest at {path}; run `egokit prepare SRC {path.parent}` first")
    out = {}
    for uid, entry in read_manifest(path).items():
        if entry.get("status") != "done":
            continue
        try:
            out[uid] = PreparedVideo(uid=uid, root=path.parent, rate=Fraction(entry["rate"]),
                                     num_frames=int(entry["num_frames"]), width=int(entry["width"]),
                                     height=int(entry["height"]), chunk_frames=int(entry["chunk_frames"]),
                                     chunks=tuple(entry["chunks"]), source=str(entry["source"]))
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            raise DataError(f"{path}: entry {uid!r} is malformed ({exc!r})") from exc
    return out


def _manifest_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() or not path.suffix else path
