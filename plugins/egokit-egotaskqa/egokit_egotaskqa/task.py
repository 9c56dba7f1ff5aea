"""EgoTaskQA: answer a question about a clip (fusion mode), accuracy per reasoning type (task ``egotaskqa``).

Evaluation reads each question's whole video (``num_frames`` frames, eval transform), fuses it with the question
(lower-cased, padded to ``max_length`` tokens) and classifies the fused video CLS over the answer set with the
fine-tuned head. Metrics are percentages: ``all`` (the tag equal to the split name, the official "All"), ``open``,
``binary`` and ``per_tag`` (every reasoning tag).

Fine-tuning trains backbone and head end to end with cross-entropy on ``train``, validates on ``val`` after every
epoch, keeps the best epoch (by ``finetune.select``) in ``OUT/checkpoint`` and evaluates ``test`` once with it;
training checkpoints go to ``OUT/train_state`` and ``egokit train egotaskqa ... --resume latest`` continues one.
Deliberate differences from the official ``main_end2end.py``: evaluation samples frames deterministically
('uniform' bin middles) instead of at random, and the epoch is selected on *validation* data (the official code
keeps the epoch with the best *test* accuracy and reports it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from egokit.tasks.api import ConfigError, FinetuneOptions, MetricSpec, Task, TaskResult

__all__ = ["EgoTaskQA", "EgoTaskQAFinetune", "EgoTaskQAOptions"]

SAMPLINGS = ("uniform", "rand")


@dataclass
class EgoTaskQAFinetune(FinetuneOptions):
    """Official: AdamW (PyTorch defaults, wd 0.01), cosine with 10 % warm-up over 36 epochs, lr 2e-4 direct /
    1e-4 indirect, 8 per GPU x 8 GPUs."""

    epochs: int = 36
    batch_size: int = 8             # questions per process
    lr: Optional[float] = 2e-4      # 1e-4 for split=indirect
    betas: tuple[float, float] = (0.9, 0.999)
    log_every: int = 50
    select: Optional[str] = "all"
    sampling: str = "rand"          # training frame sampling, as officially


@dataclass
class EgoTaskQAOptions:
    data: Optional[str] = None      # folder with direct/ (or indirect/) and qa_videos/
    videos: Optional[str] = None    # defaults to <data>/qa_videos
    split: str = "direct"           # direct | indirect
    subset: str = "test"            # evaluated subset: test | val | train
    num_frames: int = 16
    sampling: str = "uniform"       # evaluation frame sampling (official: rand)
    max_length: int = 30
    batch_size: int = 8             # evaluation questions per process
    num_workers: int = 2
    limit: Optional[int] = None     # evaluate only the first N questions
    finetune: EgoTaskQAFinetune = field(default_factory=EgoTaskQAFinetune)


class EgoTaskQA(Task):
    name = "egotaskqa"
    description = "EgoTaskQA: answer questions about a clip (fusion mode); accuracy per reasoning type"
    fusion_mode = "fusion"
    metrics = (MetricSpec("all", description="accuracy (%) over the split's questions"),
               MetricSpec("open", description="accuracy (%) of open questions"),
               MetricSpec("binary", description="accuracy (%) of yes/no questions"),
               MetricSpec("per_tag", description="accuracy (%) per reasoning tag (a mapping)"))
    Options = EgoTaskQAOptions
    recipe = "egotaskqa.yaml"
    trained_model = "checkpoint"  # evaluation needs the fine-tuned model and its QA head

    def validate(self, options: EgoTaskQAOptions) -> None:
        if options.data is None:
            raise ConfigError("egotaskqa needs data=<folder with direct/ or indirect/ and qa_videos/> (or --data)")
        if options.split not in ("direct", "indirect"):
            raise ConfigError(f"egotaskqa.split must be direct or indirect, got {options.split!r}")
        if options.subset not in ("train", "val", "test"):
            raise ConfigError(f"egotaskqa.subset must be train, val or test, got {options.subset!r}")
        if options.sampling not in SAMPLINGS or options.finetune.sampling not in SAMPLINGS:
            raise ConfigError("egotaskqa.sampling and finetune.sampling must be 'uniform' or 'rand'")
        if options.finetune.select == "per_tag":
            raise ConfigError("egotaskqa: finetune.select must name one accuracy: all, open or binary")
        from egokit_egotaskqa.data import split_folder

        split_folder(options.data, options.split)  # a missing split is reported before a model is loaded

    # --------------------------------------------------------------------------------------------- evaluate
    def evaluate(self, ctx, options: EgoTaskQAOptions) -> TaskResult:
        from egokit_egotaskqa.model import TaskQAModel, load_taskqa_head

        backbone = ctx.load_model(num_frames=options.num_frames)
        tokenizer = ctx.load_tokenizer(backbone)
        dataset = _dataset(options, options.subset, backbone, options.sampling)
        source = getattr(backbone, "source_path", None) or ctx.checkpoint
        head = load_taskqa_head(source, backbone.config.width, len(dataset.answers)).to(ctx.device)
        module = TaskQAModel(backbone, head).eval()
        metrics = predict(ctx, module, dataset, _collate(tokenizer, options, backbone), options, options.limit)
        return TaskResult(metrics)

    # ------------------------------------------------------------------------------------------------ train
    def train(self, ctx, options: EgoTaskQAOptions) -> TaskResult:
        from egokit.tasks.api import BestCheckpoint, TaskContext, finetune, flatten_metrics, selection_metric
        from egokit_egotaskqa.model import TaskQAHead, TaskQAModel, save_taskqa

        ft = options.finetune
        backbone = ctx.load_model(num_frames=options.num_frames)
        tokenizer = ctx.load_tokenizer(backbone)
        train_set = _dataset(options, "train", backbone, ft.sampling)
        val_set = _dataset(options, "val", backbone, options.sampling)
        collate = _collate(tokenizer, options, backbone)
        module = TaskQAModel(backbone.train(), TaskQAHead(backbone.config.width, len(train_set.answers)).to(ctx.device))
        folder = ctx.path("checkpoint")
        best = BestCheckpoint(ctx, selection_metric(self, options), folder,
                              lambda tmp: save_taskqa(module, tmp, tokenizer, train_set.answers, split=options.split,
                                                      best_epoch=best.best["epoch"]))

        def validate(unwrapped, epoch: int, step: int) -> dict[str, Any]:
            metrics = predict(ctx, unwrapped, val_set, collate, options)
            best.update(metrics, epoch, step)
            ctx.log(step, {f"val/{k}": v for k, v in flatten_metrics(metrics).items()})
            return metrics

        run = finetune(ctx.accelerator, module, train_set, ft, seed=ctx.seed, num_workers=options.num_workers,
                       collate_fn=collate, validate=validate, head_names=("projector",), progress=ctx.progress,
                       on_log=lambda step, rec: ctx.log(step, {"train/loss": rec["loss"], "lr": rec["lr"]}),
                       checkpoints=ctx.training_checkpoints(best=best))
        # The test split, once, with the selected weights: the saved folder, exactly as `egokit eval` reads it.
        saved = TaskContext(accelerator=ctx.accelerator, checkpoint=str(folder), output_dir=ctx.output_dir,
                            fusion_mode=self.fusion_mode, seed=ctx.seed, console=ctx.console,
                            model_overrides=dict(ctx.model_overrides), tokenizer=tokenizer, task_name=self.name)
        test = self.evaluate(saved, dataclasses.replace(options, subset="test", limit=None)).metrics
        best_val = {k: v for k, v in best.best.items() if not k.startswith("per_tag.")}
        return TaskResult({"val": best_val, "test": test, "steps": run.steps}, artifacts={"checkpoint": str(folder)},
                          details={"best_epoch": best.best["epoch"]}, history=run.history)

    def synth(self, out: Path, *, seed: int = 0) -> dict[str, Any]:
        """One-object videos whose questions ask for the object's colour (see :mod:`egokit_egotaskqa.synth`)."""
        from egokit_egotaskqa.synth import generate

        return generate(out, seed=seed)


