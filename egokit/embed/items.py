"""What to embed: a video, a folder of videos, a clip list, or an official Ego4D NLQ/MQ annotation file.

Every input becomes a list of :class:`EmbedItem` (output name, video file, time range, optional queries), sorted by
name so that every process of a distributed run sees the same list and takes its own share.

Clip lists are JSON (a list of objects, or JSON lines) or CSV with columns ``video, start, end, clip_uid`` (``start``
and ``end`` in seconds of the video file; empty ``end`` = to the end; optional ``queries``: a list of strings in
JSON). Official NLQ / MQ files (``{"videos": [{"video_uid", "clips": [...]}]}``) give one item per clip, read from
``<video_root>/<video_uid>.mp4`` between ``video_start_sec`` and ``video_end_sec`` -- the un-chunked layout the
official extraction reads; NLQ language queries become the clip's queries (for fusion features).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from egokit.errors import DataError

if TYPE_CHECKING:
    from egokit.data.video import ChunkedVideo, VideoInfo

__all__ = ["VIDEO_EXTENSIONS", "EmbedItem", "Query", "collect_items", "items_from_annotations"]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Query:
    """A query text and the key it is stored under (NLQ: ``annotation_uid:query_idx``)."""

    key: str
    text: str


@dataclass(frozen=True)
class EmbedItem:
    uid: str  # output file stem (clip_uid, or the video's name)
    path: Path
    start: float = 0.0
    end: Optional[float] = None  # None: to the end of the video
    queries: tuple[Query, ...] = ()
    video: Optional["ChunkedVideo"] = None  # an `egokit prepare` video: read from its chunks (path = its folder)
    info: Optional["VideoInfo"] = None  # stream facts when known without probing (prepare manifest)

    @property
    def source(self) -> "Path | ChunkedVideo":
        """What :mod:`egokit.data.video` readers take: the chunked video, else the file."""
        return self.video if self.video is not None else self.path


def _safe_uid(uid: str, where: str) -> str:
    uid = str(uid).strip()
    if not uid or uid in (".", "..") or "/" in uid or "\\" in uid:
        raise DataError(f"{where}: {uid!r} cannot be used as an output file name")
    return uid


def _number(value: Any, where: str, field: str, optional: bool = False) -> Optional[float]:
    if optional and value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: field {field!r} must be a number of seconds, got {value!r}") from None


def _resolve(video: str, root: Path, where: str) -> Path:
    path = Path(video).expanduser()
    return path if path.is_absolute() else root / path


def _clip_records(records: list[Any], root: Path, source: Path) -> list[EmbedItem]:
    items = []
    for i, rec in enumerate(records):
        where = f"{source} entry {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected an object with video/start/end/clip_uid")
        if "video" not in rec:
            raise DataError(f"{where}: missing field 'video' (path of the video file)")
        video = str(rec["video"])
        uid = rec.get("clip_uid") or Path(video).stem
        queries = rec.get("queries") or ()
        if isinstance(queries, str):
            queries = json.loads(queries) if queries.strip().startswith("[") else [queries]
        items.append(EmbedItem(
            uid=_safe_uid(uid, where), path=_resolve(video, root, where),
            start=_number(rec.get("start", 0.0) or 0.0, where, "start"), end=_number(rec.get("end"), where, "end", True),
            queries=tuple(Query(str(q), str(text)) for q, text in enumerate(queries)),
        ))
    return items


def items_from_annotations(data: dict[str, Any], video_root: Path, source: str = "annotations") -> list[EmbedItem]:
    """One item per clip of an official NLQ/MQ file; NLQ queries keyed ``annotation_uid:query_idx``."""
    items: dict[str, EmbedItem] = {}
    for v, video in enumerate(data.get("videos", [])):
        for c, clip in enumerate(video.get("clips", [])):
            where = f"{source}: videos[{v}].clips[{c}]"
            try:
                uid = _safe_uid(clip["clip_uid"], where)
                path = video_root / f"{video['video_uid']}.mp4"
                start = _number(clip["video_start_sec"], where, "video_start_sec")
                end = _number(clip["video_end_sec"], where, "video_end_sec")
            except KeyError as exc:
                raise DataError(f"{where}: missing field {exc.args[0]!r}") from None
            queries = []
            for ann in clip.get("annotations", []):
                for q, query in enumerate(ann.get("language_queries", []) or []):
                    if isinstance(query, dict) and query.get("query") is not None:
                        queries.append(Query(f"{ann.get('annotation_uid', '')}:{q}", str(query["query"])))
            if uid in items:  # a clip listed twice (several annotation passes): merge queries
                queries = [*items[uid].queries, *queries]
            items[uid] = EmbedItem(uid, path, start, end, tuple(queries))
    return list(items.values())


def _is_prepared(folder: Path) -> bool:
    """Whether ``folder`` is an ``egokit prepare`` output (its ``manifest.json`` says so)."""
    from egokit.prepare.manifest import FORMAT, MANIFEST_NAME

    try:
        return json.loads((folder / MANIFEST_NAME).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _prepared_items(folder: Path) -> list[EmbedItem]:
    """One item per finished video of an ``egokit prepare`` output (read from its chunks, facts from the manifest)."""
    from egokit.prepare.manifest import load_manifest

    videos = load_manifest(folder)
    if not videos:
        raise DataError(f"{folder / 'manifest.json'} lists no finished videos; run `egokit prepare` again")
    return [EmbedItem(_SAFE.sub("_", uid), folder / uid, video=pv.chunked(), info=pv.info)  # nested uids: a_b
            for uid, pv in videos.items()]


def collect_items(source: str | Path, video_root: str | Path | None = None) -> list[EmbedItem]:
    """Items for ``source``: a video file, a folder of videos, an ``egokit prepare`` output (a folder with
    ``manifest.json``: one item per prepared video), a clip list (.json/.jsonl/.csv) or an official NLQ/MQ JSON.
    Relative video paths resolve against ``video_root`` (default: the list's folder)."""
    source = Path(source).expanduser()
    if not source.exists():
        raise DataError(f"input not found: {source} (give a video, a folder of videos or a clip list)")
    root = Path(video_root).expanduser() if video_root else source.parent
    if source.is_dir() and _is_prepared(source):
        items = _prepared_items(source)
    elif source.is_dir():
        videos = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        if not videos:
            raise DataError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) under {source}")
        items = [EmbedItem(_SAFE.sub("_", str(p.relative_to(source).with_suffix(""))), p) for p in videos]
    elif source.suffix.lower() in VIDEO_EXTENSIONS:
        items = [EmbedItem(_safe_uid(source.stem, str(source)), source)]
    elif source.suffix.lower() == ".csv":
        with source.open(newline="", encoding="utf-8") as handle:
            try:
                records = list(csv.DictReader(handle))
            except UnicodeDecodeError as exc:
                raise DataError(f"{source}: not UTF-8 text (byte {exc.start}); save the clip list as UTF-8") from None
        items = _clip_records(records, root, source)
    elif source.suffix.lower() in (".json", ".jsonl"):
        try:
            text = source.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{source}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
        try:
            data = ([json.loads(line) for line in text.splitlines() if line.strip()] if source.suffix.lower() == ".jsonl"
                    else json.loads(text))
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}: not valid JSON ({exc})") from None
        if isinstance(data, dict) and "videos" in data:
            if video_root is None:
                raise DataError(f"{source} is an official Ego4D annotation file: pass --video-root, the folder with "
                                "<video_uid>.mp4 files")
            items = items_from_annotations(data, root, str(source))
        elif isinstance(data, list):
            items = _clip_records(data, root, source)
        else:
            raise DataError(f"{source}: expected a list of clips or an official file with a 'videos' list")
    else:
        raise DataError(f"cannot read {source}: expected a video, a folder, .json/.jsonl/.csv clip list")
    seen: dict[str, EmbedItem] = {}
    for item in items:
        if item.uid in seen and seen[item.uid] != item:
            raise DataError(f"two different inputs would both be written as {item.uid!r}; give them distinct clip_uid")
        seen[item.uid] = item
    return sorted(seen.values(), key=lambda it: it.uid)
