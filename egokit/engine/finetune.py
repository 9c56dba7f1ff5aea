"""Fine-tuning loops shared by the task families.

:func:`finetune` trains a module end to end with Accelerate (the module computes its own loss in
``forward(batch) -> {"loss": tensor, ...}`` so that DDP/Accelerate wrappers see the whole computation) and calls
``validate(module, epoch, step)`` after every epoch; what to keep is the caller's decision (the task core saves
the best checkpoint to disk, never a copy of the model in memory). :func:`fit_epochs` is the plain loop for small
heads trained on precomputed features.

Both stop cleanly on SIGTERM, SIGINT or SIGUSR1 (see :mod:`egokit.engine.interrupt`): the current step finishes,
then :class:`~egokit.engine.interrupt.TrainingInterrupted` is raised with no checkpoint (neither loop can resume
a run yet; what the caller saved before, such as the best validated checkpoint, stays); a second signal exits at
once.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset

from egokit.engine.finetune_options import FinetuneOptions
from egokit.engine.interrupt import StopSignals, TrainingInterrupted, ignore_stop_signals, shielded_workers
from egokit.engine.optim import adamw, param_groups, warmup_cosine

__all__ = ["FinetuneOptions", "FinetuneResult", "finetune", "fit_epochs"]


@dataclass
class FinetuneResult:
    steps: int
    module: torch.nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)


def finetune(accelerator, module: torch.nn.Module, dataset: Dataset, settings: FinetuneOptions, *, seed: int = 0,
             num_workers: int = 0, collate_fn: Callable | None = None,
             validate: Callable[[torch.nn.Module, int, int], dict] | None = None,
             head_names: tuple[str, ...] = (), progress=None,
             on_log: Callable[[int, dict], None] | None = None) -> FinetuneResult:
    """Train ``module`` on ``dataset`` for ``settings.epochs`` (or ``max_steps``); ``validate(unwrapped, epoch,
    step)`` runs after every epoch in eval mode and its metrics go into the history. ``progress(description,
    total)`` opens a bar (``TaskContext.progress``); ``on_log(step, record)`` receives every ``log_every``-th step."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True,
                        drop_last=len(dataset) > settings.batch_size, num_workers=num_workers, collate_fn=collate_fn,
                        generator=generator, pin_memory=accelerator.device.type == "cuda",
                        worker_init_fn=ignore_stop_signals if num_workers else None)
    steps_per_epoch = max(1, len(loader) // max(1, accelerator.num_processes))
    total = settings.max_steps or settings.epochs * steps_per_epoch
    lr = settings.lr if settings.lr is not None else 1e-4
    groups = param_groups(module, lr, settings.weight_decay, lr_mult_head=settings.lr_mult_head,
                          lr_mult_cross=settings.lr_mult_cross, head_names=head_names)
    optimizer = adamw(groups, lr=lr, betas=settings.betas, eps=settings.eps, device=accelerator.device)
    scheduler = warmup_cosine(optimizer, int(settings.warmup * total), total, settings.schedule)
    module, optimizer, loader = accelerator.prepare(module, optimizer, loader)
    history, step = [], 0
    start = time.perf_counter()
    stop = StopSignals(announce=accelerator.is_main_process, saves=False)
    with stop, (progress("fine-tuning", total) if progress is not None else nullcontext()) as bar:
        for epoch in range(settings.epochs if settings.max_steps is None else 10**9):
            module.train()
            for batch in (shielded_workers(loader) if num_workers else loader):
                with accelerator.autocast():
                    out = module(batch)
                accelerator.backward(out["loss"])
                if settings.clip_grad:
                    accelerator.clip_grad_norm_(module.parameters(), settings.clip_grad)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if bar is not None:
                    bar.advance(1, description=f"fine-tuning loss {out['loss'].item():.4f}")
                if step % settings.log_every == 0 or step == total:
                    record = {"step": step, "epoch": epoch, "loss": float(out["loss"].detach()),
                              "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - start}
                    history.append(record)
                    if on_log is not None:
                        on_log(step, record)
                _stop_if_asked(stop, step, accelerator)
                if step >= total:
                    break
            if validate is not None:
                module.eval()
                metrics = validate(accelerator.unwrap_model(module), epoch, step)
                history.append({"step": step, "epoch": epoch, "eval": metrics})
                if step < total:  # a signal during the validation (after the last one the run is done)
                    _stop_if_asked(stop, step, accelerator)
            if step >= total:
                break
    return FinetuneResult(steps=step, module=accelerator.unwrap_model(module), history=history)


def fit_epochs(head: torch.nn.Module, loader, loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor],
               optimizer: torch.optim.Optimizer, schedule, *, epochs: int, device: torch.device | str = "cpu",
               clip_norm: float | None = 1.0, on_step: Callable[[float], None] | None = None) -> float:
    """Plain single-process loop for small heads trained on precomputed features (NLQ, MQ, QFVS): per batch move
    it to ``device``, ``loss_fn(head, batch)``, backward, clip (unless ``clip_norm`` is None), step the optimizer
    and the per-step ``schedule``. Returns the last loss; ``on_step(loss)`` drives progress bars."""
    last = float("nan")
    step = 0
    with StopSignals(saves=False) as stop:
        for _ in range(epochs):
            head.train()
            for batch in loader:
                loss = loss_fn(head, _to(batch, device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(head.parameters(), clip_norm)
                optimizer.step()
                schedule.step()
                step += 1
                last = float(loss.detach())
                if on_step is not None:
                    on_step(last)
                _stop_if_asked(stop, step)
    return last


def _stop_if_asked(stop: StopSignals, step: int, accelerator=None) -> None:
    """Raise :class:`TrainingInterrupted` when a stop signal reached any process (every process calls this at the
    same point of the loop)."""
    signum = stop.agreed(accelerator)
    if signum:
        main = accelerator.is_main_process if accelerator is not None else True
        raise TrainingInterrupted(step, signum, None, main_process=main)


def _to(batch: Any, device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch
