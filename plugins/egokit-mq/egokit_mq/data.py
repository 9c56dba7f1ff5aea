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

from egokit.tasks.api import DataError, FeatureFolder, check_time_window, pad_sequences, read_episodic_annotations


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


def _clip_moments(clip: dict, duration: float, where: str) -> MQClip:
    uid, moments = str(clip["clip_uid"]), []
    for a, ann in enumerate(clip.get("annotations", [])):
        for k, lab in enumerate(ann.get("labels", [])):
            if lab.get("primary", True):
                moment = Moment(str(lab["label"]), float(lab["start_time"]), float(lab["end_time"]))
                check_time_window(moment.start, moment.end, duration, f"{where} (clip {uid}) annotation "
                                  f"{ann.get('annotator_uid', a)} labels[{k}]", fields=("start_time", "end_time"),
                                  noun="moment")
                moments.append(moment)
    return MQClip(uid, duration, tuple(moments))


def read_annotations(path: str | Path) -> tuple[dict[str, Any], list[MQClip]]:
    """The parsed file and its clips (a clip listed twice: its moments merged), in file order."""
    data, read = read_episodic_annotations(path, "MQ", _clip_moments)
    clips: dict[str, MQClip] = {}
    for clip in read:
        old = clips.get(clip.clip_uid)
        clips[clip.clip_uid] = MQClip(clip.clip_uid, clip.duration, (*old.moments, *clip.moments)) if old else clip
    return data, list(clips.values())


def ground_truth(clips: list[MQClip]) -> list[dict[str, Any]]:
    """Records for ``mq_map`` / ``mq_recall``."""
    return [{"clip_uid": c.clip_uid, "label": m.label, "start": m.start, "end": m.end} for c in clips for m in c.moments]


class MQFeatures(Dataset):
    """One item per clip: features (T, D), step centre times (T,), per-step class targets and boundary distances,
    moments in step cells."""

    def __init__(self, clips: list[MQClip], feature_dir: str | Path, classes: list[str]) -> None:
        self.clips, self.classes = clips, classes
        self.class_index = {name: i for i, name in enumerate(classes)}
        self.features = FeatureFolder(feature_dir, "extract features with `egokit embed --recipe egovlpv2-mq`")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.clips[index]
        entry = self.features.entry(clip.clip_uid)
        times = (np.asarray(entry["window_starts"]) + np.asarray(entry["window_ends"])) / 2
        labels, dist = targets(clip, times, self.class_index)
        return {"video": self.features.load(clip.clip_uid), "times": torch.from_numpy(times).float(),
                "labels": labels, "dist": dist, "segments": segments_in_cells(clip, times, self.class_index),
                "index": index}


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
    out = {"index": torch.tensor([b["index"] for b in batch])}
    out["video"], out["mask"] = pad_sequences([b["video"] for b in batch])
    for key in ("times", "labels", "dist"):
        out[key] = pad_sequences([b[key] for b in batch])[0]
    if any("segments" in b for b in batch):  # (B, most moments, 3), rows of -1 after a clip's own
        rows = [b.get("segments", torch.zeros(0, 3)) for b in batch]
        out["segments"] = pad_sequences([torch.zeros(1, 3), *rows], fill=-1.0)[0][1:]
    return out
