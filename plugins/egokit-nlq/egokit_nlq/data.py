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

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from egokit.tasks.api import FeatureFolder, check_time_window, pad_sequences, read_episodic_annotations


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


def _clip_queries(clip: dict, duration: float, where: str) -> list[NLQQuery]:
    queries = []
    for ann in clip["annotations"]:
        for q, query in enumerate(ann.get("language_queries", []) or []):
            if not isinstance(query, dict) or query.get("query") is None:
                continue
            start = float(query.get("clip_start_sec", 0.0) or 0.0)
            end = float(query.get("clip_end_sec", start) or start)
            check_time_window(start, end, duration, f"{where} (clip {clip['clip_uid']}) annotation "
                              f"{ann['annotation_uid']} language_queries[{q}]",
                              fields=("clip_start_sec", "clip_end_sec"))
            queries.append(NLQQuery(str(clip["clip_uid"]), str(ann["annotation_uid"]), q, str(query["query"]),
                                    start, end, duration))
    return queries


def read_annotations(path: str | Path) -> tuple[dict[str, Any], list[NLQQuery]]:
    """The parsed file and its queries (those with text), in file order."""
    data, per_clip = read_episodic_annotations(path, "NLQ", _clip_queries)
    return data, [q for queries in per_clip for q in queries]


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
        self.queries, self.features, self.max_len = queries, FeatureFolder(feature_dir), max_len
        self.text, self.text_mask = text, text_mask

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        q = self.queries[index]
        video = resample(self.features.load(q.clip_uid, q.key), self.max_len)
        s, e = time_to_steps(q.start, q.end, q.duration, len(video))
        return {"video": video, "text": self.text[index].float(), "text_mask": self.text_mask[index],
                "start": s, "end": e, "index": index}


def collate(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    video, mask = pad_sequences([b["video"] for b in batch])
    return {"video": video, "video_mask": mask, "text": torch.stack([b["text"] for b in batch]),
            "text_mask": torch.stack([b["text_mask"] for b in batch]).bool(),
            **{k: torch.tensor([b[k] for b in batch]) for k in ("start", "end", "index")}}
