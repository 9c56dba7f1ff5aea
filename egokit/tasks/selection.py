"""Best-epoch selection on validation data, kept on disk.

Each improvement is written atomically to one folder (the previous best stays readable until the new one is
complete); nothing is copied in memory, so selection costs no RAM whatever the model size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from egokit.results import flatten_metrics
from egokit.tasks.base import MetricSpec

__all__ = ["BestCheckpoint"]


class BestCheckpoint:
    """``update(metrics, epoch, step)`` after each validation; ``save(folder)`` writes the current state into an
    empty folder and is called (main process only) when ``metric`` improves."""

    def __init__(self, ctx, metric: MetricSpec, folder: str | Path, save: Callable[[Path], Any]) -> None:
        self.ctx, self.metric, self.folder, self._save = ctx, metric, Path(folder), save
        self.best: dict[str, Any] | None = None

    @property
    def value(self) -> float | None:
        return None if self.best is None else self.best[self.metric.name]

    def update(self, metrics: dict[str, Any], epoch: int, step: int) -> bool:
        from egokit.errors import ConfigError
        from egokit.io import atomic_dir

        flat = flatten_metrics(metrics)
        if self.metric.name not in flat:
            raise ConfigError(f"selection metric {self.metric.name!r} is not in the validation metrics "
                              f"({', '.join(flat)})")
        improved = self.metric.better(float(flat[self.metric.name]), self.value)
        if improved:
            self.best = {**flat, "epoch": epoch, "step": step}
            if self.ctx.is_main:
                with atomic_dir(self.folder) as tmp:
                    self._save(tmp)
        self.ctx.accelerator.wait_for_everyone()
        return improved
