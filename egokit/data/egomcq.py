"""EgoMCQ evaluation data: the official ``egomcq.json`` questions and a dataset yielding all choices' clips.

Format (spec §4.7): a JSON object keyed ``"0" .. "N-1"``; each value holds a ``query`` clip record, ``choices``
keyed ``"0" .. "K-1"`` (K = 5 officially), the ``answer`` choice index and ``types`` (1 = inter-video: choices
from different videos, 2 = intra-video: choices from one video). Clip records carry at least ``video_uid``,
``clip_start``, ``clip_end`` and ``clip_text``; tag strings, when present, must be lists of ints.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from egokit.data.egoclip import NUM_NOUNS, NUM_VERBS, parse_tag_list
from egokit.data.video import ChunkedVideo, read_clip
from egokit.errors import ConfigError, DataError

__all__ = ["INTER_VIDEO", "INTRA_VIDEO", "ClipRecord", "EgoMCQDataset", "MCQuestion", "read_egomcq_json"]

INTER_VIDEO = 1  # the five choices come from five different videos
INTRA_VIDEO = 2  # the five choices come from the same video (needs the action, not the scene)


@dataclass(frozen=True)
class ClipRecord:
    """One clip of a question: where it is and what its narration says."""

    video_uid: str
    clip_start: float
    clip_end: float
    clip_text: str
    tag_verb: tuple[int, ...] = ()
    tag_noun: tuple[int, ...] = ()


@dataclass(frozen=True)
class MCQuestion:
    key: str
    query: ClipRecord
    choices: tuple[ClipRecord, ...]
    answer: int
    type: int


def _clip(value: Any, where: str) -> ClipRecord:
    if not isinstance(value, Mapping):
        raise DataError(f"{where}: expected a clip record object, got {type(value).__name__}")
    for name in ("video_uid", "clip_start", "clip_end", "clip_text"):
        if name not in value:
            raise DataError(
                f"{where}: missing field {name!r}; clip records need video_uid, clip_start, clip_end, clip_text"
            )
    uid, text = value["video_uid"], value["clip_text"]
    if not isinstance(uid, str) or not uid or "/" in uid or uid in (".", ".."):
        raise DataError(f"{where}.video_uid: {uid!r} is not a valid video id")
    if not isinstance(text, str):
        raise DataError(f"{where}.clip_text: expected a string, got {type(text).__name__}")
    times = []
    for name in ("clip_start", "clip_end"):
        raw = value[name]
        try:
            number = float(raw) if not isinstance(raw, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise DataError(f"{where}.{name}: {raw!r} is not a finite number of seconds")
        times.append(number)
    tags = [
        parse_tag_list(value[name], size, f"{where}.{name}") if name in value else ()
        for name, size in (("tag_verb", NUM_VERBS), ("tag_noun", NUM_NOUNS))
    ]
    return ClipRecord(uid, times[0], times[1], text, tags[0], tags[1])


def read_egomcq_json(path: str | os.PathLike) -> list[MCQuestion]:
    """Parse and validate an egomcq.json; errors name the file, question key and field."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"EgoMCQ file {path} does not exist; pass the path of egomcq.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); expected the official egomcq.json object") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: top level must be an object keyed \"0\"..\"N-1\", got {type(data).__name__}")
    expected = [str(i) for i in range(len(data))]
    if sorted(data, key=lambda k: (len(k), k)) != expected:
        odd = sorted(set(data) - set(expected))[:3] or sorted(set(expected) - set(data))[:3]
        raise DataError(f"{path}: question keys must be \"0\"..\"{len(data) - 1}\"; offending key(s) {odd}")
    questions = []
    for key in expected:
        where = f"{path}: question {key!r}"
        entry = data[key]
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object, got {type(entry).__name__}")
        for name in ("query", "choices", "answer", "types"):
            if name not in entry:
                raise DataError(f"{where}: missing field {name!r}")
        choices = entry["choices"]
        if not isinstance(choices, dict) or len(choices) < 2:
            raise DataError(f"{where}.choices: expected an object with at least 2 choices keyed \"0\", \"1\", ...")
        choice_keys = [str(i) for i in range(len(choices))]
        if set(choices) != set(choice_keys):
            raise DataError(f"{where}.choices: keys must be \"0\"..\"{len(choices) - 1}\", got {sorted(choices)}")
        answer, qtype = entry["answer"], entry["types"]
        if type(answer) is not int or not 0 <= answer < len(choices):
            raise DataError(f"{where}.answer: {answer!r} is not a choice index in [0, {len(choices)})")
        if type(qtype) is not int or qtype not in (INTER_VIDEO, INTRA_VIDEO):
            raise DataError(f"{where}.types: {qtype!r} must be 1 (inter-video) or 2 (intra-video)")
        questions.append(
            MCQuestion(
                key=key,
                query=_clip(entry["query"], f"{where}.query"),
                choices=tuple(_clip(choices[k], f"{where}.choices[{k!r}]") for k in choice_keys),
                answer=answer,
                type=qtype,
            )
        )
    return questions


class EgoMCQDataset(Dataset):
    """EgoMCQ items: ``text`` (query narration), ``videos`` uint8 (K,F,3,S,S), ``answer``, ``type``, ``index``.

    Frames are sampled with ``'uniform'`` (bin middles), so items are deterministic. ``transform(video)`` is an
    eval transform (e.g. ``EvalTransform``); it must give every choice the same size so the choices stack.
    """

    def __init__(
        self,
        json_path: str | os.PathLike,
        video_root: str | os.PathLike,
        *,
        num_frames: int = 4,
        chunk_seconds: float = 600.0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        short_side: int | None = None,
    ) -> None:
        if num_frames < 1:
            raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
        self.json_path = Path(json_path)
        self.questions = read_egomcq_json(self.json_path)
        self.video_root = Path(video_root)
        if not self.video_root.is_dir():
            raise DataError(f"video root {self.video_root} is not a folder; expected <root>/<video_uid>/<chunk>.mp4")
        self.num_frames = num_frames
        self.chunk_seconds = float(chunk_seconds)
        self.transform = transform
        self.short_side = short_side

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} EgoMCQ questions")
        q = self.questions[index]
        videos = [self._load(q, k, clip) for k, clip in enumerate(q.choices)]
        return {
            "text": q.query.clip_text,
            "videos": torch.stack(videos),
            "answer": q.answer,
            "type": q.type,
            "index": index,
        }

    def _load(self, q: MCQuestion, k: int, clip: ClipRecord) -> torch.Tensor:
        start, end = max(clip.clip_start, 0.0), max(clip.clip_end, 0.0)
        source = ChunkedVideo(self.video_root, clip.video_uid, self.chunk_seconds)
        try:
            video = read_clip(source, start, end, self.num_frames, sampling="uniform", short_side=self.short_side)
        except DataError as exc:
            raise type(exc)(
                f"{self.json_path}: question {q.key!r} choice {k} ({clip.video_uid} [{start:.3f}, {end:.3f}] s): {exc}"
            ) from exc
        return self.transform(video) if self.transform is not None else video
