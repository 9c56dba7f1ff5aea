"""Ego4D Moment Queries: ActivityNet-style detection mAP and the episodic-memory retrieval recall.

``mq_map`` follows the official ``eval_detection.py`` (EgoMQ/Evaluation/ego4d, ActivityNet lineage):

* classes are those present in the ground truth; detections of other labels are ignored; a class without any
  detection has AP 0;
* per class, detections are visited by decreasing score (numpy's default ``argsort`` reversed, so ties go to the
  later detection as in the official code); each one is matched to the still-unmatched ground-truth instance of the
  same clip with the highest tIoU, provided that tIoU >= threshold (the highest-tIoU instance below the threshold
  stops the search: false positive); each ground-truth instance is matched at most once per threshold;
* AP is the VOC-2011 interpolated area under the precision/recall curve; mAP is the mean over classes and
  ``average_mAP`` the mean over thresholds.

``mq_recall`` follows ``get_retrieval_performance.py``: for each ground-truth (clip, class) with n instances, an
instance is retrieved at (r, theta) if one of the r*n highest-scoring detections of that class in that clip overlaps
it with IoU strictly greater than theta; recall is the fraction of retrieved instances. The official script reads the
detections in file order, which its writer sorts by score; egokit sorts by score (stable) itself. A ground-truth clip
without any detection counts as all misses (the official script would raise a KeyError).

Records are dicts: detections ``{clip_uid | video_id, label, start, end, score}``, ground truth
``{clip_uid | video_id, label, start, end}``. Results are percentages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from egokit.errors import DataError

__all__ = ["mq_map", "mq_recall"]

DEFAULT_MAP_TIOUS = (0.1, 0.2, 0.3, 0.4, 0.5)
DEFAULT_RECALL_TIOUS = (0.3, 0.5, 0.7)


def _records(items: Iterable[Mapping[str, Any]], kind: str, with_score: bool) -> list[tuple[Hashable, ...]]:
    """Normalise records to ``(clip, label, start, end[, score])`` tuples, with errors naming the bad field."""
    out = []
    for i, rec in enumerate(items):
        where = f"MQ {kind}[{i}]"
        clip = rec.get("clip_uid", rec.get("video_id")) if isinstance(rec, Mapping) else None
        if clip is None:
            raise DataError(f"{where}: needs a 'clip_uid' or 'video_id' field")
        fields = ("label", "start", "end", "score") if with_score else ("label", "start", "end")
        missing = [f for f in fields if f not in rec]
        if missing:
            raise DataError(f"{where}: missing field(s) {missing}")
        try:
            numbers = tuple(float(rec[f]) for f in fields[1:])
        except (TypeError, ValueError):
            raise DataError(f"{where}: start/end{'/score' if with_score else ''} must be numbers") from None
        out.append((clip, rec["label"], *numbers))
    return out


def _segment_iou(target: tuple[float, float], candidates: np.ndarray) -> np.ndarray:
    """tIoU of one segment with each candidate row (true union: sum of lengths minus intersection)."""
    inter = (np.minimum(target[1], candidates[:, 1]) - np.maximum(target[0], candidates[:, 0])).clip(0)
    union = (candidates[:, 1] - candidates[:, 0]) + (target[1] - target[0]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def _interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC-2011 AP: area under the precision envelope (max precision at any higher recall)."""
    prec = np.concatenate([[0.0], precision, [0.0]])
    rec = np.concatenate([[0.0], recall, [1.0]])
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    steps = np.flatnonzero(rec[1:] != rec[:-1]) + 1
    return float(np.sum((rec[steps] - rec[steps - 1]) * prec[steps]))


def _class_ap(
    gt: list[tuple[Hashable, float, float]], dets: list[tuple[Hashable, float, float, float]], tious: Sequence[float]
) -> np.ndarray:
    if not dets:
        return np.zeros(len(tious))
    gt_by_clip: dict[Hashable, list[int]] = defaultdict(list)
    for g, (clip, _, _) in enumerate(gt):
        gt_by_clip[clip].append(g)
    gt_segments = np.array([[s, e] for _, s, e in gt], dtype=np.float64)
    order = np.argsort(np.array([d[3] for d in dets]))[::-1]  # as the official `.argsort()[::-1]`
    taken = np.zeros((len(tious), len(gt)), dtype=bool)
    tp = np.zeros((len(tious), len(dets)))
    for rank, d in enumerate(order):
        clip, start, end, _ = dets[d]
        members = gt_by_clip.get(clip)
        if not members:
            continue  # false positive at every threshold
        tiou = _segment_iou((start, end), gt_segments[members])
        by_overlap = np.argsort(tiou)[::-1]
        for t, thr in enumerate(tious):
            for j in by_overlap:
                if tiou[j] < thr:
                    break
                g = members[j]
                if not taken[t, g]:
                    taken[t, g] = True
                    tp[t, rank] = 1.0
                    break
    tp_cum = np.cumsum(tp, axis=1)
    precision = tp_cum / np.arange(1, len(dets) + 1)
    recall = tp_cum / len(gt)
    return np.array([_interpolated_ap(precision[t], recall[t]) for t in range(len(tious))])


