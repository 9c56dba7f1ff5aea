"""EPIC-KITCHENS-100 multi-instance retrieval plugin for egokit (task ``ek100-mir``).

The entry point names :class:`~egokit_ek100.task.EK100Retrieval`; importing this package loads neither torch nor
numpy (``relevancy_from_csv`` is imported on first use).
"""

from __future__ import annotations

from typing import Any

from egokit_ek100.task import EK100Retrieval

__all__ = ["EK100Retrieval", "relevancy_from_csv"]


def __getattr__(name: str) -> Any:
    if name == "relevancy_from_csv":
        from egokit_ek100.relevancy import relevancy_from_csv

        return relevancy_from_csv
    raise AttributeError(f"module 'egokit_ek100' has no attribute {name!r}")
