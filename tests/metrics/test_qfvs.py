from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from egokit.errors import DataError
from egokit.metrics import load_qfvs_tags, qfvs_f1
from egokit.metrics.qfvs import shot_concept_iou

TAGS = Path(__file__).resolve().parents[1] / "fixtures" / "qfvs" / "Tags.mat"


@pytest.fixture(scope="module")
def tags() -> list[np.ndarray]:
    return load_qfvs_tags(TAGS)


def test_load_real_tags(tags: list[np.ndarray]) -> None:
    assert [t.shape for t in tags] == [(2783, 48), (3692, 48), (2152, 48), (3588, 48)]
    assert set(np.unique(np.concatenate(tags)).tolist()) == {0, 1}
    assert np.flatnonzero(tags[0][1]).tolist() == [6, 16, 18, 22, 28]


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_qfvs_tags(tmp_path / "missing.mat")


def test_hand_computed_small_case() -> None:
    shots = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1], [1, 1, 1, 0]])
    # weights (pred 0, 2 x gt 1, 3, 2): [[1/3, 2/3, 0], [0, 0, 1]] -> best matching 2/3 + 1 = 5/3
    out = qfvs_f1([0, 2], [1, 3, 2], shots)
    assert out == pytest.approx({"precision": 5 / 6, "recall": 5 / 9, "f1": 2 / 3})


def test_empty_concept_rows_have_zero_iou() -> None:
    assert shot_concept_iou(np.zeros((1, 3)), np.zeros((2, 3))).tolist() == [[0.0, 0.0]]


def test_identical_summaries(tags: list[np.ndarray]) -> None:
    shots = [1, 39, 99, 31, 778]
    assert qfvs_f1(shots, shots, tags[0]) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_official_example(tags: list[np.ndarray]) -> None:
    # `__main__` of the official semantic_evaluation.py (video 0). Concept sets from Tags.mat, pred vs GT:
    # 1 {6,16,18,22,28} = 1 -> 1;  39 {8,13,24,25,27,28} vs 34 {9,18,24,25,27,28} -> 4/8;
    # 99 {11,13,14,16,18,22,28} vs 101 {14,16,18,22,28} -> 5/7;  31 {5,8,13,14,18,25,27,28,43} vs 29 {6,9,16,28,36,43}
    # -> 2/13;  778 {16,18,36,39} vs 774 {16,18,27,28,39,47} -> 3/7.  Matched weight 509/182, over 5 shots = 509/910
    # (the official networkx code prints 0.5593406593406594 for all three).
    out = qfvs_f1([1, 39, 99, 31, 778], [1, 34, 101, 29, 774], tags[0])
    assert out == pytest.approx({"precision": 509 / 910, "recall": 509 / 910, "f1": 509 / 910}, rel=1e-12)


def test_disjoint_concepts_give_zero_and_nan(tags: list[np.ndarray]) -> None:
    # Shots 2 {25,26,27,28} and 0 {6,16,28,33} share no concept with shot 2000 {11,22,36}: every weight is 0, the
    # official code gets numpy 0.0 precision and recall and 0/0 = NaN F1.
    video = tags[0]
    assert not (video[[0, 2]] & video[2000]).any()
    out = qfvs_f1([2, 0], [2000], video)
    assert out["precision"] == 0.0 and out["recall"] == 0.0 and math.isnan(out["f1"])


def _brute_force_max_weight(w: np.ndarray) -> float:
    """Maximum over *all* matchings (any size) by enumeration: row i takes column choice[i] or nothing (-1)."""
    m, n = w.shape
    best = 0.0
    for choice in itertools.product(range(-1, n), repeat=m):
        used = [c for c in choice if c >= 0]
        if len(used) == len(set(used)):
            best = max(best, sum(w[i, c] for i, c in enumerate(choice) if c >= 0))
    return best


def test_assignment_equals_brute_force_max_weight_matching() -> None:
    rng = np.random.default_rng(0)
    for _ in range(60):
        m, n = rng.integers(1, 5, size=2)
        shots = (rng.random((m + n, 6)) < 0.4).astype(np.uint8)
        pred, gt = list(range(m)), list(range(m, m + n))
        expected = _brute_force_max_weight(shot_concept_iou(shots[pred], shots[gt]))
        out = qfvs_f1(pred, gt, shots)
        assert out["precision"] * m == pytest.approx(expected, abs=1e-12)
        assert out["recall"] * n == pytest.approx(expected, abs=1e-12)


def test_rejects_bad_indices() -> None:
    with pytest.raises(ValueError):
        qfvs_f1([0, 5], [1], np.eye(3))
    with pytest.raises(ValueError):
        qfvs_f1([], [1], np.eye(3))
