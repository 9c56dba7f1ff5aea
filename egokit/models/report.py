"""What happened when weights were loaded into a model (kept beside the model, never printed away)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadReport:
    """egokit reports instead of silently ignoring keys: ``missing`` (left at their init), ``unexpected`` (in the
    file, not in the model), ``dropped`` (fusion-only weights not loaded because the model runs as a dual encoder;
    kept on the CPU and written back by :func:`egokit.checkpoint.save_pretrained`)."""

    source: str
    sha256: str | None = None
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    inflated: str | None = None
    placeholders: list[str] = field(default_factory=list)
    num_heads: str | None = None  # official files: where the head count came from (shapes cannot record it)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
