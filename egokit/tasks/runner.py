"""Running a task: options -> context -> ``evaluate``/``train`` -> results file. The CLI, pretraining's periodic
evaluation and tests all go through :func:`run_task`, so every run records the same things."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from egokit.errors import ConfigError, PluginError
from egokit.tasks.base import Task, TaskResult
from egokit.tasks.context import TaskContext
from egokit.tasks.options import options_dict, resolve_options

__all__ = ["ACTIONS", "TaskRun", "results_name", "run_task"]

ACTIONS = ("eval", "train")


@dataclass
class TaskRun:
    task: Task
    options: Any
    result: TaskResult
    context: TaskContext
    results_path: Path | None

    @property
    def metrics(self) -> dict[str, Any]:
        return self.result.metrics


def results_name(task: str, action: str) -> str:
    return f"{task}_results.json" if action == "eval" else f"{task}_train_results.json"


def run_task(task: str | Task, action: str = "eval", *, checkpoint: str | None = None,
             options: Mapping[str, Any] | None = None, recipe: str | Path | None = None,
             overrides: Sequence[str] = (), data: str | None = None, output_dir: str | Path | None = None,
             precision: str = "fp32", seed: int = 0, tokenizer: str | None = None,
             model_overrides: Mapping[str, Any] | None = None, console: Console | None = None, accelerator=None,
             model=None, tokenizer_object=None, write_results: bool = True, resume: str | None = None) -> TaskRun:
    """Resolve ``task``'s options (packaged recipe < ``recipe`` < ``options`` < ``overrides`` < ``data``), run
    ``action`` and write ``OUT/<task>_results.json`` (``_train_results.json`` for training): the metrics, the
    task's mode and metric specs, the resolved options and details, the checkpoint (source, sha256, what was not
    loaded), package versions and the egokit git revision.

    ``resume`` (training only: ``"latest"`` or a checkpoint folder) continues an interrupted ``train`` in the same
    output folder (``TaskContext.resume``). A new training run refuses an output folder that holds an earlier run
    (records in ``metrics.jsonl`` or training checkpoints): the two runs' records would mix; resume it, choose
    another folder or move it away (nothing is deleted)."""
    from egokit.tasks.registry import get_task

    if action not in ACTIONS:
        raise ConfigError(f"unknown action {action!r}; expected one of {ACTIONS}")
    task = get_task(task) if isinstance(task, str) else task
    if action == "train" and not task.trainable:
        raise PluginError(f"task {task.name!r} has no training (evaluation only)")
    if resume is not None and action != "train":
        raise ConfigError(f"--resume continues an interrupted training run; `{action}` has nothing to resume")
    resolved = resolve_options(task, recipe=recipe, options=options, overrides=overrides, data=data)
    out = Path(output_dir) if output_dir is not None else Path("runs") / task.name
    if action == "train" and resume is None:
        from egokit.engine.checkpointing import check_fresh_run

        check_fresh_run(out, out / TaskContext.TRAIN_STATE, elsewhere="-o NEW_FOLDER")
    if accelerator is None:
        from egokit.engine.accel import make_accelerator

        kwargs: dict[str, Any] = {}
        if action == "train":  # e.g. a dual-mode model's fusion parts get no gradient: DDP must not wait for them
            from accelerate.utils import DistributedDataParallelKwargs

            kwargs["kwargs_handlers"] = [DistributedDataParallelKwargs(find_unused_parameters=True)]
        accelerator = make_accelerator(mixed_precision="no" if precision == "fp32" else precision, **kwargs)
    ctx = TaskContext(accelerator=accelerator, checkpoint=checkpoint, output_dir=out,
                      fusion_mode=task.fusion_mode, seed=seed, console=console or Console(),
                      model_overrides=dict(model_overrides or {}), tokenizer_source=tokenizer, model=model,
                      tokenizer=tokenizer_object, task_name=task.name, resume=resume)
    try:
        if action == "eval":
            with accelerator.autocast():
                result = task.evaluate(ctx, resolved)
        else:
            result = task.train(ctx, resolved)
    finally:
        ctx.close()
    if not isinstance(result, TaskResult):
        raise PluginError(f"task {task.name!r}: {action} returned {type(result).__name__}, not a TaskResult")
    path = None
    if write_results and ctx.is_main:
        path = write_task_results(ctx, task, action, resolved, result, precision=precision)
    return TaskRun(task, resolved, result, ctx, path)


def write_task_results(ctx: TaskContext, task: Task, action: str, options: Any, result: TaskResult, *,
                       precision: str) -> Path:
    from egokit.results import write_results

    checkpoint: dict[str, Any] = {"source": ctx.checkpoint}
    report = getattr(ctx.loaded, "load_report", None)
    if report is not None:
        checkpoint.update(sha256=report.sha256, missing_keys=report.missing, unexpected_keys=report.unexpected,
                          dropped_keys=len(report.dropped))
    config = {"options": options_dict(options), "details": result.details, "precision": precision,
              "model_overrides": ctx.model_overrides, "seed": ctx.seed}
    extra = {"action": action, "fusion_mode": task.fusion_mode, "artifacts": result.artifacts,
             "metric_specs": [{"name": m.name, "higher_is_better": m.higher_is_better} for m in task.metrics]}
    if result.history:
        extra["history"] = result.history
    return write_results(ctx.output_dir / results_name(task.name, action), task=task.name, metrics=result.metrics,
                         config=config, checkpoint=checkpoint, extra=extra)
