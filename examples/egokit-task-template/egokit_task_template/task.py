"""Caption retrieval on a folder of captioned videos: the smallest complete egokit task.

``<data>/captions.csv`` has a header ``video,caption`` and one row per video (``video`` = file path relative to
``<data>``). egokit's retrieval family does the work: each video is embedded once from ``num_frames`` uniform
frames, each caption once, and :meth:`TemplateRetrieval.score` turns the (videos x captions) cosine similarities
into recall@1: the share of videos whose best caption is their own (v2t) and of captions whose best video is their
own (t2v). ``egokit train`` fine-tunes contrastively on ``<data>/train.csv`` (same columns), validates on
``captions.csv`` after every epoch and keeps the best model in ``OUT/checkpoint``.

This module must stay cheap to import: ``egokit tasks`` imports it to list the task, so torch and the dataset
module are imported inside the methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from egokit.tasks.api import (ConfigError, FinetuneOptions, MetricSpec, RetrievalData, RetrievalOptions,
                              RetrievalTask)

__all__ = ["TemplateFinetune", "TemplateOptions", "TemplateRetrieval"]


@dataclass
class TemplateFinetune(FinetuneOptions):
    """Training settings (``finetune.KEY=VALUE``): the common ones, new defaults, and the task's own."""

    epochs: int = 5
    batch_size: int = 8
    lr: Optional[float] = 1e-4
    select: Optional[str] = "t2v_r1"
    captions: str = "train.csv"     # training videos and captions, under data
    temperature: float = 0.05       # symmetric InfoNCE
    max_text_length: int = 15


@dataclass
class TemplateOptions(RetrievalOptions):
    """The task's options (``KEY=VALUE``); ``RetrievalOptions`` brings data, num_frames, eval_batch_size,
    text_batch_size, num_workers, limit and finetune."""

    captions: str = "captions.csv"  # evaluated videos and captions, under data
    num_frames: int = 4
    eval_batch_size: int = 4
    num_workers: int = 0
    finetune: TemplateFinetune = field(default_factory=TemplateFinetune)


class TemplateRetrieval(RetrievalTask):
    name = "template-retrieval"
    description = "Caption retrieval on a folder of captioned videos: recall@1 video-to-text and text-to-video"
    metrics = (MetricSpec("v2t_r1", description="recall@1 (%), video to caption"),
               MetricSpec("t2v_r1", description="recall@1 (%), caption to video"))
    Options = TemplateOptions
    recipe = "template.yaml"

    def validate(self, options: TemplateOptions) -> None:
        if options.data is None:
            raise ConfigError("template-retrieval needs data=<folder with captions.csv> (or --data)")

    # evaluation: the videos and captions, then the metric on their similarities
    def retrieval_data(self, ctx, options: TemplateOptions, model) -> RetrievalData:
        from egokit.tasks.api import EvalTransform
        from egokit_task_template.data import CaptionedVideos, read_captions

        rows = read_captions(Path(options.data), options.captions)[: options.limit]
        videos = CaptionedVideos(rows, options.num_frames, EvalTransform(model.config.preprocess.image_size))
        return RetrievalData(videos, [caption for _, caption in rows], text_padding="max_length")

    def score(self, similarity, data: RetrievalData, carried: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        own = np.arange(len(similarity))  # row i (video i) goes with column i (its caption)
        return {"v2t_r1": 100.0 * float((similarity.argmax(1) == own).mean()),
                "t2v_r1": 100.0 * float((similarity.argmax(0) == own).mean()), "num_videos": len(similarity)}

    # fine-tuning: training items (video + caption tokens) and the loss on the gathered embeddings
    def train_data(self, ctx, options: TemplateOptions, model, tokenizer):
        from egokit.tasks.api import TrainTransform, fit_text_length
        from egokit_task_template.data import CaptionedVideos, read_captions

        ft = options.finetune
        rows = read_captions(Path(options.data), ft.captions)
        return CaptionedVideos(rows, options.num_frames, TrainTransform(model.config.preprocess.image_size),
                               sampling="rand", tokenizer=tokenizer,
                               max_length=fit_text_length(ft.max_text_length, model))

    def loss(self, text, video, extras: dict[str, Any], options: TemplateOptions):
        from egokit.tasks.api import info_nce_loss

        return info_nce_loss(text, video, options.finetune.temperature)

    # `egokit synth --task template-retrieval OUT`: a small dataset in this task's format
    def synth(self, out: Path, *, seed: int = 0) -> dict[str, Any]:
        from egokit_task_template.data import write_synthetic

        return write_synthetic(Path(out), seed=seed)
