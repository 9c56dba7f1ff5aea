"""EgoTaskQA in the official layout (the preprocessing of the EgoTaskQA baselines, as used by EgoVLPv2).

``<data>/<split>/`` (or ``<data>/qa/<split>/``) for split ``direct`` or ``indirect`` holds
``formatted_{train,val,test}_qas_encode.json`` (QA dicts with ``interval``, ``question``, ``answer_encode``,
``reasoning_type`` = '$'-joined tags) and ``answer_set.txt`` (one answer per line; line i = class i). Videos are
``<videos>/<interval>.mp4`` (default ``<data>/qa_videos``). Each item is the whole video sampled to ``num_frames``
frames with the eval transform (as officially, no augmentation). Unlike the official loader, which samples frames
at random for every split, evaluation uses deterministic 'uniform' sampling; training keeps 'rand'.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from egokit.tasks.api import DataError, EvalTransform, probe_video, read_clip

SPLITS = ("direct", "indirect")
SUBSETS = ("train", "val", "test")


def split_folder(data: str | Path, split: str) -> Path:
    """``<data>/<split>`` or ``<data>/qa/<split>``, whichever holds the files."""
    if split not in SPLITS:
        raise DataError(f"EgoTaskQA split must be one of {SPLITS}, got {split!r}")
    for folder in (Path(data) / split, Path(data) / "qa" / split):
        if (folder / "answer_set.txt").is_file():
            return folder
    raise DataError(f"no EgoTaskQA '{split}' split under {data}: expected {data}/{split}/answer_set.txt "
                    f"(or {data}/qa/{split}/) with formatted_*_qas_encode.json next to it")


def read_answer_set(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"answer set not found: {path}")
    answers = [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines()]
    while answers and not answers[-1]:
        answers.pop()
    if not answers:
        raise DataError(f"{path} is empty; it should list one answer per line")
    return answers


def read_questions(path: str | Path, num_answers: int) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"EgoTaskQA annotations not found: {path}")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a list of QA records, got {type(items).__name__}")
    out = []
    for i, item in enumerate(items):
        try:
            record = {"interval": str(item["interval"]), "question": str(item["question"]),
                      "answer": int(item["answer_encode"]), "tags": str(item["reasoning_type"]).split("$")}
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: record {i} lacks interval/question/answer_encode/reasoning_type ({exc})") from None
        if not 0 <= record["answer"] < num_answers:
            raise DataError(f"{path}: record {i} has answer_encode {record['answer']} outside the answer set "
                            f"(0..{num_answers - 1})")
        out.append(record)
    return out


class EgoTaskQADataset(Dataset):
    """Items: ``video`` uint8 (F, 3, S, S), ``question`` (stripped, lower-cased), ``answer``, ``index``."""

    def __init__(self, data: str | Path, split: str = "direct", subset: str = "test", *, videos: str | Path | None = None,
                 num_frames: int = 16, image_size: int = 224, sampling: str = "uniform") -> None:
        if subset not in SUBSETS:
            raise DataError(f"EgoTaskQA subset must be one of {SUBSETS}, got {subset!r}")
        folder = split_folder(data, split)
        self.split, self.subset, self.sampling, self.num_frames = split, subset, sampling, num_frames
        self.answers = read_answer_set(folder / "answer_set.txt")
        self.records = read_questions(folder / f"formatted_{subset}_qas_encode.json", len(self.answers))
        self.videos = Path(videos) if videos else Path(data) / "qa_videos"
        self.transform = EvalTransform(image_size)
        self._durations: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def reasoning_types(self) -> list[list[str]]:
        return [r["tags"] for r in self.records]

    def video_path(self, interval: str) -> Path:
        return self.videos / f"{interval}.mp4"

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        path = self.video_path(record["interval"])
        if not path.is_file():
            raise DataError(f"EgoTaskQA video missing: {path} (question {index}, interval {record['interval']!r})")
        if path.name not in self._durations:
            self._durations[path.name] = probe_video(path).duration
        rng = None
        if self.sampling == "rand":  # torch's RNG: seeded per worker and per epoch by the DataLoader
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
        clip = read_clip(path, 0.0, self._durations[path.name], self.num_frames, sampling=self.sampling, rng=rng)
        return {"video": self.transform(clip), "question": record["question"].strip().lower(),
                "answer": record["answer"], "index": index}


class QACollate:
    """Stacks videos and tokenises questions (padded to ``max_length``: 30 as officially, capped to the model's
    position table)."""

    def __init__(self, tokenizer, max_length: int = 30) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, items: list[dict]) -> dict:
        enc = self.tokenizer([it["question"] for it in items], padding="max_length", truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return {"video": torch.stack([it["video"] for it in items]), "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"], "answer": torch.tensor([it["answer"] for it in items]),
                "index": torch.tensor([it["index"] for it in items])}
