"""Best-epoch selection on validation data, kept on disk.

Each improvement is written atomically to one folder (the previous best stays readable until the new one is
complete); nothing is copied in memory, so selection costs no RAM whatever the model size. What was selected so far
(``state_dict``) goes into every training checkpoint, so a resumed run compares against the same best.
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
    empty folder and is called (main process only) when ``metric`` improves. ``best`` holds the best validation's
    flattened metrics (plain Python numbers) with its ``epoch`` and ``step``; ``state_dict()`` /
    ``load_state_dict()`` carry it across a resume (``TaskContext.training_checkpoints(best=...)``)."""

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
            self.best = {**{k: _plain(v) for k, v in flat.items()}, "epoch": epoch, "step": step}
            if self.ctx.is_main:
                with atomic_dir(self.folder) as tmp:
                    self._save(tmp)
        self.ctx.accelerator.wait_for_everyone()
        return improved

    def state_dict(self) -> dict[str, Any]:
        return {"best": None if self.best is None else dict(self.best)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best = state.get("best")
        self.best = None if best is None else dict(best)


def _plain(value: Any) -> Any:
    """A numpy or 0-d torch scalar as the Python number it holds (what a checkpoint stores and JSON writes)."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    return value
