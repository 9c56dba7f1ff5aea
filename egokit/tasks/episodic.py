"""Ego4D episodic-memory files (NLQ, MQ, ...) and the per-clip feature sequences their heads read.

Both benchmarks ship one JSON layout, ``videos -> clips -> annotations -> ...`` with clip-relative times and the
clip's span in ``video_start_sec`` / ``video_end_sec``, and both heads read one feature sequence per clip from an
``egokit embed`` folder, batched with padding. This module holds that shared part so a task keeps only what is its
own (which fields an annotation has, what an item carries).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from egokit.errors import DataError

__all__ = ["TIME_TOLERANCE", "FeatureFolder", "check_time_window", "pad_sequences", "read_episodic_annotations"]

T = TypeVar("T")

#: Slack for annotation times rounded to frames (seconds: one frame at 20 fps); anything further outside the clip
#: is an annotation error.
TIME_TOLERANCE = 0.05


def check_time_window(start: float, end: float, duration: float, where: str, *,
                      fields: tuple[str, str] = ("start", "end"), noun: str = "window") -> None:
    """An annotated ``[start, end]`` must be finite, ordered and inside ``[0, duration]`` (within
    :data:`TIME_TOLERANCE`); else a :class:`DataError` naming ``where`` and the file's field names."""
    first, second = fields
    if not (math.isfinite(start) and math.isfinite(end)):
        raise DataError(f"{where}: {first} / {second} must be finite numbers, got {start} / {end}")
    if end < start:
        raise DataError(f"{where}: {second} {end} is before {first} {start}; fix the annotation")
    if start < -TIME_TOLERANCE or end > duration + TIME_TOLERANCE:
        raise DataError(f"{where}: {noun} [{start}, {end}] s is outside the clip (0 to {duration:g} s, from "
                        "video_start_sec / video_end_sec); fix the annotation")


def read_episodic_annotations(path: str | Path, what: str,
                              read_clip: Callable[[dict, float, str], T]) -> tuple[dict[str, Any], list[T]]:
    """The parsed file and ``read_clip(clip, duration, where)`` of each of its clips, in file order.

    ``what`` names the benchmark in errors ("NLQ"); ``where`` locates the clip in the file for the task's own
    errors. A missing file, invalid JSON, a file without ``videos`` and a clip missing a field (or with a value of
    the wrong type) are :class:`DataError` naming the file and the clip.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise DataError(f"{path}: not an official {what} file (no 'videos' list)")
    out = []
    for v, video in enumerate(data["videos"]):
        for c, clip in enumerate(video.get("clips", [])):
            where = f"{path}: videos[{v}].clips[{c}]"
            try:
                duration = float(clip["video_end_sec"]) - float(clip["video_start_sec"])
                out.append(read_clip(clip, duration, where))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise DataError(f"{where}: malformed clip or annotation ({exc!r})") from None
    return data, out


class FeatureFolder:
    """The features of an ``egokit embed`` folder, one file per clip: ``(n_windows, D)`` for dual recipes and
    ``(n_queries, n_windows, D)`` for query-conditioned (fusion) recipes, whose query keys the metadata lists."""

    def __init__(self, path: str | Path, hint: str = "extract features with `egokit embed` (or let the task do it)"):
        from egokit.embed import META_NAME

        self.path = Path(path)
        meta_path = self.path / META_NAME
        if not meta_path.is_file():
            raise DataError(f"{meta_path} not found: {hint}")
        meta = json.loads(meta_path.read_text())
        self.videos: dict[str, dict[str, Any]] = meta["videos"]
        self.fusion = meta["recipe"]["mode"] == "fusion"

    def entry(self, uid: str) -> dict[str, Any]:
        """The clip's metadata (file, window times, query keys)."""
        entry = self.videos.get(uid)
        if entry is None:
            raise DataError(f"no features for clip {uid} in {self.path}; re-run the extraction")
        return entry

    def load(self, uid: str, query: str | None = None):
        """float32 ``(n_windows, D)``: the clip's features (for fusion recipes, those of ``query``)."""
        import torch

        entry = self.entry(uid)
        file = self.path / entry["file"]
        feats = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        if self.fusion and query is not None:
            keys = entry.get("queries") or []
            if query not in keys:
                raise DataError(f"{file}: no features for query {query}")
            feats = feats[keys.index(query)]
        if feats.shape[0] == 0:
            raise DataError(f"clip {uid} is shorter than one feature window")
        return feats.float()


def pad_sequences(sequences: Sequence, fill: float = 0.0):
    """``(B, T_max, ...)`` from tensors of shape ``(T_i, ...)``, padded with ``fill``, and the ``(B, T_max)`` bool
    mask of real steps."""
    import torch

    steps = max(len(s) for s in sequences)
    first = sequences[0]
    out = torch.full((len(sequences), steps, *first.shape[1:]), fill, dtype=first.dtype)
    mask = torch.zeros(len(sequences), steps, dtype=torch.bool)
    for i, s in enumerate(sequences):
        out[i, :len(s)] = s
        mask[i, :len(s)] = True
    return out, mask
