"""EgoMCQ: zero-shot multiple-choice retrieval with dual, VTM and ensemble scores (fusion mode ``ensemble``).

Scores per candidate clip k: dual = cos(text, video_k) (the retrieval family's clip and text encoders);
VTM = softmax(fusion logits)[match]; ensemble = dual + VTM (the paper's reported number). Accuracy is reported
separately for inter-video (types = 1) and intra-video (types = 2) questions, labelled correctly (the official
code swapped them before its PR #14).

``egokit train egomcq`` continues pretraining (EgoNCE + MLM + VTM, the pretraining engine) on the EgoClip-format
narrations of the same data folder (``egoclip.csv`` + ``videos/``), evaluates EgoMCQ every ``finetune.eval_every``
steps and at the end, and keeps the best checkpoint by ``finetune.select`` in ``OUT/checkpoint``. EgoMCQ itself
has no training split: this is domain adaptation, and the questions must come from videos the narrations do not
cover (``egokit synth`` keeps them apart). The engine's training checkpoints (``OUT/checkpoints``, every
``finetune.checkpoint_every`` steps, default once per epoch, and on a stop signal) carry the best-so-far record,
so ``--resume latest`` continues bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from egokit.tasks.api import ConfigError, DataError, FinetuneOptions, MetricSpec, Task, TaskResult

__all__ = ["EgoMCQ", "EgoMCQFinetune", "EgoMCQOptions"]

SCORES = ("dual", "vtm", "ensemble")


@dataclass
class EgoMCQFinetune(FinetuneOptions):
    """Continued pretraining; the loss weights, temperature and sampling are the pretraining defaults."""

    epochs: int = 1
    batch_size: int = 16            # positives per process (doubled by scene-aware negatives)
    lr: Optional[float] = 3e-5
    lr_mult_head: float = 4.0       # heads and cross-modal layers x4, as the official pretraining
    lr_mult_cross: float = 4.0
    warmup: float = 0.1
    select: Optional[str] = "ensemble.inter"
    eval_every: int = 0             # steps between EgoMCQ evaluations (0: only at the end)
    egoclip: str = "egoclip.csv"    # narrations under data
    hflip: float = 0.5


@dataclass
class EgoMCQOptions:
    data: Optional[str] = None          # folder with egomcq.json and videos/<video_uid>/<chunk>.mp4
    annotations: Optional[str] = None   # defaults to <data>/egomcq.json
    videos: Optional[str] = None        # defaults to <data>/videos
    num_frames: int = 16
    chunk_seconds: float = 600.0
    batch_size: int = 2                 # questions per forward (x5 clips)
    num_workers: int = 2
    limit: Optional[int] = None         # evaluate N evenly spaced questions
    finetune: EgoMCQFinetune = field(default_factory=EgoMCQFinetune)

    def paths(self) -> tuple[Path, Path]:
        if self.annotations is None and self.data is None:
            raise ConfigError("egomcq needs data=<folder with egomcq.json and videos/> (or annotations= and videos=)")
        annotations = Path(self.annotations) if self.annotations else Path(self.data) / "egomcq.json"
        videos = Path(self.videos) if self.videos else Path(self.data) / "videos"
        return annotations, videos


def score_questions(model, tokenizer, batch: dict) -> dict[str, Any]:
    """Dual and VTM scores (B, K) for a batch of questions with K candidate clips each."""
    import torch.nn.functional as F

    from egokit.tasks.api import encode_clips, prepare_video, tokenize_texts

    device = next(model.parameters()).device
    videos = batch["videos"]  # (B, K, F, 3, H, W) uint8
    b, k = videos.shape[:2]
    clips = videos.flatten(0, 1)
    ids, mask = tokenize_texts(tokenizer, batch["text"], max_length=None, padding="longest")
    ids, mask = ids.to(device), mask.to(device)
    text = model.encode_text(ids, mask).float()
    video = encode_clips(model, clips).reshape(b, k, -1)
    dual = F.cosine_similarity(text[:, None], video, dim=-1)
    logits = model.vtm_logits(prepare_video(clips, model, device), ids.repeat_interleave(k, 0),
                              mask.repeat_interleave(k, 0))
    vtm = logits.float().softmax(-1)[:, 1].reshape(b, k)
    return {"dual": dual, "vtm": vtm, "answer": batch["answer"].to(device), "type": batch["type"].to(device)}


class EgoMCQ(Task):
    name = "egomcq"
    description = "EgoMCQ: pick the clip (of 5) that matches a narration; inter- and intra-video accuracy"
    fusion_mode = "ensemble"
    metrics = tuple(MetricSpec(f"{s}.{t}") for s in ("ensemble", "dual", "vtm") for t in ("inter", "intra"))
    Options = EgoMCQOptions
    recipe = "egomcq.yaml"

    def validate(self, options: EgoMCQOptions) -> None:
        every = options.finetune.checkpoint_every
        if every is not None and every < 1:
            raise ConfigError(f"finetune.checkpoint_every must be a positive number of steps, or null (once per "
                              f"epoch), got {every}")
        if options.data is None and options.annotations is None:
            return  # reported when the task runs (listing and health checks have no data)
        annotations, videos = options.paths()
        if not annotations.is_file():
            raise DataError(f"EgoMCQ annotations not found: {annotations} (set data= or annotations=)")

    def evaluate(self, ctx, options: EgoMCQOptions) -> TaskResult:
        import torch

        from egokit.tasks.api import EgoMCQDataset, EvalTransform, egomcq_accuracy, map_dataset

        annotations, videos = options.paths()
        model = ctx.load_model(num_frames=options.num_frames)
        tokenizer = ctx.load_tokenizer(model)
        dataset = EgoMCQDataset(annotations, videos, num_frames=options.num_frames, chunk_seconds=options.chunk_seconds,
                                transform=EvalTransform(model.config.preprocess.image_size))
        if options.limit is not None and options.limit < len(dataset):
            # Evenly spaced, so a quick evaluation still covers inter- and intra-video questions.
            step = len(dataset) / options.limit
            dataset = torch.utils.data.Subset(dataset, [int(i * step) for i in range(options.limit)])
        with ctx.progress("EgoMCQ questions", total=len(dataset)) as bar:
            out = map_dataset(ctx.accelerator, dataset, lambda batch: score_questions(model, tokenizer, batch),
                              batch_size=options.batch_size, num_workers=options.num_workers, progress=bar)
        scores = {"dual": out["dual"], "vtm": out["vtm"], "ensemble": out["dual"] + out["vtm"]}
        metrics: dict[str, Any] = {name: egomcq_accuracy(s.numpy(), out["answer"].numpy(), out["type"].numpy())
                                   for name, s in scores.items()}
        metrics["num_questions"] = {"inter": int((out["type"] == 1).sum()), "intra": int((out["type"] == 2).sum())}
        return TaskResult(metrics)

    def train(self, ctx, options: EgoMCQOptions) -> TaskResult:
        from egokit.tasks.api import pretrain_loop

        ft = options.finetune
        if options.data is None:
            raise ConfigError("egomcq training needs data=<folder with egoclip.csv, egomcq.json and videos/>")
        if ctx.checkpoint is None:
            raise ConfigError("egokit train egomcq continues from a checkpoint: pass --ckpt SOURCE")
        recipe = {
            "output_dir": str(ctx.output_dir),
            "model": {"checkpoint": ctx.checkpoint, "overrides": dict(ctx.model_overrides)},
            "data": {"root": options.data, "egoclip": ft.egoclip, "num_frames": options.num_frames,
                     "chunk_seconds": options.chunk_seconds, "batch_size": ft.batch_size,
                     "num_workers": options.num_workers, "policy": "strict", "hflip": ft.hflip},
            "optim": {"lr": ft.lr, "weight_decay": ft.weight_decay, "betas": list(ft.betas), "eps": ft.eps,
                      "lr_mult_head": ft.lr_mult_head, "lr_mult_cross": ft.lr_mult_cross, "warmup": ft.warmup,
                      "schedule": ft.schedule, "clip_grad": ft.clip_grad},
            "train": {"epochs": ft.epochs, "max_steps": ft.max_steps, "seed": ctx.seed, "log_every": ft.log_every,
                      "precision": "fp32", "checkpoint_every": ft.checkpoint_every or 0},  # 0: once per epoch
        }
        evaluator = _SelfEvaluation(self, ctx, options)
        result = pretrain_loop(recipe, evaluator=lambda _recipe, _console: evaluator, console=ctx.console,
                               resume=ctx.resume)
        return TaskResult({"best": evaluator.best.best, "steps": result.steps,
                           "final_losses": result.final_losses},
                          artifacts={"checkpoint": str(evaluator.best.folder), "model": str(result.model_dir)})


    def synth(self, out: Path, *, seed: int = 0) -> dict[str, Any]:
        """``egokit synth``'s EgoClip + EgoMCQ data (narrations for ``train``, questions on held-out videos), small."""
        from egokit.tasks.api import SynthConfig, synth_egoclip

        summary = synth_egoclip(out, SynthConfig(videos=24, val_videos=6, duration=20.0, size=64, fps=10,
                                                 chunk_seconds=10.0, questions=40, seed=seed), workers=1)
        return {"videos": summary.train_videos, "questions": summary.questions,
                "options": {"data": str(out), "chunk_seconds": 10.0, "num_frames": 4}}


