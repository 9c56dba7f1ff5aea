"""What a task plugin declares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

FUSION_MODES = ("dual", "fusion", "ensemble")


@dataclass(frozen=True)
class TaskSpec:
    """A downstream task: its name, how it uses the model, its metrics and entry functions.

    ``evaluate(ctx) -> dict`` runs evaluation; ``train(ctx) -> dict`` fine-tunes (optional). ``build_dataset`` and
    ``build_head`` are optional factories the task's own code (and users) can call. ``default_recipe`` is a YAML
    recipe shipped inside the plugin package (importlib.resources path string ``package:file.yaml``).
    """

    name: str
    description: str
    fusion_mode: str
    metrics: tuple[str, ...]
    evaluate: Callable[..., dict]
    train: Optional[Callable[..., dict]] = None
    build_dataset: Optional[Callable[..., Any]] = None
    build_head: Optional[Callable[..., Any]] = None
    default_recipe: Optional[str] = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from egokit.errors import PluginError

        if self.fusion_mode not in FUSION_MODES:
            raise PluginError(f"task {self.name!r}: fusion_mode must be one of {FUSION_MODES}, got {self.fusion_mode!r}")
        if not callable(self.evaluate):
            raise PluginError(f"task {self.name!r}: evaluate must be callable")
