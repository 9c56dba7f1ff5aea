"""Caption retrieval on a folder of captioned videos, the smallest complete egokit task.

``<data>/captions.csv`` has one row per video (``video`` = file name relative to ``<data>``, ``caption``). Each video
is embedded once from ``num_frames`` uniform frames (eval transform) and each caption once; recall@1 is the share
of videos whose best-scoring caption is their own (v2t) and of captions whose best video is their own (t2v).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch.utils.data import Dataset

from egokit.errors import ConfigError, DataError


@dataclass
class TemplateOptions:
    data: Optional[str] = None
    num_frames: int = 4
    batch_size: int = 4
    num_workers: int = 0


def read_captions(folder: Path) -> list[tuple[Path, str]]:
    path = folder / "captions.csv"
    if not path.is_file():
        raise DataError(f"{path} not found: the template task needs data=<folder with captions.csv and videos>")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"video", "caption"} <= set(reader.fieldnames):
            raise DataError(f"{path}: needs the columns 'video' and 'caption', found {reader.fieldnames}")
        rows = [(folder / row["video"], row["caption"]) for row in reader]
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


class WholeVideos(Dataset):
    """``{"index", "video"}``: ``num_frames`` uniform frames over each whole video, eval transform applied."""

    def __init__(self, files: list[Path], num_frames: int, size: int) -> None:
        from egokit.data.transforms import EvalTransform

        self.files, self.num_frames, self.transform = files, num_frames, EvalTransform(size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from egokit.data.video import probe_video, read_clip

        path = self.files[index]
        clip = read_clip(path, 0.0, probe_video(path).duration, self.num_frames, sampling="uniform")
        return {"index": index, "video": self.transform(clip)}


def evaluate(ctx) -> dict[str, Any]:
    import torch.nn.functional as F

    from egokit.engine.features import encode_texts, map_dataset, prepare_video
    from egokit.recipes import build, read_yaml, to_dict

    defaults = read_yaml(Path(__file__).with_name("template.yaml"))
    options = build(TemplateOptions, {**defaults, **ctx.options}, where="template-retrieval")
    if options.data is None:
        raise ConfigError("template-retrieval needs data=<folder with captions.csv>")
    rows = read_captions(Path(options.data))
    model = ctx.load_model(num_frames=options.num_frames)
    tokenizer = ctx.load_tokenizer(model)
    dataset = WholeVideos([path for path, _ in rows], options.num_frames, model.config.preprocess.image_size)
    with ctx.progress("videos", total=len(dataset)) as bar:
        out = map_dataset(ctx.accelerator, dataset,
                          lambda batch: {"video": model.encode_video(prepare_video(batch["video"], model, ctx.device))},
                          batch_size=options.batch_size, num_workers=options.num_workers, progress=bar)
    text = encode_texts(model, tokenizer, [caption for _, caption in rows], device=ctx.device)
    sim = F.normalize(out["video"].float(), dim=-1) @ F.normalize(text, dim=-1).T
    target = torch.arange(len(rows))
    metrics = {"v2t_r1": 100.0 * (sim.argmax(1) == target).float().mean().item(),
               "t2v_r1": 100.0 * (sim.argmax(0) == target).float().mean().item(), "num_videos": len(rows)}
    return {"metrics": metrics, "config": to_dict(options)}