class _SelfEvaluation:
    """EgoMCQ on the in-memory model during continued pretraining; the best checkpoint is kept on disk."""

    def __init__(self, task: EgoMCQ, ctx, options: EgoMCQOptions) -> None:
        from egokit.tasks.api import BestCheckpoint, save_pretrained, selection_metric

        self.task, self.ctx, self.options = task, ctx, options
        self.model = self.tokenizer = None
        self.best = BestCheckpoint(ctx, selection_metric(task, options), ctx.path("checkpoint"),
                                   lambda tmp: save_pretrained(self.model, tmp, tokenizer=self.tokenizer))

    def due(self, step: int, total: int) -> bool:
        every = self.options.finetune.eval_every
        return bool(every) and step % every == 0

    def state_dict(self) -> dict[str, Any]:  # saved in the engine's training checkpoints
        return self.best.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best.load_state_dict(state)

    def __call__(self, accelerator, model, tokenizer, step: int, final: bool) -> dict[str, Any]:
        from egokit.tasks.api import TaskContext

        self.model, self.tokenizer = model, tokenizer
        ctx = TaskContext(accelerator=accelerator, checkpoint=None, output_dir=self.ctx.output_dir,
                          fusion_mode=self.task.fusion_mode, console=self.ctx.console, model=model,
                          tokenizer=tokenizer, task_name=self.task.name)
        metrics = self.task.evaluate(ctx, self.options).metrics
        self.best.update(metrics, epoch=0, step=step)
        return {self.task.name: metrics}
