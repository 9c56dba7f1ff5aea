"""EgoMCQ evaluation.

Scores per candidate clip k (spec §5.1): dual = cos(text, video_k); VTM = softmax(fusion logits)[match];
ensemble = dual + VTM (the paper's reported number). Accuracy is reported separately for inter-video (types = 1)
and intra-video (types = 2) questions, labelled correctly (the official code swapped them before its PR #14).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from egokit.data.egomcq import EgoMCQDataset
from egokit.data.transforms import EvalTransform
from egokit.engine.features import map_dataset, prepare_video, tokenize_texts
from egokit.errors import ConfigError
from egokit.metrics import egomcq_accuracy
from egokit.recipes import build, read_yaml, to_dict

SCORES = ("dual", "vtm", "ensemble")


@dataclass
class EgoMCQOptions:
    data: Optional[str] = None
    annotations: Optional[str] = None
    videos: Optional[str] = None
    num_frames: int = 16
    chunk_seconds: float = 600.0
    batch_size: int = 2
    num_workers: int = 2
    limit: Optional[int] = None  # evaluate N evenly spaced questions (quick checks during training)

    def paths(self) -> tuple[Path, Path]:
        if self.annotations is None and self.data is None:
            raise ConfigError("egomcq needs data=<folder with egomcq.json and videos/> (or annotations= and videos=)")
        annotations = Path(self.annotations) if self.annotations else Path(self.data) / "egomcq.json"
        videos = Path(self.videos) if self.videos else Path(self.data) / "videos"
        return annotations, videos


def default_options() -> dict:
    return read_yaml(Path(__file__).with_name("egomcq.yaml"))


def score_questions(model, tokenizer, batch: dict, device) -> dict[str, torch.Tensor]:
    """Dual and VTM scores (B, K) for a batch of questions with K candidate clips each."""
    videos = batch["videos"]  # (B, K, F, 3, H, W) uint8
    b, k = videos.shape[:2]
    clips = prepare_video(videos.flatten(0, 1), model, device)
    ids, mask = tokenize_texts(tokenizer, batch["text"], max_length=None, padding="longest")
    ids, mask = ids.to(device), mask.to(device)
    text_emb = model.encode_text(ids, mask)
    video_emb = model.encode_video(clips).reshape(b, k, -1)
    dual = F.cosine_similarity(text_emb[:, None].float(), video_emb.float(), dim=-1)
    logits = model.vtm_logits(clips, ids.repeat_interleave(k, 0), mask.repeat_interleave(k, 0))
    vtm = logits.float().softmax(-1)[:, 1].reshape(b, k)
    return {"dual": dual, "vtm": vtm, "answer": batch["answer"].to(device), "type": batch["type"].to(device)}


def evaluate(ctx) -> dict:
    options = build(EgoMCQOptions, {**default_options(), **ctx.options}, where="egomcq")
    annotations, videos = options.paths()
    model = ctx.load_model(num_frames=options.num_frames)
    tokenizer = ctx.load_tokenizer(model)
    pre = model.config.preprocess
    dataset = EgoMCQDataset(annotations, videos, num_frames=options.num_frames, chunk_seconds=options.chunk_seconds,
                            transform=EvalTransform(pre.image_size))
    if options.limit is not None and options.limit < len(dataset):
        # Evenly spaced, so a quick evaluation still covers inter- and intra-video questions.
        step = len(dataset) / options.limit
        dataset = torch.utils.data.Subset(dataset, [int(i * step) for i in range(options.limit)])
    with ctx.progress("EgoMCQ questions", total=len(dataset)) as bar:
        out = map_dataset(ctx.accelerator, dataset, lambda batch: score_questions(model, tokenizer, batch, ctx.device),
                          batch_size=options.batch_size, num_workers=options.num_workers, progress=bar)
    scores = {"dual": out["dual"], "vtm": out["vtm"], "ensemble": out["dual"] + out["vtm"]}
    metrics = {name: egomcq_accuracy(s.numpy(), out["answer"].numpy(), out["type"].numpy()) for name, s in scores.items()}
    metrics["num_questions"] = {"inter": int((out["type"] == 1).sum()), "intra": int((out["type"] == 2).sum())}
    return {"metrics": metrics, "config": to_dict(options)}
