"""Official Ego4D Moment Queries annotations and per-clip feature sequences.

Annotations (``moments_{train,val}.json``): ``videos -> clips -> annotations -> labels`` with clip-relative
``start_time`` / ``end_time`` and a ``label`` name; like the official conversion only ``primary`` labels are kept
(a label without the field counts as primary). Classes come from a ``moment_classes_idx.json``-style map
``name -> index``; a ``Background`` entry is ignored (the head has one sigmoid per real class). Features: one
``(n_windows, D)`` file per clip from ``egokit embed``; step times are the window centres recorded in
``embed_meta.json``. Each item also carries the moments as ``segments`` in step cells (step ``i`` covers
``[i, i + 1)``, its centre time ``times[i]``) for anchor-based heads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from egokit.tasks.api import FEATURES_META, DataError


@dataclass(frozen=True)
class Moment:
    label: str
    start: float
    end: float


@dataclass(frozen=True)
class MQClip:
    clip_uid: str
    duration: float
    moments: tuple[Moment, ...]


def read_classes(path: str | Path) -> list[str]:
    """Class names ordered by index, without ``Background``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"MQ class map not found: {path} (a moment_classes_idx.json: name -> index)")
    mapping = json.loads(path.read_text())
    names = [name for name, _ in sorted(mapping.items(), key=lambda kv: kv[1]) if name.lower() != "background"]
    if not names:
        raise DataError(f"{path}: no classes")
    return names


#: Slack for annotation times rounded to frames (seconds: one frame at 20 fps); anything further outside the clip
#: is an annotation error.
TIME_TOLERANCE = 0.05


def check_moment(moment: Moment, duration: float, where: str) -> None:
    """A moment must lie inside its clip with end >= start; else a :class:`DataError` naming it."""
    if not (np.isfinite(moment.start) and np.isfinite(moment.end)):
        raise DataError(f"{where}: start_time / end_time must be finite numbers, got {moment.start} / {moment.end}")
    if moment.end < moment.start:
        raise DataError(f"{where}: end_time {moment.end} is before start_time {moment.start}; fix the annotation")
    if moment.start < -TIME_TOLERANCE or moment.end > duration + TIME_TOLERANCE:
        raise DataError(f"{where}: moment [{moment.start}, {moment.end}] s is outside the clip (0 to {duration:g} s, "
                        "from video_start_sec / video_end_sec); fix the annotation")


def read_annotations(path: str | Path) -> tuple[dict[str, Any], list[MQClip]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"MQ annotation file not found: {path}")
    data = json.loads(path.read_text())
    if "videos" not in data:
        raise DataError(f"{path}: not an official MQ file (no 'videos' list)")
    clips: dict[str, MQClip] = {}
    for v, video in enumerate(data["videos"]):
        for c, clip in enumerate(video.get("clips", [])):
            where = f"{path}: videos[{v}].clips[{c}]"
            try:
                uid = str(clip["clip_uid"])
                duration = float(clip["video_end_sec"]) - float(clip["video_start_sec"])
                moments = []
                for a, ann in enumerate(clip.get("annotations", [])):
                    for k, lab in enumerate(ann.get("labels", [])):
                        if not lab.get("primary", True):
                            continue
                        moment = Moment(str(lab["label"]), float(lab["start_time"]), float(lab["end_time"]))
                        check_moment(moment, duration, f"{where} (clip {uid}) annotation "
                                     f"{ann.get('annotator_uid', a)} labels[{k}]")
                        moments.append(moment)
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{where}: malformed clip or label ({exc!r})") from None
            if uid in clips:
                moments = [*clips[uid].moments, *moments]
            clips[uid] = MQClip(uid, duration, tuple(moments))
    return data, list(clips.values())


def ground_truth(clips: list[MQClip]) -> list[dict[str, Any]]:
    """Records for ``mq_map`` / ``mq_recall``."""
    return [{"clip_uid": c.clip_uid, "label": m.label, "start": m.start, "end": m.end} for c in clips for m in c.moments]


