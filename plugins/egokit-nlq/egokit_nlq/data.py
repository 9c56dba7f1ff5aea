"""Official Ego4D NLQ annotations and the per-query feature sequences the head reads.

Annotations: ``videos -> clips -> annotations -> language_queries`` with clip-relative ``clip_start_sec`` /
``clip_end_sec``; a query is identified by ``(clip_uid, annotation_uid, query_idx)`` where ``query_idx`` is its
position in ``language_queries`` (the key of the official evaluation). Queries without text are skipped (the
official features have none either).

Features come from an ``egokit embed`` folder: fusion recipes store ``(n_queries, n_windows, D)`` per clip with the
query keys in ``embed_meta.json``; dual recipes store ``(n_windows, D)`` shared by all queries of the clip. Long
clips are reduced to at most ``max_len`` steps by averaging equal bins of windows (the official
``visual_feature_sampling``); step ``i`` of ``T`` then covers ``[i, i + 1) * duration / T`` of the clip.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from egokit.tasks.api import FEATURES_META, DataError


@dataclass(frozen=True)
class NLQQuery:
    clip_uid: str
    annotation_uid: str
    query_idx: int
    text: str
    start: float  # clip-relative seconds
    end: float
    duration: float  # clip length in seconds

    @property
    def key(self) -> str:
        return f"{self.annotation_uid}:{self.query_idx}"


def read_annotations(path: str | Path) -> tuple[dict[str, Any], list[NLQQuery]]:
    """The parsed file and its queries (those with text), in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"NLQ annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    queries = []
    for v, video in enumerate(data.get("videos", [])):
        for c, clip in enumerate(video.get("clips", [])):
            where = f"{path}: videos[{v}].clips[{c}]"
            try:
                duration = float(clip["video_end_sec"]) - float(clip["video_start_sec"])
                for ann in clip["annotations"]:
                    for q, query in enumerate(ann.get("language_queries", []) or []):
                        if not isinstance(query, dict) or query.get("query") is None:
                            continue
                        start = float(query.get("clip_start_sec", 0.0) or 0.0)
                        end = float(query.get("clip_end_sec", start) or start)
                        check_window(start, end, duration, f"{where} (clip {clip['clip_uid']}) annotation "
                                     f"{ann['annotation_uid']} language_queries[{q}]")
                        queries.append(NLQQuery(str(clip["clip_uid"]), str(ann["annotation_uid"]), q,
                                                str(query["query"]), start, end, duration))
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{where}: malformed clip or annotation ({exc!r})") from None
    if "videos" not in data:
        raise DataError(f"{path}: not an official NLQ file (no 'videos' list)")
    return data, queries


#: Slack for annotation times rounded to frames (seconds: one frame at 20 fps); anything further outside the clip
#: is an annotation error.
TIME_TOLERANCE = 0.05


def check_window(start: float, end: float, duration: float, where: str) -> None:
    """A query's answer window must lie inside its clip with end >= start; else a :class:`DataError` naming it."""
    if not (math.isfinite(start) and math.isfinite(end)):
        raise DataError(f"{where}: clip_start_sec / clip_end_sec must be finite numbers, got {start} / {end}")
    if end < start:
        raise DataError(f"{where}: clip_end_sec {end} is before clip_start_sec {start}; fix the annotation")
    if start < -TIME_TOLERANCE or end > duration + TIME_TOLERANCE:
        raise DataError(f"{where}: window [{start}, {end}] s is outside the clip (0 to {duration:g} s, from "
                        "video_start_sec / video_end_sec); fix the annotation")


def resample(features: torch.Tensor, max_len: int) -> torch.Tensor:
    """(n, D) -> (min(n, max_len), D) by averaging ``max_len`` equal bins of consecutive rows."""
    n = features.shape[0]
    if n <= max_len:
        return features
    edges = torch.linspace(0, n, max_len + 1).round().long()
    return torch.stack([features[edges[i]:max(edges[i + 1], edges[i] + 1)].mean(0) for i in range(max_len)])


def time_to_steps(start: float, end: float, duration: float, steps: int) -> tuple[int, int]:
    """Indices of the steps holding ``start`` and ``end`` on a uniform grid of ``steps`` cells over the clip."""
    s = min(max(int(math.floor(start / duration * steps)), 0), steps - 1)
    e = min(max(int(math.ceil(end / duration * steps)) - 1, s), steps - 1)
    return s, e


class NLQFeatures(Dataset):
    """One item per query: video features (T, D), query token states (L, Dt) + mask, label steps."""

    def __init__(self, queries: list[NLQQuery], feature_dir: str | Path, text: torch.Tensor, text_mask: torch.Tensor,
                 max_len: int = 256) -> None:
        self.queries, self.dir, self.max_len = queries, Path(feature_dir), max_len
        self.text, self.text_mask = text, text_mask
        meta_path = self.dir / FEATURES_META
        if not meta_path.is_file():
            raise DataError(f"{meta_path} not found: extract features with `egokit embed` (or let the task do it)")
        meta = json.loads(meta_path.read_text())
        self.videos = meta["videos"]
        self.fusion = meta["recipe"]["mode"] == "fusion"

    def __len__(self) -> int:
        return len(self.queries)

    def _video(self, q: NLQQuery) -> torch.Tensor:
        entry = self.videos.get(q.clip_uid)
        if entry is None:
            raise DataError(f"no features for clip {q.clip_uid} in {self.dir}; re-run the extraction")
        feats = torch.load(self.dir / entry["file"], map_location="cpu", weights_only=True, mmap=True)
        if self.fusion:
            keys = entry.get("queries") or []
            if q.key not in keys:
                raise DataError(f"{self.dir / entry['file']}: no features for query {q.key}")
            feats = feats[keys.index(q.key)]
        if feats.shape[0] == 0:
            raise DataError(f"clip {q.clip_uid} is shorter than one feature window")
        return resample(feats.float(), self.max_len)

    def __getitem__(self, index: int) -> dict[str, Any]:
        q = self.queries[index]
        video = self._video(q)
        s, e = time_to_steps(q.start, q.end, q.duration, len(video))
        return {"video": video, "text": self.text[index].float(), "text_mask": self.text_mask[index],
                "start": s, "end": e, "index": index}


def collate(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    steps = max(b["video"].shape[0] for b in batch)
    video = torch.zeros(len(batch), steps, batch[0]["video"].shape[1])
    mask = torch.zeros(len(batch), steps, dtype=torch.bool)
    for i, b in enumerate(batch):
        video[i, :len(b["video"])] = b["video"]
        mask[i, :len(b["video"])] = True
    return {"video": video, "video_mask": mask, "text": torch.stack([b["text"] for b in batch]),
            "text_mask": torch.stack([b["text_mask"] for b in batch]).bool(),
            "start": torch.tensor([b["start"] for b in batch]), "end": torch.tensor([b["end"] for b in batch]),
            "index": torch.tensor([b["index"] for b in batch])}
