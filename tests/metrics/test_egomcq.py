from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from egokit.metrics import egomcq_accuracy

SCORES = [
    [0.1, 0.9, 0.2, 0.3, 0.0],  # inter, answer 1 -> correct
    [0.5, 0.5, 0.1, 0.1, 0.1],  # inter, answer 1 -> tie, first maximum is 0 -> wrong
    [0.0, 0.0, 0.0, 0.0, 1.0],  # intra, answer 4 -> correct
    [1.0, 0.0, 0.0, 0.0, 0.0],  # inter, answer 2 -> wrong
]
ANSWERS = [1, 1, 4, 2]
TYPES = [1, 1, 2, 1]


def test_per_type_percent_and_first_maximum() -> None:
    out = egomcq_accuracy(SCORES, ANSWERS, TYPES)
    assert out["inter"] == pytest.approx(100.0 / 3.0)
    assert out["intra"] == 100.0


def test_accepts_tensors() -> None:
    out = egomcq_accuracy(torch.tensor(SCORES), torch.tensor(ANSWERS), torch.tensor(TYPES))
    assert out["inter"] == pytest.approx(100.0 / 3.0)


def test_absent_type_is_nan() -> None:
    out = egomcq_accuracy(np.array(SCORES[2:3]), [4], [2])
    assert math.isnan(out["inter"]) and out["intra"] == 100.0


def test_rejects_unknown_type_and_bad_shapes() -> None:
    with pytest.raises(ValueError):
        egomcq_accuracy(SCORES, ANSWERS, [1, 1, 3, 1])
    with pytest.raises(ValueError):
        egomcq_accuracy(SCORES, ANSWERS[:3], TYPES)