def _dataset(options: EgoTaskQAOptions, subset: str, model, sampling: str):
    from egokit_egotaskqa.data import EgoTaskQADataset

    return EgoTaskQADataset(options.data, options.split, subset, videos=options.videos, num_frames=options.num_frames,
                            image_size=model.config.preprocess.image_size, sampling=sampling)


def _collate(tokenizer, options: EgoTaskQAOptions, model):
    from egokit.tasks.api import fit_text_length
    from egokit_egotaskqa.data import QACollate

    return QACollate(tokenizer, fit_text_length(options.max_length, model))


def predict(ctx, module, dataset, collate, options: EgoTaskQAOptions, limit: int | None = None) -> dict[str, Any]:
    """Accuracy (percent) over every question (``map_dataset`` runs without gradients): ``all``, ``open``,
    ``binary`` (when such questions exist), ``per_tag`` and ``num_questions``."""
    import torch

    from egokit.tasks.api import map_dataset, taskqa_accuracy

    subset = dataset if limit is None else torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    module.eval()

    def step(batch: dict) -> dict:
        batch = {k: v.to(ctx.device) for k, v in batch.items()}
        return {"pred": module(batch)["logits"].argmax(-1), "answer": batch["answer"]}

    with ctx.progress(f"EgoTaskQA {dataset.split}/{dataset.subset}", total=len(subset)) as bar:
        out = map_dataset(ctx.accelerator, subset, step, batch_size=options.batch_size,
                          num_workers=options.num_workers, collate_fn=collate, progress=bar)
    tags = dataset.reasoning_types[:len(subset)]
    per_tag = {k: 100.0 * v for k, v in taskqa_accuracy(out["pred"].numpy(), out["answer"].numpy(), tags).items()}
    metrics = {"all": per_tag.get(dataset.split, 0.0), "open": per_tag.get("open"), "binary": per_tag.get("binary"),
               "per_tag": per_tag, "num_questions": len(subset)}
    return {k: v for k, v in metrics.items() if v is not None}
