"""``egokit pretrain``: EgoNCE + MLM + VTM on EgoClip-format data with Accelerate.

Resumable (``--resume latest``) with bit-identical continuation: data order and augmentation are functions of
(seed, epoch, index), MLM masks of (seed, epoch, index, slot), VTM sampling of (seed, step), and the torch RNG
(dropout) is restored from the checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import torch
from rich.console import Console
from rich.progress import TextColumn
from rich.table import Table
from torch.utils.data import DataLoader

from egokit.engine.checkpointing import (check_fresh_run, checkpoint_step, load_training_state,
                                         remove_stale_temporaries, resolve_resume, save_training_checkpoint,
                                         set_rng_state)
from egokit.engine.interrupt import StopSignals, TrainingInterrupted, ignore_stop_signals, shielded_workers
from egokit.engine.logging import RunLogger, check_trackers, flat_config, truncate_metrics
from egokit.engine.objective import PretrainObjective
from egokit.engine.optim import adamw, param_groups, warmup_cosine
from egokit.engine.pretrain_recipe import (PretrainRecipe, data_path, data_tokenizer, load_pretrain_recipe,
                                           recipe_dict)
from egokit.engine.progress import make_progress
from egokit.engine.sampler import ResumableBatchSampler
from egokit.errors import ConfigError
from egokit.results import run_metadata, write_json_atomic


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX") else "no"
    return {"fp32": "no"}.get(precision, precision)


def build_model(recipe: PretrainRecipe, vocab_size: int | None):
    """The model to pretrain: a checkpoint, or a registry config (+ ViT/RoBERTa initialisation)."""
    from egokit.checkpoint import load_model
    from egokit.models import EgoVLPv2, get_config
    from egokit.models.backbone_init import init_text_from_roberta, init_video_from_vit

    m = recipe.model
    overrides = dict(m.overrides)
    overrides.setdefault("num_frames", recipe.data.num_frames)
    if m.checkpoint:
        model = load_model(m.checkpoint, **overrides)
    else:
        if vocab_size is not None and "vocab_size" not in overrides:
            overrides["vocab_size"] = vocab_size
        model = EgoVLPv2(get_config(m.name, **overrides))
        if m.vit:
            init_video_from_vit(model, m.vit)
        if m.roberta:
            init_text_from_roberta(model, m.roberta)
    model.config.preprocess.max_text_length = recipe.data.max_text_length
    try:
        model.set_grad_checkpointing(m.gradient_checkpointing)
    except ConfigError as exc:
        raise ConfigError(f"model.gradient_checkpointing: {exc}") from None
    if recipe.train.compile:
        model.compile_blocks(backend=recipe.train.compile_backend)
    return model.train()


def load_data_tokenizer(recipe: PretrainRecipe):
    from egokit.tokenizer import load_tokenizer

    d = recipe.data
    if d.tokenizer:
        return load_tokenizer(data_tokenizer(d))
    if recipe.model.checkpoint:
        from egokit.checkpoint import resolve_source

        bundled = resolve_source(recipe.model.checkpoint) / "tokenizer"  # hub:org/name -> its local snapshot
        if bundled.is_dir():
            return load_tokenizer(bundled)
    if d.root and (Path(d.root) / "tokenizer").is_dir():
        return load_tokenizer(Path(d.root) / "tokenizer")
    return load_tokenizer("roberta-base")


@dataclass
class PretrainResult:
    run_dir: Path
    steps: int
    final_losses: dict[str, float]
    eval_metrics: dict[str, Any] | None
    model_dir: Path | None


class Evaluator(Protocol):
    """Periodic evaluation during pretraining (``egokit.tasks.inrun.TaskEvaluator`` evaluates task plugins)."""

    def due(self, step: int, total: int) -> bool: ...

    def __call__(self, accelerator, model, tokenizer, step: int, final: bool) -> dict[str, Any]: ...


def pretrain(recipe_path: str | Path | dict | None, overrides: Sequence[str] = (), *, resume: str | None = None,
             console: Console | None = None, stop_after: int | None = None,
             evaluator: Callable[[PretrainRecipe, Console], Evaluator] | None = None,
             command: Sequence[str] | None = None) -> PretrainResult:
    """Run (or resume) a pretraining recipe. ``stop_after`` ends the process's loop early (tests, profiling).

    SIGTERM, SIGINT and SIGUSR1 stop the run after the current step with a checkpoint: it raises
    :class:`~egokit.engine.interrupt.TrainingInterrupted` (see that module; a second signal exits at once).
    ``command`` (the command line, from ``egokit pretrain``) goes into ``recipe.json``'s list of the commands that
    made the run; a resumed run adds to that list, and drops the records of ``metrics.jsonl`` logged after the
    checkpoint it resumes from.

    ``evaluator(recipe, console)`` builds what evaluates the model during and after training; the training loop
    itself knows no tasks (``egokit.pretrain`` passes the task evaluator for ``eval.tasks``)."""
    from accelerate.utils import DistributedDataParallelKwargs

    from egokit.engine.accel import make_accelerator

    from egokit.data.egoclip import EgoClipDataset
    from egokit.data.robust import FailureReport, RobustDataset
    from egokit.data.text import PretrainCollator
    from egokit.data.transforms import TrainTransform
    from egokit.engine.features import prepare_video

    console = console or Console()
    recipe = load_pretrain_recipe(recipe_path, overrides)
    if recipe.eval.tasks and evaluator is None:
        raise ConfigError("the recipe lists eval.tasks but no evaluator was given; run it with egokit.pretrain.pretrain "
                          "(or `egokit pretrain`), which evaluates task plugins")
    evaluate = evaluator(recipe, console) if evaluator is not None else None
    if recipe.data.root is None:
        raise ConfigError("data.root is not set: pass data.root=/path/to/egoclip (folder with egoclip.csv and videos/)")
    if recipe.data.policy not in ("strict", "lax"):
        raise ConfigError(f"data.policy must be strict or lax, got {recipe.data.policy!r}")
    trackers = check_trackers(recipe.log.with_)
    probe = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(recipe.train.precision, probe)
    unused = not (recipe.loss.mlm and recipe.loss.vtm)
    accelerator = make_accelerator(mixed_precision=precision, gradient_accumulation_steps=recipe.train.grad_accum,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=unused)])
    rank, world = accelerator.process_index, accelerator.num_processes
    run_dir = Path(recipe.output_dir)
    resolved = recipe_dict(recipe)
    folder = resolve_resume(run_dir, resume) if resume else None
    if folder is None:  # a new run never appends to an earlier run's metrics and checkpoints
        check_fresh_run(run_dir, run_dir / "checkpoints", elsewhere="output_dir=NEW_FOLDER")
    if recipe.train.checkpoint_every < 0:
        raise ConfigError(f"train.checkpoint_every must be a number of steps (0: once per epoch), got "
                          f"{recipe.train.checkpoint_every}")
    resumed_step = checkpoint_step(folder) if folder is not None else None
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir / "checkpoints")
        _record_run(run_dir / "recipe.json", resolved, recipe_path, overrides, command, resume, resumed_step)
        if resumed_step is not None:
            truncate_metrics(run_dir / "metrics.jsonl", resumed_step)
    torch.manual_seed(recipe.train.seed + rank)

    tokenizer = load_data_tokenizer(recipe)
    model = build_model(recipe, vocab_size=len(tokenizer))
    if len(tokenizer) > model.config.vocab_size:
        raise ConfigError(f"tokenizer has {len(tokenizer)} tokens but the model's vocabulary is {model.config.vocab_size}")
    d = recipe.data
    transform = TrainTransform(model.config.image_size, scale=tuple(d.crop_scale), hflip=d.hflip)
    dataset = EgoClipDataset(data_path(d, d.egoclip), data_path(d, d.videos), num_frames=d.num_frames,
                             chunk_seconds=d.chunk_seconds, transform=transform,
                             scene_negatives=d.neg_window is not None, neg_window=d.neg_window,
                             short_side=d.short_side, seed=recipe.train.seed)
    dataset = RobustDataset(dataset, policy=d.policy, seed=recipe.train.seed)
    sampler = ResumableBatchSampler(len(dataset), d.batch_size, seed=recipe.train.seed, rank=rank, world_size=world)
    collate = PretrainCollator(tokenizer, max_length=d.max_text_length, mlm_probability=d.mlm_probability,
                               seed=recipe.train.seed, mlm_slots=d.mlm_slots)
    steps_per_epoch = sampler.steps_per_epoch() // recipe.train.grad_accum
    total_steps = recipe.train.max_steps or recipe.train.epochs * steps_per_epoch
    if total_steps < 1:
        raise ConfigError("the recipe trains for 0 steps: check train.epochs/max_steps and the dataset size")
    checkpoint_every = recipe.train.checkpoint_every or max(1, steps_per_epoch)  # 0: once per epoch

    objective = PretrainObjective(model, temperature=recipe.loss.temperature,
                                  weights=(recipe.loss.egonce, recipe.loss.mlm, recipe.loss.vtm),
                                  use_verb=recipe.loss.verb, use_noun=recipe.loss.noun,
                                  doubled=d.neg_window is not None, static_shapes=recipe.train.static_shapes,
                                  mlm_slots=d.mlm_slots)
    o = recipe.optim
    groups = param_groups(model, o.lr, o.weight_decay, lr_mult_head=o.lr_mult_head, lr_mult_cross=o.lr_mult_cross)
    optimizer = adamw(groups, lr=o.lr, betas=o.betas, eps=o.eps, device=accelerator.device)
    scheduler = warmup_cosine(optimizer, int(o.warmup * total_steps), total_steps, o.schedule)

    step, epoch, micro = 0, 0, 0  # optimizer steps, epoch, micro-batches consumed in this epoch
    if folder is not None:
        from egokit.checkpoint import load_pretrained

        model.load_state_dict(load_pretrained(folder).state_dict())
        state, rng = load_training_state(folder, rank)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("evaluator") is not None and hasattr(evaluate, "load_state_dict"):
            evaluate.load_state_dict(state["evaluator"])  # e.g. the best checkpoint so far (egokit train egomcq)
        step, epoch, micro = state["step"], state["epoch"], state["micro_batch"]
        if rng is not None:
            set_rng_state(rng)
        console.print(f"resumed from {folder} at step {step} (epoch {epoch}, batch {micro})")

    objective, optimizer = accelerator.prepare(objective, optimizer)
    logger = RunLogger(run_dir, enabled=accelerator.is_main_process, trackers=trackers, project=recipe.log.project,
                       config=flat_config(resolved), resumed_step=resumed_step)
    failures = FailureReport()
    eval_metrics = None
    last: dict[str, float] = {}
    clips_seen, wait_time, step_time = 0, 0.0, 0.0
    started = time.perf_counter()
    progress = make_progress(console, not accelerator.is_main_process, TextColumn("{task.fields[stats]}"))
    stop = StopSignals(announce=accelerator.is_main_process)
    with stop:  # installed until the run ends
        with progress:
            bar = progress.add_task("pretraining", total=total_steps, completed=step, stats="")
            while step < total_steps:
                if micro >= sampler.steps_per_epoch():
                    epoch, micro = epoch + 1, 0
                sampler.set_position(epoch, micro)
                dataset.set_epoch(epoch)
                loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=d.num_workers,
                                    pin_memory=accelerator.device.type == "cuda",
                                    prefetch_factor=4 if d.num_workers else None,
                                    worker_init_fn=ignore_stop_signals if d.num_workers else None)
                t0 = time.perf_counter()
                for batch in (shielded_workers(loader) if d.num_workers else loader):
                    t1 = time.perf_counter()
                    micro += 1
                    failures.update(batch)
                    video = prepare_video(batch["video"], model, accelerator.device)
                    tensors = {k: batch[k].to(accelerator.device, non_blocking=True)
                               for k in ("input_ids", "attention_mask", "mlm_input_ids", "mlm_labels", "verb", "noun")}
                    with accelerator.accumulate(objective), accelerator.autocast():
                        out = objective(video=video, vtm_seed=_step_seed(recipe.train.seed, epoch, micro), **tensors)
                        accelerator.backward(out["loss"])
                        if o.clip_grad and accelerator.sync_gradients:
                            accelerator.clip_grad_norm_(objective.parameters(), o.clip_grad)
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                    wait_time += t1 - t0
                    clips_seen += video.shape[0] * world
                    if not accelerator.sync_gradients:
                        t0 = time.perf_counter()
                        step_time += t0 - t1
                        continue
                    scheduler.step()
                    step += 1
                    last = _reduce_terms(out, world)
                    lr = scheduler.get_last_lr()[0]
                    step_time += time.perf_counter() - t0
                    progress.update(bar, advance=1, stats=_stats_text(last, lr, clips_seen, step_time, wait_time))
                    if step % recipe.train.log_every == 0 or step == total_steps:
                        if accelerator.is_main_process and not console.is_terminal:  # log files / CI: plain lines
                            console.print(f"step {step}/{total_steps} "
                                          + _stats_text(last, lr, clips_seen, step_time, wait_time), highlight=False)
                        logger.log(step, {**{f"loss/{k}": v for k, v in last.items()}, "lr": lr,
                                          "clips_per_s": clips_seen / max(step_time, 1e-9),
                                          "data_wait_share": wait_time / max(step_time, 1e-9), "epoch": epoch})
                    if evaluate is not None and step < total_steps and evaluate.due(step, total_steps):
                        eval_metrics = _evaluate(evaluate, accelerator, objective, tokenizer, step, final=False)
                        logger.log(step, _flat_eval(eval_metrics))
                    signum = stop.agreed(accelerator)  # a stop asked for on any process stops all after this step
                    if step % checkpoint_every == 0 or step == total_steps or signum:
                        _checkpoint(run_dir, step, epoch, micro, accelerator, objective, tokenizer, optimizer,
                                    scheduler, resolved, recipe.train.keep_checkpoints, evaluate)
                    if signum:
                        logger.close()
                        raise TrainingInterrupted(step, signum, _step_folder(run_dir, step),
                                                  main_process=accelerator.is_main_process)
                    if stop_after is not None and step >= stop_after:
                        logger.close()
                        return PretrainResult(run_dir, step, last, None, None)
                    if step >= total_steps:
                        break
                    t0 = time.perf_counter()
        signum = stop.agreed(accelerator)  # asked to stop after the last step's check: before the final phase
        if signum:
            if not (_step_folder(run_dir, step) / "COMPLETE").is_file():  # resumed from another run's checkpoint
                _checkpoint(run_dir, step, epoch, micro, accelerator, objective, tokenizer, optimizer, scheduler,
                            resolved, recipe.train.keep_checkpoints, evaluate)
            logger.close()
            raise TrainingInterrupted(step, signum, _step_folder(run_dir, step),
                                      main_process=accelerator.is_main_process)
        # a signal from here on lets the final evaluation and the model finish (a second one stops at once)
        model_dir = None
        unwrapped = accelerator.unwrap_model(objective).model
        if evaluate is not None:
            eval_metrics = _evaluate(evaluate, accelerator, objective, tokenizer, step, final=True) or None
            if eval_metrics:
                logger.log(step, _flat_eval(eval_metrics))
        if accelerator.is_main_process:
            from egokit.checkpoint import save_pretrained

            model_dir = save_pretrained(unwrapped, run_dir / "model", tokenizer=tokenizer)
            summary = {"steps": step, "seconds": time.perf_counter() - started, "final_losses": last,
                       "clips_per_s": clips_seen / max(step_time, 1e-9),
                       "data_wait_share": wait_time / max(step_time, 1e-9), "failed_samples": failures.total,
                       "eval": eval_metrics}
            write_json_atomic(run_dir / "results.json", {"summary": summary, "recipe": resolved,
                                                          "environment": run_metadata()})
            _print_summary(console, summary, failures)
    logger.close()
    return PretrainResult(run_dir, step, last, eval_metrics, model_dir)


def _step_folder(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:08d}"


def _record_run(path: Path, resolved: dict[str, Any], source, overrides: Sequence[str],
                command: Sequence[str] | None, resume: str | None, resumed_step: int | None) -> None:
    """Write ``recipe.json``: the resolved recipe, its source and overrides, the environment, and ``commands``,
    the run's history (``argv``, ``time``, ``resume``, ``resumed_from_step`` of each command that ran it). A new
    run starts the history; a resumed one appends to the history already there."""
    from egokit.errors import CheckpointError

    history: list[dict[str, Any]] = []
    if resume is not None and path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CheckpointError(f"{path}: cannot read the run's history ({exc}); fix or move the file away, "
                                  f"then resume again") from None
        history = list(previous.get("commands") or [])
        if not history:  # written before runs kept a history: its command becomes the first entry
            history = [{"argv": (previous.get("environment") or {}).get("command"), "source": previous.get("source"),
                        "overrides": previous.get("overrides"), "time": (previous.get("environment") or {}).get("time"),
                        "resume": None, "resumed_from_step": None}]
    environment = run_metadata()
    history.append({"argv": list(command) if command is not None else None, "source": source,
                    "overrides": list(overrides), "time": environment["time"], "resume": resume,
                    "resumed_from_step": resumed_step})
    write_json_atomic(path, {"recipe": resolved, "source": source, "overrides": list(overrides),
                             "environment": environment, "commands": history})


def _step_seed(seed: int, epoch: int, micro: int) -> int:
    """VTM sampling seed: a function of the data position only, so resumed runs draw the same pairs."""
    return (seed * 1_000_003 + epoch * 10_007 + micro) % (2**62)


def _reduce_terms(out: dict[str, torch.Tensor], world: int) -> dict[str, float]:
    keys = [k for k in ("loss", "egonce", "mlm", "vtm") if k in out]
    values = torch.stack([out[k].detach().float() for k in keys])
    if world > 1:
        torch.distributed.all_reduce(values)
        values = values / world
    terms = dict(zip(keys, values.tolist()))
    if "vtm_pairs" in out:
        acc = torch.stack([out["vtm_accuracy_sum"], out["vtm_pairs"]])
        if world > 1:
            torch.distributed.all_reduce(acc)
        terms["vtm_acc"] = float(acc[0] / acc[1].clamp_min(1))
    return terms


def _stats_text(terms: dict[str, float], lr: float, clips: int, step_time: float, wait: float) -> str:
    parts = [f"{k} {v:.3f}" for k, v in terms.items() if k != "vtm_acc"]
    return " ".join(parts) + f" lr {lr:.2e} {clips / max(step_time, 1e-9):.1f} clips/s wait {100 * wait / max(step_time, 1e-9):.0f}%"


def _checkpoint(run_dir, step, epoch, micro, accelerator, objective, tokenizer, optimizer, scheduler,
                resolved, keep, evaluate=None) -> None:
    inner = getattr(optimizer, "optimizer", optimizer)  # AcceleratedOptimizer wraps the torch optimizer
    state = {"step": step, "epoch": epoch, "micro_batch": micro, "optimizer": inner.state_dict(),
             "scheduler": scheduler.state_dict(), "recipe": resolved}
    if hasattr(evaluate, "state_dict"):  # what the evaluator keeps across evaluations (the best so far)
        state["evaluator"] = evaluate.state_dict()
    save_training_checkpoint(run_dir / "checkpoints", step, model=accelerator.unwrap_model(objective).model,
                             tokenizer=tokenizer, training_state=state, rank=accelerator.process_index,
                             world_size=accelerator.num_processes, barrier=accelerator.wait_for_everyone, keep=keep)


def _evaluate(evaluate: Evaluator, accelerator, objective, tokenizer, step: int, final: bool) -> dict[str, Any]:
    """Evaluate the in-memory model (eval mode, no gradients), then return it to training."""
    model = accelerator.unwrap_model(objective).model
    was_training = model.training
    model.eval()
    with torch.no_grad(), accelerator.autocast():
        metrics = evaluate(accelerator, model, tokenizer, step, final)
    model.train(was_training)
    return metrics


def _flat_eval(metrics: dict[str, Any]) -> dict[str, float]:
    """``{task: {a: {b: v}}}`` -> ``{"task/a.b": v}`` (numbers only)."""
    from egokit.results import flatten_metrics

    return {f"{task}/{k}": v for task, m in metrics.items() for k, v in flatten_metrics(m).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _print_summary(console: Console, summary: dict[str, Any], failures) -> None:
    table = Table(title="pretraining summary", show_header=False)
    table.add_row("steps", str(summary["steps"]))
    table.add_row("wall time", f"{summary['seconds']:.0f} s")
    table.add_row("throughput", f"{summary['clips_per_s']:.1f} clips/s")
    table.add_row("data wait", f"{100 * summary['data_wait_share']:.0f} %")
    for k, v in summary["final_losses"].items():
        table.add_row(f"final {k}", f"{v:.4f}")
    table.add_row("failed samples", str(summary["failed_samples"]))
    for key, value in _flat_eval(summary["eval"] or {}).items():
        table.add_row(key, f"{value:.2f}")
    console.print(table)
    if failures.total:
        console.print(failures.to_table())