class MQFeatures(Dataset):
    """One item per clip: features (T, D), step centre times (T,), per-step class targets and boundary distances,
    moments in step cells."""

    def __init__(self, clips: list[MQClip], feature_dir: str | Path, classes: list[str]) -> None:
        self.clips, self.dir, self.classes = clips, Path(feature_dir), classes
        self.class_index = {name: i for i, name in enumerate(classes)}
        meta_path = self.dir / FEATURES_META
        if not meta_path.is_file():
            raise DataError(f"{meta_path} not found: extract features with `egokit embed --recipe egovlpv2-mq`")
        self.videos = json.loads(meta_path.read_text())["videos"]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.clips[index]
        entry = self.videos.get(clip.clip_uid)
        if entry is None:
            raise DataError(f"no features for clip {clip.clip_uid} in {self.dir}; re-run the extraction")
        feats = torch.load(self.dir / entry["file"], map_location="cpu", weights_only=True).float()
        times = (np.asarray(entry["window_starts"]) + np.asarray(entry["window_ends"])) / 2
        labels, dist = targets(clip, times, self.class_index)
        return {"video": feats, "times": torch.from_numpy(times).float(), "labels": labels, "dist": dist,
                "segments": segments_in_cells(clip, times, self.class_index), "index": index}


def segments_in_cells(clip: MQClip, times: np.ndarray, class_index: dict[str, int]) -> torch.Tensor:
    """(n, 3) rows (start, end, class) of the clip's known-class moments in step cells: a time ``t`` maps to
    ``(t - times[0]) / step + 0.5`` with ``step`` the mean spacing of the step centres (as the MQ task uses)."""
    step = max(float(times[-1] - times[0]) / max(len(times) - 1, 1), 1e-3)  # = egokit_mq.heads.step_seconds
    rows = [((m.start - times[0]) / step + 0.5, (m.end - times[0]) / step + 0.5, class_index[m.label])
            for m in clip.moments if m.label in class_index]
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 3)


def targets(clip: MQClip, times: np.ndarray, class_index: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per step: multi-hot classes of the moments containing its time and the (s, e) distances in seconds to the
    boundaries of the shortest such moment (ActionFormer-style assignment; steps outside all moments: zeros)."""
    labels = torch.zeros(len(times), len(class_index))
    dist = torch.zeros(len(times), 2)
    best = np.full(len(times), np.inf)
    for m in clip.moments:
        if m.label not in class_index:
            continue
        inside = (times >= m.start) & (times <= m.end)
        labels[torch.from_numpy(inside), class_index[m.label]] = 1.0
        shorter = inside & ((m.end - m.start) < best)
        best[shorter] = m.end - m.start
        idx = torch.from_numpy(np.flatnonzero(shorter))
        dist[idx, 0] = torch.from_numpy(times[shorter] - m.start).float()
        dist[idx, 1] = torch.from_numpy(m.end - times[shorter]).float()
    return labels, dist


def collate(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    steps = max(len(b["video"]) for b in batch)
    out = {"video": torch.zeros(len(batch), steps, batch[0]["video"].shape[1]),
           "mask": torch.zeros(len(batch), steps, dtype=torch.bool),
           "times": torch.zeros(len(batch), steps),
           "labels": torch.zeros(len(batch), steps, batch[0]["labels"].shape[1]),
           "dist": torch.zeros(len(batch), steps, 2)}
    for i, b in enumerate(batch):
        n = len(b["video"])
        out["video"][i, :n], out["mask"][i, :n], out["times"][i, :n] = b["video"], True, b["times"]
        out["labels"][i, :n], out["dist"][i, :n] = b["labels"], b["dist"]
    most = max((len(b["segments"]) for b in batch if "segments" in b), default=0)
    if any("segments" in b for b in batch):
        out["segments"] = torch.full((len(batch), max(most, 1), 3), -1.0)
        for i, b in enumerate(batch):
            out["segments"][i, :len(b["segments"])] = b["segments"]
    out["index"] = torch.tensor([b["index"] for b in batch])
    return out
