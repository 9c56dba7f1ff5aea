"""Ego4D Natural Language Queries: recall of the ranked predicted windows at temporal-IoU thresholds, and mIoU.

Semantics follow the official ``evaluate_ego4d_nlq.py`` (EgoVLPv2 ``EgoNLQ/utils``), so numbers match the
leaderboard script:

* one entry per *prediction* (queries without a prediction are not counted; duplicates count twice);
* a query is recalled at (k, theta) if any of its first k windows has IoU strictly greater than theta;
* IoU = intersection / (max end - min start); a zero-length prediction equal to a zero-length ground-truth window gives
  0/0 = NaN, which never exceeds a threshold, so it is a miss (this happens for oracle predictions: 342 of the 3,875
  val queries have zero-length windows);
* mIoU is what the official code computes, not what its expression suggests: it takes the mean of the three largest
  values of ``overlap[0]``, which is a one-element array holding the *rank-1* IoU, so mIoU is the mean rank-1 IoU
  (NaN if any rank-1 IoU is NaN, as with the official ``np.mean``).

Results are percentages keyed ``"R@{k} IoU={theta}"`` and ``"mIoU"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from egokit.errors import DataError

__all__ = ["nlq_ground_truth_windows", "nlq_recall"]

QueryKey = tuple[str, str, int]


def _field(record: Mapping[str, Any], name: str, where: str) -> Any:
    try:
        return record[name]
    except (KeyError, TypeError):
        raise DataError(f"NLQ {where}: missing field {name!r}") from None


def nlq_ground_truth_windows(gt_json: Mapping[str, Any]) -> dict[QueryKey, tuple[float, float]]:
    """Map ``(clip_uid, annotation_uid, query_idx)`` to the ground-truth ``(clip_start_sec, clip_end_sec)``.

    ``gt_json`` is the parsed official NLQ file (``videos -> clips -> annotations -> language_queries``);
    ``query_idx`` is the position of the query in its annotation's ``language_queries`` list.
    """
    windows: dict[QueryKey, tuple[float, float]] = {}
    for v, video in enumerate(_field(gt_json, "videos", "ground truth")):
        for c, clip in enumerate(_field(video, "clips", f"videos[{v}]")):
            where = f"videos[{v}].clips[{c}]"
            clip_uid = str(_field(clip, "clip_uid", where))
            for a, ann in enumerate(_field(clip, "annotations", where)):
                ann_where = f"{where}.annotations[{a}]"
                ann_uid = str(_field(ann, "annotation_uid", ann_where))
                for q, query in enumerate(_field(ann, "language_queries", ann_where)):
                    q_where = f"{ann_where}.language_queries[{q}]"
                    try:
                        start = float(_field(query, "clip_start_sec", q_where))
                        end = float(_field(query, "clip_end_sec", q_where))
                    except (TypeError, ValueError):
                        raise DataError(f"NLQ {q_where}: clip_start_sec/clip_end_sec are not numbers") from None
                    windows[(clip_uid, ann_uid, q)] = (start, end)
    return windows


def _window_iou(pred: np.ndarray, gt: tuple[float, float]) -> np.ndarray:
    """IoU of each (start, end) row of ``pred`` with one window; the union is the hull, as officially."""
    inter = np.maximum(0.0, np.minimum(pred[:, 1], gt[1]) - np.maximum(pred[:, 0], gt[0]))
    hull = np.maximum(0.0, np.maximum(pred[:, 1], gt[1]) - np.minimum(pred[:, 0], gt[0]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / hull


def _predicted_windows(pred: Mapping[str, Any], where: str) -> np.ndarray:
    try:
        times = np.asarray(_field(pred, "predicted_times", where), dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"NLQ {where}: predicted_times must be a list of [start, end] pairs") from None
    if times.ndim == 1 and times.shape == (2,):
        times = times[None]  # a single bare [start, end]
    if times.ndim != 2 or times.shape[1] != 2 or len(times) == 0:
        raise DataError(f"NLQ {where}: predicted_times must be a non-empty list of [start, end] pairs")
    return times


def nlq_recall(
    predictions: Iterable[Mapping[str, Any]],
    ground_truth: Mapping[str, Any],
    iou_thresholds: Sequence[float] = (0.3, 0.5),
    top_k: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Recall@k at IoU > theta and mIoU, in percent, for an official-format prediction list.

    Args:
        predictions: the ``results`` list of an NLQ submission: dicts with ``clip_uid``, ``annotation_uid``,
            ``query_idx`` and ``predicted_times`` (``[start, end]`` windows in rank order).
        ground_truth: the parsed official NLQ JSON.
        iou_thresholds: strict IoU thresholds.
        top_k: ranks at which recall is measured.
    """
    windows = nlq_ground_truth_windows(ground_truth)
    hits: list[list[list[bool]]] = [[[] for _ in top_k] for _ in iou_thresholds]
    rank1_iou: list[float] = []
    for i, pred in enumerate(predictions):
        where = f"predictions[{i}]"
        try:
            key = (
                str(_field(pred, "clip_uid", where)),
                str(_field(pred, "annotation_uid", where)),
                int(_field(pred, "query_idx", where)),
            )
        except (TypeError, ValueError):
            raise DataError(f"NLQ {where}: query_idx is not an integer") from None
        if key not in windows:
            raise DataError(f"NLQ {where}: no ground-truth query for (clip_uid, annotation_uid, query_idx) = {key}")
        iou = _window_iou(_predicted_windows(pred, where), windows[key])
        rank1_iou.append(float(iou[0]))
        for t, theta in enumerate(iou_thresholds):
            above = iou > theta  # NaN compares False: a miss
            for r, k in enumerate(top_k):
                hits[t][r].append(bool(above[:k].any()))
    if not rank1_iou:
        raise DataError("NLQ: no predictions to evaluate")
    out: dict[str, float] = {}
    for r, k in enumerate(top_k):
        for t, theta in enumerate(iou_thresholds):
            out[f"R@{k} IoU={theta:g}"] = float(np.mean(hits[t][r]) * 100.0)
    out["mIoU"] = float(np.mean(rank1_iou) * 100.0)
    return out