def mq_map(
    detections: Iterable[Mapping[str, Any]],
    ground_truth: Iterable[Mapping[str, Any]],
    tiou_thresholds: Sequence[float] = DEFAULT_MAP_TIOUS,
) -> dict[str, float]:
    """Detection mAP (%) at each tIoU threshold, keyed ``"mAP@{t}"``, plus their mean as ``"average_mAP"``."""
    gts = _records(ground_truth, "ground_truth", with_score=False)
    dets = _records(detections, "detections", with_score=True)
    if not gts:
        raise DataError("MQ ground truth is empty")
    gt_by_label: dict[Hashable, list[tuple[Hashable, float, float]]] = defaultdict(list)
    for clip, label, start, end in gts:
        gt_by_label[label].append((clip, start, end))
    det_by_label: dict[Hashable, list[tuple[Hashable, float, float, float]]] = defaultdict(list)
    for clip, label, start, end, score in dets:
        if label in gt_by_label:
            det_by_label[label].append((clip, start, end, score))
    ap = np.stack([_class_ap(g, det_by_label.get(label, []), tiou_thresholds) for label, g in gt_by_label.items()])
    per_threshold = ap.mean(axis=0) * 100.0
    out = {f"mAP@{t:g}": float(v) for t, v in zip(tiou_thresholds, per_threshold)}
    out["average_mAP"] = float(per_threshold.mean())
    return out


def _hull_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(P, G) IoU with the hull as union, as the official retrieval script."""
    inter = np.maximum(0.0, np.minimum(pred[:, None, 1], gt[None, :, 1]) - np.maximum(pred[:, None, 0], gt[None, :, 0]))
    hull = np.maximum(0.0, np.maximum(pred[:, None, 1], gt[None, :, 1]) - np.minimum(pred[:, None, 0], gt[None, :, 0]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / hull


def mq_recall(
    detections: Iterable[Mapping[str, Any]],
    ground_truth: Iterable[Mapping[str, Any]],
    top_k: Sequence[int] = (1, 5),
    tiou_thresholds: Sequence[float] = DEFAULT_RECALL_TIOUS,
) -> dict[str, float]:
    """Retrieval recall (%) keyed ``"R@{r} tIoU={t}"``; r multiplies the clip's ground-truth count of the class."""
    gts = _records(ground_truth, "ground_truth", with_score=False)
    dets = _records(detections, "detections", with_score=True)
    if not gts:
        raise DataError("MQ ground truth is empty")
    gt_groups: dict[tuple[Hashable, Hashable], list[tuple[float, float]]] = defaultdict(list)
    for clip, label, start, end in gts:
        gt_groups[(clip, label)].append((start, end))
    det_groups: dict[tuple[Hashable, Hashable], list[tuple[float, float, float]]] = defaultdict(list)
    for clip, label, start, end, score in dets:
        det_groups[(clip, label)].append((start, end, score))
    retrieved = np.zeros((len(tiou_thresholds), len(top_k)))
    for key, windows in gt_groups.items():
        cands = sorted(det_groups.get(key, []), key=lambda d: -d[2])
        if not cands:
            continue
        iou = _hull_iou(np.array([c[:2] for c in cands]), np.array(windows))
        for t, thr in enumerate(tiou_thresholds):
            above = iou > thr
            for r, k in enumerate(top_k):
                retrieved[t, r] += above[: k * len(windows)].any(axis=0).sum()
    recall = retrieved / len(gts) * 100.0
    return {
        f"R@{k} tIoU={thr:g}": float(recall[t, r]) for r, k in enumerate(top_k) for t, thr in enumerate(tiou_thresholds)
    }
