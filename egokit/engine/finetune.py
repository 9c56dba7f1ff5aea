"""Fine-tuning loops shared by the task families.

:func:`finetune` trains a module end to end with Accelerate (the module computes its own loss in
``forward(batch) -> {"loss": tensor, ...}`` so that DDP/Accelerate wrappers see the whole computation) and calls
``validate(module, epoch, step)`` after every epoch; what to keep is the caller's decision (the task core saves
the best checkpoint to disk, never a copy of the model in memory). :func:`fit_epochs` is the plain loop for small
heads trained on precomputed features.

Both stop cleanly on SIGTERM, SIGINT or SIGUSR1 (see :mod:`egokit.engine.interrupt`): the current step finishes,
then :class:`~egokit.engine.interrupt.TrainingInterrupted` is raised; a second signal exits at once.

Resuming :func:`finetune` (``checkpoints=TrainingCheckpoints(...)``, what ``TaskContext.training_checkpoints``
builds for ``egokit train TASK``): every ``checkpoint_every`` steps (default: at the end of every epoch), at the
end of the run and when a stop signal arrives, an atomic training checkpoint ``step-N/`` is written (the module's
state dict, optimizer, scheduler, gradient scaler, the position -- epoch, batches done in it, whether its
validation is still to run --, per-process RNG states, the history so far and the state of the objects the caller
registers, such as the best checkpoint's record); the newest ``keep`` are kept. A run resumed from one continues
bit for bit as if it had never stopped: the data order of an epoch is a function of (seed, epoch) (the batches
already done are skipped), the random numbers a dataset draws for an item are a function of (seed, epoch, index)
whichever process or DataLoader worker loads it, and the RNG states that dropout uses are restored.
"""

from __future__ import annotations

import json
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from egokit.engine.finetune_options import FinetuneOptions
from egokit.engine.interrupt import StopSignals, TrainingInterrupted, ignore_stop_signals, shielded_workers
from egokit.engine.optim import adamw, param_groups, warmup_cosine

__all__ = ["FinetuneOptions", "FinetuneResult", "SeededItems", "TrainingCheckpoints", "finetune", "fit_epochs"]

#: settings a resumed run may change (they do not change what is trained)
_FREE_SETTINGS = ("checkpoint_every", "log_every")


@dataclass
class FinetuneResult:
    steps: int
    module: torch.nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainingCheckpoints:
    """Where :func:`finetune` writes its training checkpoints, and what a resumed run restores.

    ``folder`` holds ``step-N/`` folders and a ``latest`` pointer (``OUT/train_state`` for ``egokit train``);
    ``resume`` is ``"latest"`` or a checkpoint folder to continue from (``None``: a new run); ``state`` names
    objects with ``state_dict()`` / ``load_state_dict()`` saved in every checkpoint (the task's
    :class:`~egokit.tasks.selection.BestCheckpoint`; their state must be plain Python values and tensors);
    ``on_resume(folder, step)`` runs once a run is restored (the task context drops the records the interrupted
    run logged after ``step``); the newest ``keep`` checkpoints are kept."""

    folder: Path
    resume: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    on_resume: Callable[[Path, int], None] | None = None
    keep: int = 2

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)


class SeededItems(Dataset):
    """``dataset`` whose item ``i`` of epoch ``e`` is loaded with torch's, Python's and numpy's global RNGs seeded
    from (seed, e, i): random augmentations drawn from them (a random frame, a sampled caption) are the same
    whichever process or DataLoader worker loads the item and whatever was loaded before it, so an epoch resumed in
    the middle draws what the uninterrupted run drew. The RNG states are restored afterwards (the main process
    keeps its own for dropout)."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def item_seed(self, index: int) -> int:
        entropy = [self.seed % 2**64, self.epoch, int(index)]
        return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)

    def __getitem__(self, index: int) -> Any:
        seed = self.item_seed(index)
        cpu = torch.random.default_generator
        saved = cpu.get_state(), random.getstate(), np.random.get_state()
        cpu.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            return self.dataset[index]
        finally:
            cpu.set_state(saved[0])
            random.setstate(saved[1])
            np.random.set_state(saved[2])


def finetune(accelerator, module: torch.nn.Module, dataset: Dataset, settings: FinetuneOptions, *, seed: int = 0,
             num_workers: int = 0, collate_fn: Callable | None = None,
             validate: Callable[[torch.nn.Module, int, int], dict] | None = None,
             head_names: tuple[str, ...] = (), progress=None,
             on_log: Callable[[int, dict], None] | None = None,
             checkpoints: TrainingCheckpoints | None = None) -> FinetuneResult:
    """Train ``module`` on ``dataset`` for ``settings.epochs`` (or ``max_steps``); ``validate(unwrapped, epoch,
    step)`` runs after every epoch in eval mode and its metrics go into the history. ``progress(description,
    total)`` opens a bar (``TaskContext.progress``); ``on_log(step, record)`` receives every ``log_every``-th step.

    Each process takes ``settings.batch_size`` items per step (a dataset smaller than one batch on one process is
    one batch); an epoch is the whole global batches that fit in the dataset. With ``checkpoints`` the run writes
    training checkpoints and, with ``checkpoints.resume``, continues from one (see the module docstring); without,
    a stop signal raises :class:`TrainingInterrupted` with no checkpoint."""
    from accelerate.utils import send_to_device

    from egokit.engine.checkpointing import remove_stale_temporaries
    from egokit.engine.sampler import ResumableBatchSampler
    from egokit.errors import ConfigError

    every = settings.checkpoint_every
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ConfigError(f"finetune.checkpoint_every must be a positive number of steps, or null (the end of every "
                          f"epoch), got {every!r}")
    rank, world = accelerator.process_index, accelerator.num_processes
    size = len(dataset)  # type: ignore[arg-type]
    batch_size = min(settings.batch_size, size) if world == 1 else settings.batch_size
    if size == 0 or size < batch_size * world:
        raise ConfigError(f"finetune.batch_size: the training set has {size} items, fewer than one global batch "
                          f"({world} processes x {batch_size}); lower finetune.batch_size")
    torch.manual_seed(seed)
    sampler = ResumableBatchSampler(size, batch_size, seed=seed, rank=rank, world_size=world)
    items = SeededItems(dataset, seed)
    steps_per_epoch = sampler.steps_per_epoch()
    total = settings.max_steps or settings.epochs * steps_per_epoch
    lr = settings.lr if settings.lr is not None else 1e-4
    groups = param_groups(module, lr, settings.weight_decay, lr_mult_head=settings.lr_mult_head,
                          lr_mult_cross=settings.lr_mult_cross, head_names=head_names)
    optimizer = adamw(groups, lr=lr, betas=settings.betas, eps=settings.eps, device=accelerator.device)
    scheduler = warmup_cosine(optimizer, int(settings.warmup * total), total, settings.schedule)
    identity = _identity(settings, seed=seed, items=size, processes=world, batch_size=batch_size)

    history: list[dict[str, Any]] = []
    step, epoch, done = 0, 0, 0  # optimizer steps; the epoch; batches of it done
    pending = False  # the epoch that ended at `step` still has its validation (and epoch-end checkpoint) to do
    elapsed, rng = 0.0, None
    if checkpoints is not None:
        if accelerator.is_main_process:
            remove_stale_temporaries(checkpoints.folder)
        if checkpoints.resume:
            folder, state, rng = _restore(checkpoints, rank, identity, module, optimizer, scheduler, accelerator)
            step, epoch, done, pending = state["step"], state["epoch"], state["batch"], state["validate_pending"]
            history, elapsed = list(state["history"]), float(state["seconds"])
            if checkpoints.on_resume is not None:
                checkpoints.on_resume(folder, step)
    module, optimizer = accelerator.prepare(module, optimizer)
    if rng is not None:
        from egokit.engine.checkpointing import set_rng_state

        set_rng_state(rng)  # last: nothing between here and the next step draws random numbers
    start = time.perf_counter() - elapsed

    def save(pending_validation: bool) -> Path | None:
        if checkpoints is None:
            return None
        from egokit.engine.checkpointing import save_training_checkpoint

        inner = getattr(optimizer, "optimizer", optimizer)  # AcceleratedOptimizer wraps the torch optimizer
        state = {"step": step, "epoch": epoch, "batch": done, "validate_pending": pending_validation,
                 "optimizer": inner.state_dict(), "scheduler": scheduler.state_dict(), "history": history,
                 "seconds": time.perf_counter() - start, "run": identity,
                 "state": {name: _plain(obj.state_dict()) for name, obj in checkpoints.state.items()}}
        scaler = getattr(accelerator, "scaler", None)
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        return save_training_checkpoint(checkpoints.folder, step, training_state=state,
                                        files={"module.pt": accelerator.unwrap_model(module).state_dict()},
                                        rank=rank, world_size=world, barrier=accelerator.wait_for_everyone,
                                        keep=checkpoints.keep)

    def stop_now(signum: int, pending_validation: bool) -> TrainingInterrupted:
        folder = save(pending_validation)
        return TrainingInterrupted(step, signum, folder, main_process=accelerator.is_main_process)

    stop = StopSignals(announce=accelerator.is_main_process, saves=checkpoints is not None)
    with stop, (progress("fine-tuning", total) if progress is not None else nullcontext()) as bar:
        if bar is not None and step:
            bar.advance(step)
        while True:
            if pending:  # the end of an epoch (or of the run): validate, then checkpoint
                if validate is not None:
                    module.eval()
                    metrics = validate(accelerator.unwrap_model(module), epoch, step)
                    history.append(_plain({"step": step, "epoch": epoch, "eval": metrics}))
                pending = False
                final = step >= total
                signum = 0 if final else stop.agreed(accelerator)  # a signal after the last step: the run is done
                if final or signum or every is None or step % every == 0:
                    written = save(False)
                if signum:
                    raise TrainingInterrupted(step, signum, written, main_process=accelerator.is_main_process)
            if step >= total:
                break
            if done >= steps_per_epoch:
                epoch, done = epoch + 1, 0
            sampler.set_position(epoch, done)
            items.set_epoch(epoch)
            loader = DataLoader(items, batch_sampler=sampler, collate_fn=collate_fn, num_workers=num_workers,
                                pin_memory=accelerator.device.type == "cuda",
                                worker_init_fn=ignore_stop_signals if num_workers else None,
                                generator=torch.Generator().manual_seed(seed))  # not the global RNG
            module.train()
            for batch in (shielded_workers(loader) if num_workers else loader):
                batch = send_to_device(batch, accelerator.device)
                with accelerator.autocast():
                    out = module(batch)
                accelerator.backward(out["loss"])
                if settings.clip_grad:
                    accelerator.clip_grad_norm_(module.parameters(), settings.clip_grad)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step, done = step + 1, done + 1
                if bar is not None:
                    bar.advance(1, description=f"fine-tuning loss {out['loss'].item():.4f}")
                if step % settings.log_every == 0 or step == total:
                    record = {"step": step, "epoch": epoch, "loss": float(out["loss"].detach()),
                              "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - start}
                    history.append(record)
                    if on_log is not None:
                        on_log(step, record)
                end = done >= steps_per_epoch or step >= total
                signum = stop.agreed(accelerator)  # every process, after every step: all stop after the same one
                if signum:  # before the validation of an epoch that just ended, if it did
                    raise stop_now(signum, end)
                if not end and every is not None and step % every == 0:
                    save(False)
                if end:
                    break
            pending = True
    return FinetuneResult(steps=step, module=accelerator.unwrap_model(module), history=history)


def _identity(settings: FinetuneOptions, **run: Any) -> str:
    """What a resumed run must share with the run that wrote the checkpoint (JSON: compared as text)."""
    values = {k: v for k, v in asdict(settings).items() if k not in _FREE_SETTINGS}
    return json.dumps({"finetune": values, **run}, sort_keys=True, default=str)


def _restore(checkpoints: TrainingCheckpoints, rank: int, identity: str, module, optimizer, scheduler, accelerator):
    """Load the checkpoint ``checkpoints.resume`` names into the module, optimizer, scheduler, gradient scaler and
    registered objects; returns its folder, its training state and this process's RNG states."""
    from egokit.engine.checkpointing import load_training_state, resolve_resume
    from egokit.errors import CheckpointError

    folder = resolve_resume(checkpoints.folder.parent, checkpoints.resume, folder=checkpoints.folder.name)
    if not (folder / "module.pt").is_file():
        raise CheckpointError(f"--resume {checkpoints.resume}: {folder} is not a fine-tuning checkpoint (no "
                              f"module.pt); pass a folder under {checkpoints.folder}")
    state, rng = load_training_state(folder, rank)
    if state.get("run") != identity:
        raise CheckpointError(f"--resume {checkpoints.resume}: {folder} was written by a run with other settings "
                              f"({_differences(state.get('run'), identity)}); resume with the same command and "
                              f"options, or start a new run in a new folder (-o)")
    module.load_state_dict(torch.load(folder / "module.pt", map_location="cpu", weights_only=True))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler = getattr(accelerator, "scaler", None)
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    saved = state.get("state") or {}
    for name, obj in checkpoints.state.items():
        if name in saved:
            obj.load_state_dict(saved[name])
    return folder, state, rng


def _differences(old: str | None, new: str) -> str:
    def flat(text: str | None) -> dict[str, Any]:
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        out = {f"finetune.{k}": v for k, v in (data.pop("finetune", None) or {}).items()}
        return {**out, **data}

    a, b = flat(old), flat(new)
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    return ", ".join(f"{k} {a.get(k)!r} then, {b.get(k)!r} now" for k in keys) or "unreadable settings"


def _plain(value: Any) -> Any:
    """``value`` with numpy values and 0-d tensors as Python numbers and lists (what a checkpoint loaded with
    ``weights_only=True`` and a JSON results file hold)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic) or (isinstance(value, torch.Tensor) and value.ndim == 0):
        return value.item()
    return value


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
