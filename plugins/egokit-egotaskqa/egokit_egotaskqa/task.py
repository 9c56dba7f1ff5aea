"""EgoTaskQA training and evaluation.

Deliberate differences from the official ``main_end2end.py`` (spec §8.1 item 23): evaluation samples frames
deterministically ('uniform' bin middles) instead of at random, and the best epoch is selected on the
*validation* split (the official code keeps the epoch with the best *test* accuracy and reports it); the test split
is evaluated once, with the selected weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from egokit.engine.features import map_dataset
from egokit.engine.finetune import FinetuneSettings, finetune
from egokit.errors import CheckpointError, ConfigError
from egokit.metrics import taskqa_accuracy
from egokit.recipes import build, read_yaml, to_dict

from egokit_egotaskqa.data import EgoTaskQADataset, QACollate
from egokit_egotaskqa.model import TaskQAHead, TaskQAModel, build_head_from, load_head_state, save_taskqa


@dataclass
class EgoTaskQAOptions:
    data: Optional[str] = None
    videos: Optional[str] = None
    split: str = "direct"  # direct | indirect
    subset: str = "test"  # evaluation subset: val | test
    num_frames: int = 16
    sampling: str = "uniform"  # evaluation sampling
    train_sampling: str = "rand"
    max_length: int = 30
    batch_size: int = 8
    num_workers: int = 2
    limit: Optional[int] = None
    # training
    epochs: int = 36
    max_steps: Optional[int] = None
    lr: float = 2e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: float = 0.1
    clip_grad: Optional[float] = None
    log_every: int = 50

    def check(self) -> None:
        if self.data is None:
            raise ConfigError("egotaskqa needs data=<folder with direct/ or indirect/ and qa_videos/> (or --data)")
        if self.split not in ("direct", "indirect"):
            raise ConfigError(f"egotaskqa.split must be direct or indirect, got {self.split!r}")
        if self.sampling not in ("uniform", "rand") or self.train_sampling not in ("uniform", "rand"):
            raise ConfigError("egotaskqa.sampling/train_sampling must be 'uniform' or 'rand'")


def default_options() -> dict:
    return read_yaml(Path(__file__).with_name("egotaskqa.yaml"))


def _options(ctx) -> EgoTaskQAOptions:
    options = build(EgoTaskQAOptions, {**default_options(), **ctx.options}, where="egotaskqa")
    options.check()
    return options


def _dataset(options: EgoTaskQAOptions, subset: str, image_size: int, sampling: str):
    dataset = EgoTaskQADataset(options.data, options.split, subset, videos=options.videos,
                               num_frames=options.num_frames, image_size=image_size, sampling=sampling)
    return dataset


@torch.no_grad()
def predict(ctx, module: TaskQAModel, dataset: EgoTaskQADataset, collate: QACollate, options: EgoTaskQAOptions,
            limit: int | None = None) -> dict:
    """Predicted and true answers of every question, with the per-tag accuracy (percent)."""
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
    return {"all": per_tag.get(dataset.split, 0.0), "open": per_tag.get("open"), "binary": per_tag.get("binary"),
            "per_tag": per_tag, "num_questions": len(subset), "pred": out["pred"], "answer": out["answer"]}


def _public(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("pred", "answer") and v is not None}


def _head_for(model, source: str | None, num_answers: int) -> TaskQAHead:
    folder = getattr(model, "source_path", None) or source
    state = load_head_state(folder) if folder is not None else None
    if state is None:
        raise CheckpointError(f"{source}: no EgoTaskQA head (head.safetensors or official projector_1/2 keys); "
                              "fine-tune one first: egokit train egotaskqa recipes/egotaskqa.yaml --ckpt ...")
    return build_head_from(state, model.config.width, num_answers, str(folder))


def evaluate(ctx) -> dict:
    options = _options(ctx)
    backbone = ctx.load_model(num_frames=options.num_frames)
    tokenizer = ctx.load_tokenizer(backbone)
    dataset = _dataset(options, options.subset, backbone.config.preprocess.image_size, options.sampling)
    head = _head_for(backbone, ctx.checkpoint, len(dataset.answers)).to(ctx.device)
    module = TaskQAModel(backbone, head).eval()
    metrics = predict(ctx, module, dataset, QACollate(tokenizer, options.max_length), options, options.limit)
    return {"metrics": _public(metrics), "config": to_dict(options)}


def train(ctx) -> dict:
    """Fine-tune end to end on train, select the epoch on val, evaluate test once, save the model + head."""
    options = _options(ctx)
    backbone = ctx.load_model(num_frames=options.num_frames)
    tokenizer = ctx.load_tokenizer(backbone)
    size = backbone.config.preprocess.image_size
    train_set = _dataset(options, "train", size, options.train_sampling)
    val_set = _dataset(options, "val", size, options.sampling)
    test_set = _dataset(options, "test", size, options.sampling)
    collate = QACollate(tokenizer, options.max_length)
    module = TaskQAModel(backbone.train(), TaskQAHead(backbone.config.width, len(train_set.answers)).to(ctx.device))
    settings = FinetuneSettings.from_options(options, seed=ctx.seed)
    result = finetune(ctx, module, train_set, settings, collate_fn=collate,
                      evaluate=lambda m: _public(predict(ctx, m, val_set, collate, options)), select="all",
                      head_names=("projector",))
    module = result["module"]
    if result["best_state"] is not None:
        module.load_state_dict(result["best_state"])
    test = _public(predict(ctx, module, test_set, collate, options))
    folder = Path(ctx.output_dir) / "checkpoint"
    if ctx.is_main:
        save_taskqa(module, folder, tokenizer, train_set.answers,
                    {"split": options.split, "best_epoch": (result["best"] or {}).get("epoch")})
    best_val = {k: v for k, v in (result["best"] or {}).items() if k != "per_tag"}
    return {"metrics": {"val": best_val, "test": test, "steps": result["steps"]}, "config": to_dict(options),
            "checkpoint": {"path": str(folder)}}
