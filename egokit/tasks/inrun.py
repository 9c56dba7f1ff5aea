"""Task plugins evaluated during pretraining (``eval.tasks`` in a pretraining recipe), on the in-memory model.

Each entry's options are resolved and validated when the evaluator is built, before the first training step, so a
typo or a missing dataset fails at once rather than thousands of steps in. Options an entry leaves unset default to
the pretraining data: ``data`` to ``data.root``, ``num_frames`` to ``data.num_frames`` (the model's frame count),
``chunk_seconds`` and ``num_workers`` to the data section's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from egokit.tasks.base import Task, metric_table

__all__ = ["TaskEvaluator"]

_FROM_DATA = {"data": "root", "num_frames": "num_frames", "chunk_seconds": "chunk_seconds",
              "num_workers": "num_workers"}


@dataclass
class _Entry:
    task: Task
    options: dict[str, Any]
    every: int


class TaskEvaluator:
    """``due(step, total)`` / ``evaluator(accelerator, model, tokenizer, step, final)`` for the training loop."""

    def __init__(self, recipe, console) -> None:
        import dataclasses

        from egokit.errors import ConfigError
        from egokit.tasks.options import resolve_options
        from egokit.tasks.registry import get_task

        self.console, self.output_dir = console, recipe.output_dir
        self.entries: list[_Entry] = []
        for i, spec in enumerate(recipe.eval.tasks):
            if not spec.name:
                raise ConfigError(f"eval.tasks[{i}]: set name (one of `egokit tasks`)")
            task = get_task(spec.name)
            fields = {f.name for f in dataclasses.fields(task.Options)}
            options = dict(spec.options)
            for key, source in _FROM_DATA.items():
                if key in fields and options.get(key) is None:
                    options[key] = getattr(recipe.data, source)
            try:
                resolve_options(task, options=options)
            except ConfigError as exc:
                raise ConfigError(f"eval.tasks[{i}] ({spec.name}): {exc}") from None
            every = recipe.eval.every if spec.every is None else spec.every
            self.entries.append(_Entry(task, options, every))

    def due(self, step: int, total: int) -> bool:
        return any(e.every and step % e.every == 0 for e in self.entries)

    def __call__(self, accelerator, model, tokenizer, step: int, final: bool) -> dict[str, Any]:
        from pathlib import Path

        from egokit.tasks.runner import run_task

        out = {}
        for entry in self.entries:
            if not final and not (entry.every and step % entry.every == 0):
                continue
            run = run_task(entry.task, "eval", options=entry.options, accelerator=accelerator, model=model,
                           tokenizer_object=tokenizer, output_dir=Path(self.output_dir) / "eval" / entry.task.name,
                           console=self.console, write_results=final)
            out[entry.task.name] = run.metrics
            if accelerator.is_main_process:
                shown = ", ".join(f"{k} {v}" for k, v in metric_table(entry.task.metrics, run.metrics)[:6])
                self.console.print(f"step {step} {entry.task.name}: {shown}", highlight=False)
        return out
