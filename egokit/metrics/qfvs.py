"""QFVS (query-focused video summarisation, UT-Egocentric) semantic precision / recall / F1.

Follows ``calculate_semantic_matching`` in the official ``QFVS/semantic_evaluation.py``: the similarity of two shots
is the IoU of their 48-concept tag vectors (0 when both are empty), predicted and ground-truth shots are paired by a
maximum-weight bipartite matching, precision = matched weight / #predicted shots, recall = matched weight / #GT
shots, F1 their harmonic mean. When the matched weight is 0 the official code computes 0.0 / 0.0 with numpy
floats, i.e. precision = recall = 0 and F1 = NaN; egokit returns the same.

The official code uses ``networkx.max_weight_matching``; egokit uses ``scipy.optimize.linear_sum_assignment`` with
``maximize=True``. Both give the same total weight: the graph is complete bipartite with weights >= 0, so any
matching can be grown to one of size min(m, n) by adding unused pairs without lowering its weight; hence the maximum
over all matchings equals the maximum over assignments of size min(m, n), which is what ``linear_sum_assignment``
solves for a rectangular matrix (tests compare it against brute force).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egokit.errors import DataError

__all__ = ["load_qfvs_tags", "qfvs_f1", "shot_concept_iou"]


def load_qfvs_tags(path: str | Path) -> list[np.ndarray]:
    """Read the official ``Tags.mat``: one binary (n_shots, 48) uint8 array per UT-Egocentric video (P01..P04)."""
    from scipy.io import loadmat  # lazy: scipy is only needed for QFVS

    path = Path(path)
    if not path.is_file():
        raise DataError(f"QFVS tags file not found: {path}")
    try:
        videos = loadmat(str(path))["Tags"][0]
        # Each video is a struct whose only field (Bin_Vecs) is a column of cells holding one (1, 48) row each.
        tags = [np.stack([np.asarray(cell[0]).reshape(-1) for cell in video[0][:, 0]]) for video in videos]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a QFVS Tags.mat (expected Tags{{video}}.Bin_Vecs{{shot}} = 1x48): {exc}") from exc
    return [t.astype(np.uint8) for t in tags]


def shot_concept_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU between binary concept rows; 0 where both rows are empty (as officially)."""
    a = np.asarray(a) > 0
    b = np.asarray(b) > 0
    inter = a.astype(np.float64) @ b.T.astype(np.float64)
    union = a.sum(axis=1)[:, None] + b.sum(axis=1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def qfvs_f1(machine_summary: Sequence[int], gt_summary: Sequence[int], shot_tags: Any) -> dict[str, float]:
    """Semantic precision, recall and F1 (fractions) of a predicted summary against a ground-truth summary.

    Args:
        machine_summary: 0-based indices of the predicted shots.
        gt_summary: 0-based indices of the ground-truth (oracle) shots.
        shot_tags: (n_shots, 48) binary concept matrix of the video (one entry of :func:`load_qfvs_tags`).
    """
    from scipy.optimize import linear_sum_assignment  # lazy: scipy is only needed for QFVS

    tags = np.asarray(shot_tags)
    pred = np.asarray(machine_summary, dtype=np.int64).reshape(-1)
    gt = np.asarray(gt_summary, dtype=np.int64).reshape(-1)
    if len(pred) == 0 or len(gt) == 0:
        raise ValueError("QFVS summaries must be non-empty")
    for name, idx in (("machine_summary", pred), ("gt_summary", gt)):
        if idx.min() < 0 or idx.max() >= len(tags):
            raise ValueError(f"{name} has shot indices outside [0, {len(tags)})")
    weights = shot_concept_iou(tags[pred], tags[gt])
    rows, cols = linear_sum_assignment(weights, maximize=True)
    matched = float(weights[rows, cols].sum())
    precision = matched / len(pred)
    recall = matched / len(gt)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1}
