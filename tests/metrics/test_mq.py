from __future__ import annotations

import pytest

from egokit.errors import DataError
from egokit.metrics import mq_map, mq_recall


def _gt(clip: str, label: str, start: float, end: float) -> dict:
    return {"clip_uid": clip, "label": label, "start": start, "end": end}


def _det(clip: str, label: str, start: float, end: float, score: float) -> dict:
    return {"video_id": clip, "label": label, "start": start, "end": end, "score": score}


MAP_GT = [_gt("c1", "a", 0, 10), _gt("c1", "a", 20, 30), _gt("c1", "b", 40, 50)]
MAP_DETS = [
    _det("c1", "a", 1, 10, 0.8),  # tIoU 0.9 with an already matched instance -> false positive
    _det("c1", "a", 0, 10, 0.9),  # tIoU 1 -> true positive
    _det("c1", "a", 20, 26, 0.7),  # tIoU 0.6 with the second instance
    _det("c2", "a", 0, 10, 0.95),  # clip without ground truth -> false positive
    _det("c1", "b", 40, 45, 0.5),  # tIoU exactly 0.5 (ActivityNet matching is >=)
    _det("c1", "z", 40, 50, 0.99),  # label absent from the ground truth: ignored
]


def test_map_hand_computed() -> None:
    # Class a by score: FP, TP, FP, TP at 0.5 -> precision 0, 1/2, 1/3, 1/2; recall 0, 1/2, 1/2, 1
    #   interpolated AP = 1/2 * 1/2 + 1/2 * 1/2 = 0.5.   At 0.7 the last one is a FP -> AP = 1/2 * 1/2 = 0.25.
    # Class b: TP at 0.5 -> AP 1; FP at 0.7 -> AP 0.
    out = mq_map(MAP_DETS, MAP_GT, tiou_thresholds=(0.5, 0.7))
    assert out == pytest.approx({"mAP@0.5": 75.0, "mAP@0.7": 12.5, "average_mAP": 43.75})


def test_map_class_without_detections_scores_zero() -> None:
    out = mq_map(MAP_DETS, [*MAP_GT, _gt("c1", "c", 0, 5)], tiou_thresholds=(0.5,))
    assert out["mAP@0.5"] == pytest.approx(50.0)  # (0.5 + 1 + 0) / 3


def test_map_default_thresholds_keys() -> None:
    out = mq_map(MAP_DETS, MAP_GT)
    assert list(out) == ["mAP@0.1", "mAP@0.2", "mAP@0.3", "mAP@0.4", "mAP@0.5", "average_mAP"]
    assert out["mAP@0.1"] == pytest.approx(75.0)


def test_recall_hand_computed() -> None:
    gt = [_gt("c1", "a", 0, 10), _gt("c1", "a", 20, 30), _gt("c1", "b", 40, 50), _gt("c2", "a", 0, 10)]
    dets = [  # given out of score order on purpose
        _det("c1", "a", 0, 10, 0.7),
        _det("c1", "a", 100, 110, 0.8),
        _det("c1", "a", 20, 30, 0.9),
        _det("c1", "a", 0, 10, 0.1),
        _det("c1", "b", 40, 47, 0.6),  # IoU exactly 0.7: not > 0.7
    ]
    # r=1: class a of c1 has 2 instances -> top-2 detections (scores 0.9, 0.8) retrieve only [20, 30].
    # r=5: all detections -> both a instances.  c2 has no detection: its instance is a miss.  4 instances in all.
    out = mq_recall(dets, gt)
    assert out == pytest.approx(
        {
            "R@1 tIoU=0.3": 50.0,
            "R@1 tIoU=0.5": 50.0,
            "R@1 tIoU=0.7": 25.0,
            "R@5 tIoU=0.3": 75.0,
            "R@5 tIoU=0.5": 75.0,
            "R@5 tIoU=0.7": 50.0,
        }
    )


def test_bad_records() -> None:
    with pytest.raises(DataError, match="clip_uid"):
        mq_map([{"label": "a", "start": 0, "end": 1, "score": 1}], MAP_GT)
    with pytest.raises(DataError, match="score"):
        mq_recall([{"clip_uid": "c1", "label": "a", "start": 0, "end": 1}], MAP_GT)
    with pytest.raises(DataError, match="empty"):
        mq_map(MAP_DETS, [])
