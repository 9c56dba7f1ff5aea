"""Task heads on disk: one format for every head egokit trains.

A head folder holds ``head.safetensors`` (the state dict) and ``head.json``::

    {"format": 1, "head_type": "vslnet", "config": {...constructor arguments...}, "task": "nlq", ...task info}

``head_type`` names the class in the task's :class:`HeadRegistry`, ``config`` rebuilds it (``cls(**config)``),
and the remaining keys are what the task needs to use it again (feature recipe, class names, answer set...).
Folders written before the format had a version (NLQ/MQ heads without ``head_type``) still load: the task names
the head type such a folder holds (``legacy_type``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egokit.errors import CheckpointError, ConfigError
from egokit.io import atomic_path, write_json_atomic

__all__ = ["HEAD_CONFIG", "HEAD_FORMAT", "HEAD_WEIGHTS", "HeadRegistry", "HeadSpec", "has_head", "load_head",
           "read_head_info", "save_head"]

HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "head.json"
HEAD_FORMAT = 1


@dataclass(frozen=True)
class HeadSpec:
    """One kind of head a task can train: its class, the option defaults it brings, and how it is used.

    ``build(options, split) -> module`` makes a fresh head for a task's options and training split;
    ``loss(head, batch, options) -> tensor`` and ``predict(head, batch, split, options) -> list`` (decoded
    records for the batch) are what the feature-head family calls, so no task code branches on a head's class.
    ``defaults`` fill the options left unset (``None``) when this head is chosen (sizes, learning rate).
    ``config_of(head)`` gives the constructor arguments that are saved (``head.config``: a dict, or a
    dataclass whose fields are the keyword arguments)."""

    name: str
    cls: type
    build: Callable[..., Any]
    loss: Callable[..., Any]
    predict: Callable[..., list] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def config_of(self, head) -> dict[str, Any]:
        config = getattr(head, "config", None)
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            return dataclasses.asdict(config)
        if not isinstance(config, Mapping):
            raise TypeError(f"head {self.name!r}: {type(head).__name__}.config must be a dict (or a dataclass) of "
                            "constructor arguments")
        return dict(config)


class HeadRegistry:
    """The heads of one task, by name (timm-style: ``registry[name]``, ``registry.names()``)."""

    def __init__(self, *specs: HeadSpec, default: str | None = None) -> None:
        self._specs = {s.name: s for s in specs}
        if len(self._specs) != len(specs):
            raise ValueError("head names must be unique")
        self.default = default or (specs[0].name if specs else None)

    def names(self) -> list[str]:
        return list(self._specs)

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def __getitem__(self, name: str) -> HeadSpec:
        if name not in self._specs:
            raise ConfigError(f"unknown head type {name!r}: head_type must be one of {', '.join(self._specs)}")
        return self._specs[name]

    def classes(self) -> dict[str, type]:
        return {name: spec.cls for name, spec in self._specs.items()}

    def spec_of(self, head) -> HeadSpec:
        """The spec whose class ``head`` is (exact type, not a subclass match)."""
        for spec in self._specs.values():
            if type(head) is spec.cls:
                return spec
        raise TypeError(f"{type(head).__name__} is not a registered head ({', '.join(self._specs)})")


def save_head(folder: str | os.PathLike, head, head_type: str, config: Mapping[str, Any],
              **info: Any) -> Path:
    """Write ``head.safetensors`` then ``head.json`` (each atomically; the JSON last, so a folder with a
    ``head.json`` always has its weights)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    with atomic_path(folder / HEAD_WEIGHTS) as tmp:
        save_file(tensors, str(tmp))
    write_json_atomic(folder / HEAD_CONFIG, {"format": HEAD_FORMAT, "head_type": head_type, "config": dict(config),
                                             **info})
    return folder


def has_head(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    return (folder / HEAD_CONFIG).is_file() and (folder / HEAD_WEIGHTS).is_file()


def read_head_info(folder: str | os.PathLike, what: str = "egokit train") -> dict[str, Any]:
    folder = Path(folder)
    if not has_head(folder):
        raise CheckpointError(f"no trained head in {folder} (expected {HEAD_CONFIG} + {HEAD_WEIGHTS} from "
                              f"`{what}`); pass the folder that holds them")
    try:
        info = json.loads((folder / HEAD_CONFIG).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{folder / HEAD_CONFIG}: not valid JSON ({exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise CheckpointError(f"{folder / HEAD_CONFIG}: expected an object with a 'config' mapping")
    if info.get("format", HEAD_FORMAT) > HEAD_FORMAT:
        raise CheckpointError(f"{folder / HEAD_CONFIG}: head format {info['format']} is newer than this egokit "
                              f"reads ({HEAD_FORMAT}); upgrade egokit")
    return info


def load_head(folder: str | os.PathLike, classes: Mapping[str, type] | type, *, what: str = "egokit train",
              legacy_type: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild a head written by :func:`save_head` as the class its ``head_type`` names, in eval mode.

    ``classes`` maps head types to classes (a task's :meth:`HeadRegistry.classes`), or is the one class of a
    single-head task. ``legacy_type`` is the type of folders written before ``head_type`` was recorded."""
    from safetensors.torch import load_file

    folder = Path(folder)
    info = read_head_info(folder, what)
    if isinstance(classes, Mapping):
        head_type = info.get("head_type", legacy_type)
        if head_type not in classes:
            raise CheckpointError(f"{folder / HEAD_CONFIG}: unknown head_type {head_type!r} "
                                  f"(known: {', '.join(classes)})")
        cls = classes[head_type]
    else:
        cls = classes
    try:
        head = cls(**info["config"])
        head.load_state_dict(load_file(str(folder / HEAD_WEIGHTS)))
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{folder}: the saved head does not fit {cls.__name__} "
                              f"({str(exc).splitlines()[0][:200]})") from None
    return head.eval(), info
