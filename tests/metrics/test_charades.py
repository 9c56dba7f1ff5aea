from __future__ import annotations

import math

import numpy as np
import pytest

from egokit.metrics import charades_map


def test_hand_computed_map() -> None:
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    scores = np.array(
        [
            [0.9, 0.2, 0.5],
            [0.8, 0.9, 0.4],
            [0.1, 0.3, 0.3],
            [0.95, 0.99, 0.9],  # no positive label: forced to -inf, so it cannot outrank anything
        ]
    )
    # class 0: ranking v0, v1, v2, v3 -> positives at ranks 1 and 3 -> AP = (1 + 2/3) / 2 = 5/6
    # class 1: v1 first -> AP = 1;  class 2: no positive -> skipped.   mAP = (5/6 + 1) / 2 = 11/12
    assert charades_map(scores, labels) == pytest.approx(11 / 12)
    assert scores[3, 0] == 0.95  # the caller's array is not modified


def test_no_positive_anywhere_is_nan() -> None:
    assert math.isnan(charades_map(np.ones((2, 2)), np.zeros((2, 2))))
