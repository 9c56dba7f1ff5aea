"""Budgeted shot selection: highest scores first until the budget is full, returned in time order."""

from __future__ import annotations

from collections.abc import Sequence

from egokit.errors import ConfigError
from egokit.summarize.shots import Shot


def default_budget(num_shots: int) -> int:
    """20 % of the shots, at least one: used when neither a shot nor a seconds budget is given."""
    return max(1, round(0.2 * num_shots))


def select_shots(scores: Sequence[float], shots: Sequence[Shot], *, budget_shots: int | None = None,
                 budget_seconds: float | None = None) -> list[int]:
    """Indices of the selected shots, in time order.

    Shots are taken by decreasing score (ties: earlier shot first); with ``budget_seconds`` a shot that would
    overflow the budget is skipped and shorter lower-scored ones may still fit. Both budgets may be combined.
    """
    if len(scores) != len(shots):
        raise ValueError(f"{len(scores)} scores for {len(shots)} shots")
    if budget_shots is not None and budget_shots < 1:
        raise ConfigError(f"--budget-shots must be >= 1, got {budget_shots}")
    if budget_seconds is not None and not budget_seconds > 0:
        raise ConfigError(f"--budget-seconds must be > 0, got {budget_seconds}")
    if budget_shots is None and budget_seconds is None:
        budget_shots = default_budget(len(shots))
    order = sorted(range(len(shots)), key=lambda i: (-float(scores[i]), i))
    chosen: list[int] = []
    used = 0.0
    for i in order:
        if budget_shots is not None and len(chosen) >= budget_shots:
            break
        if budget_seconds is not None and used + shots[i].duration > budget_seconds + 1e-6:
            continue
        chosen.append(i)
        used += shots[i].duration
    return sorted(chosen)
