"""A small Accelerate fine-tuning loop shared by task plugins.

The module passed in computes its own loss in ``forward(batch) -> {"loss": tensor, ...}`` so that DDP/Accelerate
wrappers see the whole computation; other scalar entries are logged. Evaluation runs after every epoch; the best
state by ``select`` (a metric name, higher is better) is kept, on the *validation* data the task provides.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch.utils.data import DataLoader, Dataset

from egokit.engine.optim import adamw, param_groups, warmup_cosine


@dataclass
class FinetuneSettings:
    epochs: int = 1
    max_steps: Optional[int] = None
    batch_size: int = 16
    num_workers: int = 2
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    lr_mult_head: float = 1.0
    lr_mult_cross: float = 1.0
    warmup: float = 0.1
    schedule: str = "cosine"
    clip_grad: Optional[float] = None
    log_every: int = 10
    seed: int = 0

    @classmethod
    def from_options(cls, options: Any, **overrides: Any) -> "FinetuneSettings":
        """Take every setting a task's options dataclass also declares (same name), then ``overrides``."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {n: getattr(options, n) for n in names if hasattr(options, n)}
        return cls(**{**values, **overrides})


def finetune(ctx, module: torch.nn.Module, dataset: Dataset, settings: FinetuneSettings, *,
             collate_fn: Callable | None = None, evaluate: Callable[[torch.nn.Module], dict] | None = None,
             select: str | None = None, head_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train ``module`` on ``dataset``; returns {"history": [...], "best": {...}, "best_state": state_dict|None}."""
    accelerator = ctx.accelerator
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True, drop_last=len(dataset) > settings.batch_size,
                        num_workers=settings.num_workers, collate_fn=collate_fn, generator=generator,
                        pin_memory=accelerator.device.type == "cuda")
    steps_per_epoch = max(1, len(loader) // max(1, accelerator.num_processes))
    total = settings.max_steps or settings.epochs * steps_per_epoch
    groups = param_groups(module, settings.lr, settings.weight_decay, lr_mult_head=settings.lr_mult_head,
                          lr_mult_cross=settings.lr_mult_cross, head_names=head_names)
    optimizer = adamw(groups, lr=settings.lr, betas=settings.betas, eps=settings.eps, device=accelerator.device)
    scheduler = warmup_cosine(optimizer, int(settings.warmup * total), total, settings.schedule)
    module, optimizer, loader = accelerator.prepare(module, optimizer, loader)
    history, best, best_state, step = [], None, None, 0
    start = time.perf_counter()
    with ctx.progress("fine-tuning", total=total) as bar:
        for epoch in range(settings.epochs if settings.max_steps is None else 10**9):
            module.train()
            for batch in loader:
                with accelerator.autocast():
                    out = module(batch)
                accelerator.backward(out["loss"])
                if settings.clip_grad:
                    accelerator.clip_grad_norm_(module.parameters(), settings.clip_grad)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                bar.advance(1, description=f"fine-tuning loss {out['loss'].item():.4f}")
                if step % settings.log_every == 0 or step == total:
                    history.append({"step": step, "epoch": epoch, "loss": float(out["loss"].detach()),
                                    "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - start})
                if step >= total:
                    break
            if evaluate is not None:
                module.eval()
                metrics = evaluate(accelerator.unwrap_model(module))
                history.append({"step": step, "epoch": epoch, "eval": metrics})
                if select is not None and (best is None or metrics[select] > best[select]):
                    best = dict(metrics, epoch=epoch, step=step)
                    best_state = {k: v.detach().cpu().clone() for k, v in accelerator.unwrap_model(module).state_dict().items()}
            if step >= total:
                break
    return {"history": history, "best": best, "best_state": best_state, "steps": step,
            "module": accelerator.unwrap_model(module)}


def fit_epochs(head: torch.nn.Module, loader, loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor],
               optimizer: torch.optim.Optimizer, schedule, *, epochs: int, device: torch.device | str = "cpu",
               clip_norm: float = 1.0, on_step: Callable[[float], None] | None = None) -> float:
    """Plain single-process loop for small heads trained on precomputed features (NLQ, MQ): per batch move it to
    ``device``, ``loss_fn(head, batch)``, backward, clip, step the optimizer and the per-step ``schedule``.
    Returns the last loss; ``on_step(loss)`` drives progress bars."""
    last = float("nan")
    for _ in range(epochs):
        head.train()
        for batch in loader:
            loss = loss_fn(head, {k: v.to(device) for k, v in batch.items()})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), clip_norm)
            optimizer.step()
            schedule.step()
            last = float(loss.detach())
            if on_step is not None:
                on_step(last)
    return last
