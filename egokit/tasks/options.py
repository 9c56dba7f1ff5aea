"""A task's options: packaged recipe, then a recipe file, then ``key=value`` overrides, validated before any work.

Layers are deep-merged (a recipe that sets ``finetune.lr`` keeps the rest of the packaged ``finetune``
section). The result is built into the task's ``Options`` dataclass, so an unknown or misspelt key, a wrong type,
or a selection metric the task does not report is an error naming the key, before a model is loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Optional

from egokit.errors import ConfigError
from egokit.recipes import apply_overrides, build, deep_merge, parse_yaml, read_yaml, to_dict
from egokit.tasks.base import Task

__all__ = ["default_options", "recipe_drift", "resolve_options", "selection_metric"]


@dataclass
class DataOptions:
    """Options of a task that reads a data folder: ``data`` and the paths that default to files inside it."""

    data: Optional[str] = None  # the task's data folder (``--data``)

    def data_path(self, explicit: Optional[str], name: str, option: str) -> Path:
        """``explicit`` when set, else ``<data>/<name>``; neither set is an error naming both options."""
        if explicit:
            return Path(explicit)
        if self.data is None:
            raise ConfigError(f"set data=<folder holding {name}> (or --data), or {option}=<path>")
        return Path(self.data) / name


def default_options(task: Task) -> dict[str, Any]:
    """The task's packaged recipe as a mapping (``{}`` when it ships none)."""
    text = task.recipe_text()
    return parse_yaml(text, f"{task.package}/{task.recipe}") if text is not None else {}


def resolve_options(task: Task, *, recipe: str | Path | None = None, options: Mapping[str, Any] | None = None,
                    overrides: Sequence[str] = (), data: str | None = None) -> Any:
    """The validated options object of ``task``: packaged recipe < ``recipe`` file < ``options`` mapping <
    ``overrides`` (``a.b=value``) < ``data`` (the ``--data`` option). A relative ``data`` in a recipe file is
    relative to that file's folder; on the command line, to the current directory."""
    merged = default_options(task)
    where = task.name
    if recipe is not None:
        layer = read_yaml(recipe)
        data_path = layer.get("data")
        if isinstance(data_path, str) and not Path(data_path).expanduser().is_absolute():
            # a recipe file's dataset is where the file says, wherever the command runs from
            layer["data"] = str(Path(recipe).parent / data_path)
        merged = deep_merge(merged, layer)
        where = f"{recipe}"
    if options:
        merged = deep_merge(merged, dict(options))
    merged = apply_overrides(merged, overrides)
    if data is not None:
        merged["data"] = data
    try:
        built = build(task.Options, merged, where="")
    except ConfigError as exc:
        raise ConfigError(f"{task.name} options ({where}): {exc}") from None
    selection_metric(task, built)
    task.validate(built)
    return built


def selection_metric(task: Task, options: Any):
    """The :class:`MetricSpec` that picks the best epoch: ``options.finetune.select`` or the headline metric."""
    finetune = getattr(options, "finetune", None)
    name = getattr(finetune, "select", None)
    try:
        return task.metric(name)
    except ConfigError:
        raise ConfigError(f"{task.name}: finetune.select={name!r} is not one of its metrics; choose one of "
                          f"{', '.join(task.metric_names)}") from None


def recipe_drift(task: Task) -> list[str]:
    """Keys whose packaged-recipe value differs from the ``Options`` dataclass default (the recipe documents the
    defaults; a difference means one of them was changed without the other)."""
    packaged = default_options(task)
    if not packaged:
        return []
    defaults = to_dict(task.Options())
    built = to_dict(build(task.Options, packaged))
    return [f"{k}: recipe {built[k]!r}, Options default {defaults[k]!r}"
            for k in defaults if _norm(built[k]) != _norm(defaults[k])]


def _norm(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value


def options_dict(options: Any) -> dict[str, Any]:
    return to_dict(options) if dataclasses.is_dataclass(options) else dict(options)
