"""The retrieval family: clips and texts -> dual-mode embeddings -> similarity -> metric, and contrastive
fine-tuning with best-epoch selection.

A retrieval task provides its data (:meth:`RetrievalTask.retrieval_data`: a dataset of uint8 clips, the texts
to embed, the ground truth) and its metric (:meth:`RetrievalTask.score`); for fine-tuning, a training dataset and
a loss on the all-gathered embeddings. Everything else is here: each clip and each text is embedded exactly once
(sharded over processes, results in dataset order), similarity, progress, validation after every epoch and the
best checkpoint on disk. EK-100 MIR, Charades-Ego and the task template are retrieval tasks; EgoMCQ uses the same
clip/text encoders for its dual score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from egokit.engine.finetune_options import FinetuneOptions
from egokit.tasks.base import Task, TaskResult
from egokit.tasks.options import DataOptions

__all__ = ["RetrievalData", "RetrievalOptions", "RetrievalTask", "cosine_similarity", "encode_clips",
           "fit_text_length"]


@dataclass
class RetrievalOptions(DataOptions):
    """Options every retrieval task has; a task subclasses it (and ``FinetuneOptions`` for ``finetune``)."""

    num_frames: int = 16
    eval_batch_size: int = 8        # clips per forward pass
    text_batch_size: int = 256
    num_workers: int = 2
    limit: Optional[int] = None     # evaluate only the first N items
    finetune: FinetuneOptions = field(default_factory=FinetuneOptions)


@dataclass
class RetrievalData:
    """What a retrieval task evaluates on.

    ``videos`` yields ``{"index": i, "video": uint8 (F, 3, H, W), ...}``; the keys in ``carry`` (e.g. a
    ``target`` tensor) are collected in dataset order with the embeddings and passed to ``score``. ``texts`` are
    embedded once each, padded ``text_padding`` (``longest`` or ``max_length``) up to ``text_length`` tokens
    (``None``: the model's text length). ``truth`` is whatever ``score`` compares against; ``details`` is recorded
    in the results file."""

    videos: Any
    texts: Sequence[str]
    truth: Any = None
    text_length: int | None = None
    text_padding: str = "longest"
    carry: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


def fit_text_length(length: int, model) -> int:
    """``length`` capped to the model's position table (RoBERTa positions start after the pad id)."""
    cfg = model.config
    return min(length, cfg.max_text_positions - cfg.pad_token_id - 1)


def encode_clips(model, video_uint8):
    """uint8 clips (B, F, 3, H, W) from a loader -> float32 projected dual-mode embeddings (B, P)."""
    from egokit.engine.features import prepare_video

    device = next(model.parameters()).device
    return model.encode_video(prepare_video(video_uint8, model, device)).float()


def cosine_similarity(video, text):
    """(Nv, P), (Nt, P) -> (Nv, Nt) cosine similarities (float32, on the CPU)."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        return F.normalize(video.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T


class RetrievalTask(Task):
    """Base class of dual-encoder retrieval tasks (see the module docstring)."""

    fusion_mode = "dual"
    Options = RetrievalOptions
    checkpoint_dir = "checkpoint"  # the best fine-tuned model, under the output folder

    # ------------------------------------------------------------------------------- what a task provides
    def retrieval_data(self, ctx, options, model) -> RetrievalData:
        raise NotImplementedError

    def score(self, similarity, data: RetrievalData, carried: dict[str, Any]) -> dict[str, Any]:
        """Metrics from the (n_videos, n_texts) similarity matrix (numpy)."""
        raise NotImplementedError

    def similarity(self, video, text):
        return cosine_similarity(video, text)

    def validation_data(self, ctx, options, model) -> RetrievalData:
        """What fine-tuning validates on after every epoch (default: the evaluation data)."""
        return self.retrieval_data(ctx, options, model)

    def train_data(self, ctx, options, model, tokenizer):
        """Training items: ``video`` (uint8), ``input_ids``, ``attention_mask`` and any extra tensors the loss
        reads (gathered from every process, in order)."""
        raise NotImplementedError(f"task {self.name!r} defines no training data")

    def loss(self, text, video, extras: dict[str, Any], options):
        """The loss on all-gathered embeddings of the global batch (row i of ``text`` pairs with row i of
        ``video``)."""
        raise NotImplementedError(f"task {self.name!r} defines no loss")

    # --------------------------------------------------------------------------------------------- the core
    def metrics_for(self, ctx, model, tokenizer, data: RetrievalData, options, progress=None) -> dict[str, Any]:
        """Embed every clip and text once, score them, return the task's metrics."""
        from egokit.engine.features import encode_texts, map_dataset

        device = next(model.parameters()).device

        def embed(batch: dict) -> dict:
            return {"video": encode_clips(model, batch["video"]), **{k: batch[k].to(device) for k in data.carry}}

        out = map_dataset(ctx.accelerator, data.videos, embed, batch_size=options.eval_batch_size,
                          num_workers=options.num_workers, progress=progress)
        text = encode_texts(model, tokenizer, list(data.texts), max_length=data.text_length,
                            batch_size=options.text_batch_size, padding=data.text_padding, device=device)
        similarity = self.similarity(out.pop("video"), text)
        return self.score(similarity.numpy(), data, out)

    def evaluate(self, ctx, options) -> TaskResult:
        model = ctx.load_model(num_frames=options.num_frames)
        tokenizer = ctx.load_tokenizer(model)
        data = self.retrieval_data(ctx, options, model)
        with ctx.progress(f"{self.name}: videos", total=len(data.videos)) as bar:
            metrics = self.metrics_for(ctx, model, tokenizer, data, options, progress=bar)
        return TaskResult(metrics, details=data.details)

    def train(self, ctx, options) -> TaskResult:
        """Contrastive fine-tuning; validates after every epoch and keeps the best checkpoint (by
        ``finetune.select``) in ``OUT/checkpoint``. Training checkpoints go to ``OUT/train_state`` (every
        ``finetune.checkpoint_every`` steps, default each epoch's end, and on a stop signal); ``ctx.resume``
        continues from one bit for bit."""
        from egokit.checkpoint import save_pretrained
        from egokit.engine.finetune import finetune
        from egokit.results import flatten_metrics
        from egokit.tasks.objectives import DualEncoderObjective
        from egokit.tasks.options import selection_metric
        from egokit.tasks.selection import BestCheckpoint

        model = ctx.load_model(num_frames=options.num_frames)
        tokenizer = ctx.load_tokenizer(model)
        dataset = self.train_data(ctx, options, model, tokenizer)
        val = self.validation_data(ctx, options, model)
        folder = ctx.path(self.checkpoint_dir)
        best = BestCheckpoint(ctx, selection_metric(self, options), folder,
                              lambda tmp: save_pretrained(model, tmp, tokenizer=tokenizer))

        def validate(module, epoch: int, step: int) -> dict[str, Any]:
            with ctx.progress(f"{self.name}: validation", total=len(val.videos)) as bar:
                metrics = self.metrics_for(ctx, module.model, tokenizer, val, options, progress=bar)
            best.update(metrics, epoch, step)
            ctx.log(step, {f"val/{k}": v for k, v in flatten_metrics(metrics).items()})
            return metrics

        objective = DualEncoderObjective(model, lambda t, v, e: self.loss(t, v, e, options))
        run = finetune(ctx.accelerator, objective, dataset, options.finetune, seed=ctx.seed,
                       num_workers=options.num_workers, validate=validate, progress=ctx.progress,
                       on_log=lambda step, rec: ctx.log(step, {"train/loss": rec["loss"], "lr": rec["lr"]}),
                       checkpoints=ctx.training_checkpoints(best=best))
        return TaskResult({"best": best.best, "steps": run.steps}, artifacts={"checkpoint": str(folder)},
                          details=val.details, history=run.history)
