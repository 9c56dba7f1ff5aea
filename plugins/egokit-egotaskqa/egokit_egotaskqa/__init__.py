"""EgoTaskQA for egokit: fusion-mode video question answering with per-reasoning-type accuracy (task ``egotaskqa``)."""

from __future__ import annotations

from egokit_egotaskqa.task import EgoTaskQA

__all__ = ["EgoTaskQA"]
