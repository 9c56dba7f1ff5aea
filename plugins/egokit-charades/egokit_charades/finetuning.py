"""Charades-Ego fine-tuning: the InfoNCE module, the run loop glue and best-checkpoint saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from egokit.checkpoint import save_pretrained_atomic
from egokit_charades.task import CharadesOptions, capped_length, charades_metrics, eval_dataset, metadata_path

__all__ = ["ContrastiveModule", "run_finetuning"]


class ContrastiveModule(nn.Module):
    """``forward(batch) -> {"loss"}``: symmetric InfoNCE between clips and class names over the gathered batch.

    As officially, two segments of the same class in one batch are negatives of each other.
    """

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model, self.temperature = model, temperature

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from egokit.distributed import gather_with_grad
        from egokit.engine.features import prepare_video
        from egokit.losses import info_nce_loss

        device = next(self.model.parameters()).device
        video = self.model.encode_video(prepare_video(batch["video"], self.model, device))
        text = self.model.encode_text(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        return {"loss": info_nce_loss(gather_with_grad(text), gather_with_grad(video), self.temperature)}


def run_finetuning(ctx, options: CharadesOptions) -> dict[str, Any]:
    from egokit.data.transforms import TrainTransform
    from egokit.engine.finetune import FinetuneSettings, finetune
    from egokit.recipes import to_dict
    from egokit.results import write_json_atomic
    from egokit_charades.data import CharadesSegmentDataset, find_videos, read_classes, read_metadata

    annotations, videos, classes = options.folders()
    _, class_names = read_classes(classes)
    model = ctx.load_model(num_frames=options.num_frames)
    tokenizer = ctx.load_tokenizer(model)
    metadata = read_metadata(metadata_path(annotations, options.train_split), len(class_names))[: options.limit_train]
    size = model.config.preprocess.image_size
    dataset = CharadesSegmentDataset(metadata, find_videos(videos, [v.id for v in metadata]), class_names,
                                     options.num_frames, transform=TrainTransform(size), tokenizer=tokenizer,
                                     max_length=capped_length(options.max_text_length, model))
    val = eval_dataset(options, model, len(class_names), options.limit)
    checkpoint = Path(ctx.output_dir) / "checkpoint"
    best: dict[str, float] = {}

    def validate(module: ContrastiveModule) -> dict[str, float]:
        with ctx.progress(f"validation ({options.split})", total=len(val)) as bar:
            metrics = charades_metrics(module.model, tokenizer, ctx.accelerator, val, class_names, options,
                                       progress=bar)
        if not best or metrics["mAP"] > best["mAP"]:
            best.clear()
            best.update(metrics)
            if ctx.is_main:
                save_pretrained_atomic(module.model, checkpoint, tokenizer=tokenizer)
        ctx.accelerator.wait_for_everyone()
        return metrics

    settings = FinetuneSettings.from_options(options, seed=ctx.seed)
    result = finetune(ctx, ContrastiveModule(model, options.temperature), dataset, settings, evaluate=validate,
                      select="mAP")
    if ctx.is_main:
        write_json_atomic(Path(ctx.output_dir) / "charades-ego_history.json", result["history"])
    return {"metrics": {"best": result["best"], "steps": result["steps"]}, "config": to_dict(options),
            "checkpoint": {"path": str(checkpoint)}}
