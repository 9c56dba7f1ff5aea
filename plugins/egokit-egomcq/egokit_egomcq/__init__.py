"""EgoMCQ for egokit: zero-shot multiple-choice retrieval with dual, VTM and ensemble scores (task ``egomcq``)."""

from __future__ import annotations

from egokit_egomcq.task import EgoMCQ

__all__ = ["EgoMCQ"]
