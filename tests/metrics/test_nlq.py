from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from egokit.errors import DataError
from egokit.metrics import nlq_ground_truth_windows, nlq_recall

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "nlq" / "nlq_val_small.json"

GT = {
    "videos": [
        {
            "video_uid": "v1",
            "clips": [
                {
                    "clip_uid": "c1",
                    "annotations": [
                        {
                            "annotation_uid": "a1",
                            "language_queries": [
                                {"clip_start_sec": 10.0, "clip_end_sec": 20.0},
                                {"clip_start_sec": 0.0, "clip_end_sec": 10.0},
                                {"clip_start_sec": 5.0, "clip_end_sec": 5.0},  # zero-length window
                            ],
                        }
                    ],
                }
            ],
        }
    ]
}


def _pred(idx: int, times: list[list[float]]) -> dict:
    return {"clip_uid": "c1", "annotation_uid": "a1", "query_idx": idx, "predicted_times": times}


def test_strict_threshold_ranking_and_rank1_miou() -> None:
    preds = [
        _pred(0, [[12.0, 15.0], [0.0, 1.0], [10.0, 20.0]]),  # rank-1 IoU exactly 0.3 (miss); rank 3 IoU 1
        _pred(1, [[0.0, 8.0]]),  # IoU 0.8
    ]
    out = nlq_recall(preds, GT)
    assert out["R@1 IoU=0.3"] == 50.0  # 0.3 is not > 0.3
    assert out["R@5 IoU=0.3"] == 100.0  # the rank-3 hit counts within the top 5
    assert out["R@1 IoU=0.5"] == 50.0
    assert out["R@5 IoU=0.5"] == 100.0
    # Official mIoU reduces to the rank-1 IoU: (0.3 + 0.8) / 2, not a top-3 mean.
    assert out["mIoU"] == pytest.approx(55.0)
    assert list(out) == ["R@1 IoU=0.3", "R@1 IoU=0.5", "R@5 IoU=0.3", "R@5 IoU=0.5", "mIoU"]


def test_zero_length_ground_truth() -> None:
    oracle = nlq_recall([_pred(2, [[5.0, 5.0]])], GT, iou_thresholds=(0.01,), top_k=(1,))
    assert oracle["R@1 IoU=0.01"] == 0.0  # 0/0 = NaN IoU counts as a miss
    assert math.isnan(oracle["mIoU"])
    around = nlq_recall([_pred(2, [[4.0, 6.0]])], GT, iou_thresholds=(0.01,), top_k=(1,))
    assert around == {"R@1 IoU=0.01": 0.0, "mIoU": 0.0}  # zero intersection, non-zero hull


def test_unknown_query_and_bad_times() -> None:
    with pytest.raises(DataError, match="no ground-truth query"):
        nlq_recall([_pred(3, [[0.0, 1.0]])], GT)
    with pytest.raises(DataError, match="predicted_times"):
        nlq_recall([_pred(0, [])], GT)


def test_real_format_fixture_with_oracle_predictions() -> None:
    gt = json.loads(FIXTURE.read_text())
    windows = nlq_ground_truth_windows(gt)
    assert len(windows) == 6
    key = ("e1c79556-e8af-4e26-bc4c-633100277239", "37236893-0000-0000-0000-000000000000", 1)
    assert windows[key] == (58.02052, 68.40373)
    preds = [
        {"clip_uid": c, "annotation_uid": a, "query_idx": q, "predicted_times": [[s, e], [0.0, 1.0]]}
        for (c, a, q), (s, e) in windows.items()
    ]
    out = nlq_recall(preds, gt, iou_thresholds=(0.3, 0.5, 0.01), top_k=(1, 3, 5))
    assert all(v == 100.0 for v in out.values()), out
