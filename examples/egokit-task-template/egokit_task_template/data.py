"""The template task's data: ``captions.csv`` / ``train.csv`` (``video,caption``) and the videos they name."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from egokit.tasks.api import (COLOUR_RGB, DataError, colour_segments_video, probe_video, read_clip, tokenize_texts,
                              write_csv_atomic)


def read_captions(folder: Path, name: str = "captions.csv") -> list[tuple[Path, str]]:
    """``(video path, caption)`` of every row of ``folder/name``."""
    path = folder / name
    if not path.is_file():
        raise DataError(f"{path} not found: the template task needs data=<folder with {name} and videos>")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"video", "caption"} <= set(reader.fieldnames):
            raise DataError(f"{path}: needs the columns 'video' and 'caption', found {reader.fieldnames}")
        rows = [(folder / row["video"], row["caption"]) for row in reader]
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


class CaptionedVideos(Dataset):
    """``{"index", "video"}``: ``num_frames`` frames over each whole video (``uniform`` bin middles, or ``rand``
    for training), transformed; given a ``tokenizer``, also the caption's ``input_ids`` and ``attention_mask``."""

    def __init__(self, rows: list[tuple[Path, str]], num_frames: int, transform, *, sampling: str = "uniform",
                 tokenizer=None, max_length: int | None = None) -> None:
        self.rows, self.num_frames, self.transform, self.sampling = rows, num_frames, transform, sampling
        self.tokenizer, self.max_length = tokenizer, max_length

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, caption = self.rows[index]
        if not path.is_file():
            raise DataError(f"video missing: {path} (row {index + 1})")
        # torch's RNG is seeded per worker and per epoch by the DataLoader, so 'rand' frames are reproducible
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()))) if self.sampling == "rand" else None
        clip = read_clip(path, 0.0, probe_video(path).duration, self.num_frames, sampling=self.sampling, rng=rng)
        item = {"index": index, "video": self.transform(clip)}
        if self.tokenizer is not None:
            ids, mask = tokenize_texts(self.tokenizer, [caption], self.max_length)
            item.update(input_ids=ids[0], attention_mask=mask[0])
        return item


def write_synthetic(out: Path, *, seed: int = 0, colours: int = 4, train_per_colour: int = 3) -> dict[str, Any]:
    """One-second solid-colour videos captioned with their colour: ``captions.csv`` (one video per colour) and
    ``train.csv`` (``train_per_colour`` each), videos under ``videos/``."""
    names = list(COLOUR_RGB)[:colours]
    files = {"captions.csv": ("test", [(name, 0) for name in names]),
             "train.csv": ("train", [(name, k + 1) for k in range(train_per_colour) for name in names])}
    for csv_name, (prefix, items) in files.items():
        rows = []
        for i, (name, take) in enumerate(items):
            video = f"videos/{prefix}{i:03d}_{name}.mp4"
            colour_segments_video(out / video, [(COLOUR_RGB[name], 1.0)], seed=seed * 1000 + 10 * i + take)
            rows.append((video, f"the screen is {name}"))
        write_csv_atomic(out / csv_name, ["video", "caption"], rows)
    return {"videos": sum(len(items) for _, items in files.values()), "captions": len(names),
            "options": {"data": str(out), "finetune.epochs": 2, "finetune.batch_size": 4, "finetune.lr": 1e-3},
            "texts": [f"the screen is {name}" for name in names]}
