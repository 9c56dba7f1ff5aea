"""``egokit tasks``, ``egokit eval TASK`` and ``egokit train TASK``: list and run task plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.table import Table

from egokit.cli.common import console, err_console


def tasks(
    check: bool = typer.Option(False, "--check", help="Also import every module of each plugin and validate its "
                                                      "packaged recipe; exit 1 if any task is broken."),
    recipe: Optional[str] = typer.Option(None, "--recipe", metavar="TASK",
                                         help="Print TASK's packaged default recipe (copy it to start your own)."),
) -> None:
    """List installed tasks: name, fusion mode, description, metrics, package and health."""
    from egokit.tasks.registry import check_task, discover_tasks, get_task

    if recipe is not None:
        text = get_task(recipe).recipe_text()
        console.print(text if text is not None else f"# {recipe} ships no recipe: its options are the defaults",
                      highlight=False, markup=False, end="")
        return
    table = Table(title="installed tasks")
    for col in ("task", "mode", "description", "metrics", "package", "status"):
        table.add_column(col, overflow="fold")
    broken = 0
    for entry in discover_tasks():
        health = check_task(entry, deep=check)
        package = f"{entry.package} {entry.version}"
        if health.task is None:
            table.add_row(entry.name, "-", "-", "-", package, f"[red]broken[/]: {health.problems[0]}")
            broken += 1
            continue
        task = health.task
        uses = "train, then eval" if task.needs_training or task.trained_model else "train, eval"
        status = "ok" + (f" ({uses})" if task.trainable else " (eval)")
        if health.problems:
            status, broken = "[red]broken[/]: " + "; ".join(health.problems), broken + 1
        elif health.warnings:
            status += " [yellow]warning[/]: " + "; ".join(health.warnings)
        table.add_row(entry.name, task.fusion_mode, task.description, ", ".join(task.metric_names), package, status)
    console.print(table)
    if check and broken:
        err_console.print(f"{broken} task(s) broken")
        raise typer.Exit(1)


def _split_overrides(items: list[str]) -> tuple[list[str], dict[str, Any]]:
    """``model.x=v`` -> model overrides; everything else stays a task option override."""
    from egokit.recipes import apply_overrides

    model_items = [i for i in items if i.startswith("model.")]
    model = apply_overrides({}, model_items).get("model", {}) or {}
    return [i for i in items if not i.startswith("model.")], model


def _print_metrics(title: str, task, metrics: dict) -> None:
    from egokit.tasks.base import metric_table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metric_table(task.metrics, metrics):
        table.add_row(name, value)
    console.print(table)


def _run(action: str, task: str, ckpt, recipe, data, output, overrides, precision, seed, tokenizer,
         resume: str | None = None) -> None:
    from egokit.io import check_output_dir
    from egokit.tasks.runner import run_task

    check_output_dir(output if output is not None else Path("runs") / task)  # before any model is loaded
    options, model_overrides = _split_overrides(overrides or [])
    run = run_task(task, action, checkpoint=ckpt, recipe=recipe, overrides=options, data=data, output_dir=output,
                   precision=precision, seed=seed, tokenizer=tokenizer, model_overrides=model_overrides,
                   console=console, resume=resume)
    if run.results_path is not None:
        title = f"{task} ({ckpt})" if action == "eval" else f"{task} fine-tuning"
        _print_metrics(title, run.task, run.metrics)
        err_console.print(f"results written to {run.results_path}")


def eval_cmd(
    task: str = typer.Argument(..., help="Task name (see `egokit tasks`)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Task options as key=value (nested: finetune.lr=1e-4); "
                                                              "model.KEY=VALUE overrides the model."),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="Official .pth, egokit folder or hub:org/name[@rev]."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset folder (sets the task's data= option)."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="YAML file with task options (over the task's own)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for the results JSON (default runs/TASK)."),
    precision: str = typer.Option("fp32", help="fp32, bf16 or fp16 (autocast)."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer folder or hub name (default: bundled with the checkpoint)."),
    seed: int = typer.Option(0),
) -> None:
    """Evaluate a checkpoint on a task; prints a table and writes results JSON (metrics, options, versions, git)."""
    _run("eval", task, ckpt, recipe, data, output, overrides, precision, seed, tokenizer)


def train_cmd(
    task: str = typer.Argument(..., help="Task name (see `egokit tasks`)."),
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe over the task's own (optional)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides; model.KEY=VALUE for the model."),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="Initial checkpoint."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset folder (sets data=)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o"),
    precision: str = typer.Option("fp32", help="fp32, bf16 or fp16."),
    tokenizer: Optional[str] = typer.Option(None),
    seed: int = typer.Option(0),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue an interrupted run in the same output "
                                         "folder: 'latest' (its newest training checkpoint) or a checkpoint folder; "
                                         "give the same options as the interrupted command."),
) -> None:
    """Fine-tune on a task with its recipe; writes checkpoints and results under the output folder.

    SIGTERM, SIGINT (Ctrl-C) or SIGUSR1 stop the run after the current step with a checkpoint and print the command
    that continues it (exit code 128 + the signal number, e.g. 143 for SIGTERM); a second signal stops at once. A
    new run refuses an output folder that holds an earlier run (continue that one with --resume latest)."""
    if recipe is not None and "=" in str(recipe):  # `egokit train TASK key=value` without a recipe file
        overrides = [str(recipe), *(overrides or [])]
        recipe = None
    _run("train", task, ckpt, recipe, data, output, overrides, precision, seed, tokenizer, resume)
