"""``egokit tasks``, ``egokit eval TASK`` and ``egokit train TASK``: run task plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.table import Table

from egokit.cli.common import console, err_console


def tasks() -> None:
    """List installed tasks and the package each comes from (plugins are not imported)."""
    from egokit.tasks.registry import discover_tasks

    table = Table(title="installed tasks")
    for col in ("task", "package", "version", "entry point"):
        table.add_column(col)
    for entry in discover_tasks():
        table.add_row(entry.name, entry.package, entry.version, entry.target)
    console.print(table)


def _split_overrides(items: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``model.x=v`` -> model overrides; everything else -> task options (nested by dots)."""
    from egokit.recipes import apply_overrides

    data = apply_overrides({}, items)
    model = data.pop("model", {}) or {}
    return data, model


def _print_metrics(title: str, metrics: dict) -> None:
    from egokit.results import flatten_metrics

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in flatten_metrics(metrics).items():
        table.add_row(name, f"{value:.2f}" if isinstance(value, float) else str(value))
    console.print(table)


def _context(task: str, ckpt: Optional[str], recipe: Optional[Path], data: Optional[str], output: Optional[Path],
             overrides: list[str], precision: str, seed: int, tokenizer: Optional[str]):
    from egokit.engine.accel import make_accelerator
    from egokit.recipes import read_yaml
    from egokit.tasks.context import TaskContext

    options = read_yaml(recipe) if recipe else {}
    extra, model_overrides = _split_overrides(overrides)
    options.update(extra)
    if data is not None:
        options["data"] = data
    accelerator = make_accelerator(mixed_precision="no" if precision == "fp32" else precision)
    out = output or Path("runs") / task
    return TaskContext(accelerator=accelerator, checkpoint=ckpt, options=options, output_dir=out, seed=seed,
                       console=console, model_overrides=model_overrides, tokenizer_source=tokenizer)


def eval_cmd(
    task: str = typer.Argument(..., help="Task name (see `egokit tasks`)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Task options as key=value; model.KEY=VALUE overrides the model."),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="Official .pth, egokit folder or hub:org/name[@rev]."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset folder (sets the task's data= option)."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="YAML file with task options."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for the results JSON (default runs/TASK)."),
    precision: str = typer.Option("fp32", help="fp32, bf16 or fp16 (autocast)."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer folder or hub name (default: bundled with the checkpoint)."),
    seed: int = typer.Option(0),
) -> None:
    """Evaluate a checkpoint on a task; prints a table and writes results JSON (metrics, config, versions, git)."""
    from egokit.results import write_results
    from egokit.tasks.registry import get_task

    spec = get_task(task)
    ctx = _context(task, ckpt, recipe, data, output, overrides or [], precision, seed, tokenizer)
    with ctx.accelerator.autocast():
        result = spec.evaluate(ctx)
    if not ctx.is_main:
        return
    checkpoint = {"source": ckpt}
    report = getattr(ctx.loaded, "load_report", None)
    if report is not None:
        checkpoint.update(sha256=report.sha256, missing_keys=report.missing, unexpected_keys=report.unexpected)
    path = write_results(ctx.output_dir / f"{task}_results.json", task=task, metrics=result["metrics"],
                         config={"options": result.get("config", ctx.options), "precision": precision,
                                 "model_overrides": ctx.model_overrides},
                         checkpoint={**checkpoint, **result.get("checkpoint", {})})
    _print_metrics(f"{task} ({ckpt})", result["metrics"])
    err_console.print(f"results written to {path}")


def train_cmd(
    task: str = typer.Argument(..., help="Task name (see `egokit tasks`)."),
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe (default: the task's own)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides; model.KEY=VALUE for the model."),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="Initial checkpoint."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset folder (sets data=)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o"),
    precision: str = typer.Option("fp32", help="fp32, bf16 or fp16."),
    tokenizer: Optional[str] = typer.Option(None),
    seed: int = typer.Option(0),
) -> None:
    """Fine-tune on a task with its recipe; writes checkpoints and results under the output folder."""
    from egokit.errors import PluginError
    from egokit.results import write_results
    from egokit.tasks.registry import get_task

    spec = get_task(task)
    if spec.train is None:
        raise PluginError(f"task {task!r} has no training recipe (evaluation only)")
    if recipe is not None and "=" in str(recipe):  # `egokit train TASK key=value` without a recipe file
        overrides = [str(recipe), *(overrides or [])]
        recipe = None
    ctx = _context(task, ckpt, recipe, data, output, overrides or [], precision, seed, tokenizer)
    result = spec.train(ctx)
    if ctx.is_main:
        path = write_results(ctx.output_dir / f"{task}_train_results.json", task=task, metrics=result["metrics"],
                             config={"options": result.get("config", ctx.options), "precision": precision},
                             checkpoint={"source": ckpt, **result.get("checkpoint", {})})
        _print_metrics(f"{task} fine-tuning", result["metrics"])
        err_console.print(f"results written to {path}")
