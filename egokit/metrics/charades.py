"""Charades-Ego multi-label action recognition mAP (the approximate, per-class "map" of the official code).

Follows ``charades_metrics_vtc``/``map`` in EgoVLPv2 ``model/metric.py`` (itself the approximate Python version of
the Charades MATLAB script): videos without any positive label get -inf scores for every class, each class ranks the
videos by score and averages the precision at its positives, and classes without a positive are skipped (nanmean).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["charades_map"]


def charades_map(scores: Any, labels: Any) -> float:
    """Mean over classes of per-class average precision, as a fraction (NaN if no class has a positive).

    Args:
        scores: (N_videos, N_classes) prediction scores.
        labels: (N_videos, N_classes) multi-hot ground truth; a cell is positive iff it equals 1.
    """
    scores = np.array(scores, dtype=np.float64)  # copy: rows are overwritten below
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f"scores and labels must be 2-D with equal shapes; got {scores.shape} and {labels.shape}")
    positive = labels == 1
    scores[labels.sum(axis=1) == 0, :] = -np.inf
    order = np.argsort(-scores, axis=0)  # default kind, per column, as the official per-class argsort
    tp = np.take_along_axis(positive, order, axis=0)
    precision = np.cumsum(tp, axis=0) / np.arange(1, len(scores) + 1)[:, None]
    n_pos = tp.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(tp, precision, 0.0).sum(axis=0) / n_pos
    ap[n_pos == 0] = np.nan
    if np.isnan(ap).all():
        return float("nan")
    return float(np.nanmean(ap))
