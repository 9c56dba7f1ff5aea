"""Fine-tuning settings (no torch import: task option classes nest them and are read when tasks are listed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["FinetuneOptions"]


@dataclass
class FinetuneOptions:
    """Training settings, nested in a task's options as ``finetune`` (``finetune.lr=1e-4`` on the command line).

    Tasks subclass it to change defaults or add their own training settings (a loss margin, a temperature).
    ``lr`` ``None`` means "the chosen head's own default" for tasks with several heads. ``select`` is the metric
    (one of the task's) that picks the best epoch on validation data; ``None``: the task's headline metric.
    ``checkpoint_every`` is the number of optimizer steps between the training checkpoints that ``egokit train
    TASK --resume latest`` continues from (``None``: at the end of every epoch); one is also written at the end of
    the run and when a stop signal arrives."""

    epochs: int = 1
    max_steps: Optional[int] = None
    batch_size: int = 16
    lr: Optional[float] = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    warmup: float = 0.1
    schedule: str = "cosine"
    clip_grad: Optional[float] = None
    lr_mult_head: float = 1.0
    lr_mult_cross: float = 1.0
    log_every: int = 10
    checkpoint_every: Optional[int] = None
    select: Optional[str] = None
