"""EK-100 MIR fine-tuning: the ranking-loss module, the run loop glue and best-checkpoint saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from egokit.checkpoint import save_pretrained_atomic
from egokit.results import flatten_metrics
from egokit.errors import ConfigError, DataError
from egokit_ek100.task import EK100Options, Split, retrieval_metrics, text_length

__all__ = ["RankingModule", "run_finetuning"]


class RankingModule(nn.Module):
    """``forward(batch) -> {"loss"}``: adaptive max-margin ranking loss over the all-gathered batch.

    Embeddings are gathered with gradients inside ``forward`` so that DDP sees the whole computation and every
    process computes the loss of the global batch (spec §5.2: the official loss also uses gathered embeddings).
    """

    def __init__(self, model: nn.Module, margin: float) -> None:
        super().__init__()
        self.model, self.margin = model, margin

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from egokit.distributed import gather_no_grad, gather_with_grad
        from egokit.engine.features import prepare_video
        from egokit.losses import max_margin_ranking_loss

        device = next(self.model.parameters()).device
        video = self.model.encode_video(prepare_video(batch["video"], self.model, device))
        text = self.model.encode_text(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        relation = gather_no_grad(batch["relation"].to(device))
        loss = max_margin_ranking_loss(gather_with_grad(text), gather_with_grad(video), relation, self.margin)
        return {"loss": loss}


def run_finetuning(ctx, options: EK100Options) -> dict[str, Any]:
    from egokit.data.transforms import TrainTransform
    from egokit.engine.finetune import FinetuneSettings, finetune
    from egokit.recipes import to_dict
    from egokit.results import write_json_atomic
    from egokit_ek100.data import EK100ClipDataset, EK100TrainDataset, Positives, find_videos, read_clips, \
        read_sentences, split_files
    from egokit_ek100.task import load_split_relevancy

    annotations, videos = options.folders()
    model = ctx.load_model(num_frames=options.num_frames)
    tokenizer = ctx.load_tokenizer(model)
    clips_csv, sentences_csv = split_files(annotations, options.train_split)
    clips = read_clips(clips_csv)
    _, sentences = read_sentences(sentences_csv)
    relevancy, relevancy_source = load_split_relevancy(options.train_relevancy, annotations, options.train_split)
    if relevancy.shape[0] != len(clips):
        raise DataError(f"train relevancy ({relevancy_source}) has {relevancy.shape[0]} rows for {len(clips)} clips")
    positives = Positives.from_matrix(relevancy, options.positive_threshold)
    del relevancy
    if options.limit_train is not None:
        clips = clips[: options.limit_train]
    size = model.config.preprocess.image_size
    train_clips = EK100ClipDataset(clips, find_videos(videos, clips), options.num_frames, jitter=True,
                                   transform=TrainTransform(size, scale=(0.5, 1.0), hflip=0.0))
    if options.limit_train is not None:
        positives = Positives(positives.indptr[: len(clips) + 1], positives.indices, positives.values)
    dataset = EK100TrainDataset(train_clips, sentences, positives, tokenizer, text_length(options, model))
    val = Split(annotations, videos, options.split, options.relevancy, options.limit)

    checkpoint = Path(ctx.output_dir) / "checkpoint"
    best: dict[str, float] = {}

    def validate(module: RankingModule) -> dict[str, float]:
        with ctx.progress(f"validation ({options.split})", total=len(val.clips)) as bar:
            metrics = flatten_metrics(retrieval_metrics(module.model, tokenizer, ctx.accelerator, val, options, progress=bar))
        if options.select not in metrics:
            raise ConfigError(f"select={options.select!r} is not a metric; choose one of {sorted(metrics)}")
        if not best or metrics[options.select] > best[options.select]:
            best.clear()
            best.update(metrics)
            if ctx.is_main:
                save_pretrained_atomic(module.model, checkpoint, tokenizer=tokenizer)
        ctx.accelerator.wait_for_everyone()
        return metrics

    settings = FinetuneSettings.from_options(options, seed=ctx.seed)
    result = finetune(ctx, RankingModule(model, options.margin), dataset, settings, evaluate=validate,
                      select=options.select)
    if ctx.is_main:
        write_json_atomic(Path(ctx.output_dir) / "ek100-mir_history.json", result["history"])
    return {"metrics": {"best": result["best"], "steps": result["steps"]},
            "config": {**to_dict(options), "relevancy_source": val.relevancy_source,
                       "train_relevancy_source": relevancy_source},
            "checkpoint": {"path": str(checkpoint)}}
