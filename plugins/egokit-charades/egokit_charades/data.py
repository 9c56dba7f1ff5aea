"""Charades-Ego annotations and datasets (official ``CharadesEgo_v1_*_only1st.csv`` and ``Charades_v1_classes.txt``).

Parsing is strict: every action must read ``cXXX start end`` with a known class and numbers, and errors name the
file, line and column (the official code splits on spaces and ``int(c[1:])``, so malformed rows fail late or not at
all). Class names are the text after the id, as the official ``[5:]`` slicing yields for ``cXXX name`` lines.

Segment clamping (training): a segment is clamped to the video's duration, as the official reader clamps the end
frame to the frame count; a segment starting at or after the end falls back to the video's last frame period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from egokit.tasks.api import DataError, item_rng, probe_video, read_clip, read_csv_rows

__all__ = ["Action", "CharadesSegmentDataset", "CharadesVideo", "find_videos", "read_classes",
           "read_metadata"]

_CLASS_LINE = re.compile(r"(c\d{3}) (\S.*)")
_ACTION = re.compile(r"(c\d{3}) (\d+(?:\.\d*)?) (\d+(?:\.\d*)?)")


@dataclass(frozen=True)
class Action:
    cls: int  # index into the class list
    start: float
    end: float


@dataclass(frozen=True)
class CharadesVideo:
    id: str
    actions: tuple[Action, ...]

    def target(self, num_classes: int) -> torch.Tensor:
        """Multi-hot float32 (num_classes,) of the video's action classes."""
        target = torch.zeros(num_classes, dtype=torch.float32)
        target[[a.cls for a in self.actions]] = 1.0
        return target


def read_classes(path: str | Path) -> tuple[list[str], list[str]]:
    """``(ids, names)`` from a ``cXXX name`` per line class file; ids must be c000, c001, ... in order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Charades class file not found: {path} (Charades_v1_classes.txt)")
    ids, names = [], []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        match = _CLASS_LINE.fullmatch(line.strip())
        if match is None:
            raise DataError(f"{path} line {line_no}: expected 'cXXX class name', got {line!r}")
        if match.group(1) != f"c{len(ids):03d}":
            raise DataError(f"{path} line {line_no}: expected class c{len(ids):03d}, got {match.group(1)}")
        ids.append(match.group(1))
        names.append(match.group(2))
    if not ids:
        raise DataError(f"{path}: no classes")
    return ids, names


def parse_actions(text: str, num_classes: int, where: str) -> tuple[Action, ...]:
    """``"c092 11.90 21.20;c147 0.00 12.60"`` -> actions; empty text -> no action."""
    text = (text or "").strip()
    if not text:
        return ()
    actions = []
    for item in text.split(";"):
        match = _ACTION.fullmatch(item.strip())
        if match is None:
            raise DataError(f"{where}: expected 'cXXX start end' items separated by ';', got {item!r}")
        cls, start, end = int(match.group(1)[1:]), float(match.group(2)), float(match.group(3))
        if cls >= num_classes:
            raise DataError(f"{where}: class {match.group(1)} is not in the class file ({num_classes} classes)")
        if end < start:
            raise DataError(f"{where}: action {item.strip()!r} ends before it starts")
        actions.append(Action(cls, start, end))
    return tuple(actions)


def read_metadata(path: str | Path, num_classes: int) -> list[CharadesVideo]:
    rows, _ = read_csv_rows(path, ("id", "actions"), "Charades-Ego metadata")
    videos = [CharadesVideo(row["id"], parse_actions(row["actions"], num_classes,
                                                     f"{path} line {line} column 'actions'"))
              for line, row in enumerate(rows, start=2)]
    if not videos:
        raise DataError(f"{path}: no videos")
    return videos


def find_videos(root: Path, ids: list[str]) -> dict[str, Path]:
    missing = [i for i in ids if not (root / f"{i}.mp4").is_file()]
    if missing:
        raise DataError(f"{len(missing)} Charades-Ego video(s) not found in {root}, e.g. "
                        f"{[str(root / f'{i}.mp4') for i in missing[:3]]}; set videos= to the folder of <id>.mp4")
    return {i: root / f"{i}.mp4" for i in ids}


class CharadesSegmentDataset(Dataset):
    """Training items, one per (video, action): ``'rand'`` frames within the segment and the class-name tokens."""

    def __init__(self, videos: list[CharadesVideo], files: dict[str, Path], class_names: list[str], num_frames: int,
                 *, transform: Callable[[torch.Tensor], torch.Tensor], tokenizer: Any, max_length: int) -> None:
        self.segments = [(v.id, a) for v in videos for a in v.actions]
        if not self.segments:
            raise DataError("the Charades-Ego training metadata has no actions")
        self.files, self.class_names, self.num_frames = files, class_names, num_frames
        self.transform, self.tokenizer, self.max_length = transform, tokenizer, max_length
        self._durations: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self.segments)

    def span(self, index: int) -> tuple[float, float]:
        """The segment clamped to the video (see module doc)."""
        video_id, action = self.segments[index]
        if video_id not in self._durations:
            info = probe_video(self.files[video_id])
            self._durations[video_id] = (info.duration, 1.0 / info.fps)
        duration, period = self._durations[video_id]
        start, end = max(0.0, action.start), min(action.end, duration)
        if not end > start:
            start, end = max(0.0, duration - period), duration
        return start, end

    def __getitem__(self, index: int) -> dict[str, Any]:
        video_id, action = self.segments[index]
        start, end = self.span(index)
        clip = read_clip(self.files[video_id], start, end, self.num_frames, sampling="rand", rng=item_rng(index))
        enc = self.tokenizer(self.class_names[action.cls], padding="max_length", truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return {"index": index, "video": self.transform(clip), "input_ids": enc["input_ids"][0],
                "attention_mask": enc["attention_mask"][0]}
