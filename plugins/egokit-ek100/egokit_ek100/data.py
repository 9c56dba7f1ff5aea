"""EK-100 retrieval annotations and clip datasets (official CSVs, LaViLa/EgoVLPv2 video layout).

Clips come from ``EPIC_100_retrieval_{split}.csv`` and captions from ``EPIC_100_retrieval_{split}_sentence.csv``;
videos are ``<videos>/<participant_id>/<video_id>.MP4`` (``.mp4`` accepted). Columns are read by name (the official
loader indexes them by position, which silently breaks on a reordered file). Every missing video is reported before
any model work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from egokit.tasks.api import DataError, item_rng, probe_video, read_csv_rows, read_frames_at, slot_times
from egokit_ek100.frames import clip_frame_ids, parse_timestamp

__all__ = ["EK100Clip", "EK100ClipDataset", "EK100TrainDataset", "Positives", "find_videos", "read_clips",
           "read_sentences", "split_files"]

_CLIP_COLUMNS = ("narration_id", "participant_id", "video_id", "start_timestamp", "stop_timestamp", "narration")
_VIDEO_SUFFIXES = (".MP4", ".mp4")
_WHAT = "EK-100 annotation file"


@dataclass(frozen=True)
class EK100Clip:
    narration_id: str
    participant_id: str
    video_id: str
    start: float  # seconds
    stop: float
    narration: str


def split_files(annotations: Path, split: str) -> tuple[Path, Path]:
    """``(clips CSV, sentence CSV)`` of a split (``train`` or ``test``) in the official annotation folder."""
    return (annotations / f"EPIC_100_retrieval_{split}.csv", annotations / f"EPIC_100_retrieval_{split}_sentence.csv")


def read_clips(path: str | Path) -> list[EK100Clip]:
    path = Path(path)
    clips = []
    for line, row in enumerate(read_csv_rows(path, _CLIP_COLUMNS, _WHAT)[0], start=2):
        where = f"{path} line {line}"
        start = parse_timestamp(row["start_timestamp"], f"{where} column 'start_timestamp'")
        stop = parse_timestamp(row["stop_timestamp"], f"{where} column 'stop_timestamp'")
        if not stop > start:
            raise DataError(f"{where}: stop_timestamp {row['stop_timestamp']} is not after start_timestamp "
                            f"{row['start_timestamp']}")
        clips.append(EK100Clip(row["narration_id"], row["participant_id"], row["video_id"], start, stop,
                               row["narration"]))
    if not clips:
        raise DataError(f"{path}: no clips")
    return clips


def read_sentences(path: str | Path) -> tuple[list[str], list[str]]:
    """``(narration_ids, narrations)`` of a sentence CSV, in file order."""
    rows, _ = read_csv_rows(path, ("narration_id", "narration"), _WHAT)
    if not rows:
        raise DataError(f"{path}: no sentences")
    return [r["narration_id"] for r in rows], [r["narration"] for r in rows]


def find_videos(videos: Path, clips: list[EK100Clip]) -> dict[str, Path]:
    """``video_id -> file`` for every video the clips use; raises listing the missing ones."""
    found, missing = {}, []
    for clip in clips:
        if clip.video_id in found:
            continue
        candidates = [videos / clip.participant_id / f"{clip.video_id}{s}" for s in _VIDEO_SUFFIXES]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(str(candidates[0]))
        else:
            found[clip.video_id] = path
    if missing:
        raise DataError(f"{len(missing)} EK-100 video(s) not found, e.g. {missing[:3]} (.MP4 or .mp4); set videos= to "
                        "the folder holding <participant_id>/<video_id>.MP4 (LaViLa's video_ht256px)")
    return found


class EK100ClipDataset(Dataset):
    """uint8 clips of ``num_frames`` frames, test-style (segment middles) unless ``jitter``.

    Items: ``{"index": i, "video": (F, 3, H, W) uint8}`` after ``transform``. ``short_side`` resizes while decoding
    (the test pipeline's ``Resize(224)``). The frame rate and length of each file are probed once per worker.
    """

    def __init__(self, clips: list[EK100Clip], videos: dict[str, Path], num_frames: int, *,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, jitter: bool = False,
                 short_side: int | None = None) -> None:
        self.clips, self.videos, self.num_frames = clips, videos, num_frames
        self.transform, self.jitter, self.short_side = transform, jitter, short_side
        self._probed: dict[str, tuple[float, int]] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def frame_ids(self, index: int, rng: np.random.Generator | None = None) -> list[int]:
        clip = self.clips[index]
        fps, total = self._probe(clip.video_id)
        return clip_frame_ids(clip.start, clip.stop, fps, self.num_frames, total, jitter=self.jitter, rng=rng)

    def read(self, index: int, rng: np.random.Generator | None = None) -> torch.Tensor:
        clip = self.clips[index]
        fps, _ = self._probe(clip.video_id)
        times = slot_times(self.frame_ids(index, rng), fps)
        video = read_frames_at(self.videos[clip.video_id], times, short_side=self.short_side)
        return self.transform(video) if self.transform is not None else video

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"index": index, "video": self.read(index, item_rng(index) if self.jitter else None)}

    def _probe(self, video_id: str) -> tuple[float, int]:
        if video_id not in self._probed:
            info = probe_video(self.videos[video_id])
            self._probed[video_id] = (info.fps, info.num_frames)
        return self._probed[video_id]


@dataclass(frozen=True)
class Positives:
    """Per clip, the sentences with relevancy above the threshold and their relevancy (CSR layout)."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray

    @classmethod
    def from_matrix(cls, relevancy: np.ndarray, threshold: float) -> "Positives":
        rows, cols = np.nonzero(relevancy > threshold)
        indptr = np.zeros(relevancy.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=relevancy.shape[0]), out=indptr[1:])
        return cls(indptr, cols.astype(np.int64), relevancy[rows, cols].astype(np.float32))

    def of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[row], self.indptr[row + 1]
        return self.indices[lo:hi], self.values[lo:hi]


class EK100TrainDataset(Dataset):
    """Training pairs: a jittered clip and a caption drawn uniformly among its relevant train sentences.

    As the official loader: a caption with relevancy > threshold (0.1) is drawn, and its relevancy is the pair's
    ``relation`` (the margin weight of the ranking loss); a clip without any uses its own narration with relation 1.
    Items: ``index``, ``video`` (uint8), ``input_ids``/``attention_mask`` (padded to ``max_length``), ``relation``.
    """

    def __init__(self, clips: EK100ClipDataset, sentences: list[str], positives: Positives, tokenizer: Any,
                 max_length: int) -> None:
        if len(positives.indptr) - 1 != len(clips):
            raise DataError(f"relevancy has {len(positives.indptr) - 1} rows for {len(clips)} training clips")
        self.clips, self.sentences, self.positives = clips, sentences, positives
        self.tokenizer, self.max_length = tokenizer, max_length

    def __len__(self) -> int:
        return len(self.clips)

    def caption(self, index: int, rng: np.random.Generator) -> tuple[str, float]:
        cols, values = self.positives.of(index)
        if len(cols) == 0:
            return self.clips.clips[index].narration, 1.0
        k = int(rng.integers(len(cols)))
        return self.sentences[cols[k]], float(values[k])

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = item_rng(index)
        text, relation = self.caption(index, rng)
        enc = self.tokenizer(text, padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {"index": index, "video": self.clips.read(index, rng), "input_ids": enc["input_ids"][0],
                "attention_mask": enc["attention_mask"][0], "relation": torch.tensor(relation, dtype=torch.float32)}

