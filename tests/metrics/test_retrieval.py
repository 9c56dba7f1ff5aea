from __future__ import annotations

import math

import numpy as np
import pytest

from egokit.metrics import mir_map, mir_ndcg


def test_ndcg_official_toy_golden_value() -> None:
    # Toy matrices of the `__main__` block of the official utils/nDCG.py, whose asserted value is 0.9371789900735429.
    sim = np.array([[1.0, 0.7, 0.4, 0.0], [0.3, 0.9, 0.6, 0.1], [0.2, 0.5, 0.8, 0.4]])
    rel = np.array([[1.0, 0.5, 0.25, 0.0], [0.0, 1.0, 0.4, 0.0], [0.5, 0.3, 1.0, 0.0]])
    assert mir_ndcg(sim, rel)["v2t"] == pytest.approx(0.9371789900735429, rel=1e-15, abs=0)


def test_ndcg_truncates_at_number_of_relevant_items() -> None:
    # Row: ranking gives relevances [0, 0.5, 1]; K = 2 relevant items -> DCG = 0/log2(2) + 0.5/log2(3).
    # Ideal order [1, 0.5] -> IDCG = 1 + 0.5/log2(3). The third rank (relevance 1) is outside K and ignored.
    sim = np.array([[0.9, 0.5, 0.1]])
    rel = np.array([[0.0, 0.5, 1.0]])
    expected = (0.5 / math.log2(3)) / (1.0 + 0.5 / math.log2(3))
    assert mir_ndcg(sim, rel)["v2t"] == pytest.approx(expected, rel=1e-12)


def test_ndcg_row_without_relevant_item_is_nan() -> None:
    sim = np.array([[0.9, 0.1], [0.2, 0.8]])
    rel = np.array([[1.0, 0.0], [0.0, 0.0]])
    out = mir_ndcg(sim, rel)
    assert math.isnan(out["v2t"]) and math.isnan(out["avg"])
    assert math.isnan(out["t2v"])  # the second text column has no relevant video either


def test_map_graded_numerator_both_directions() -> None:
    sim = np.array([[0.2, 0.9], [0.3, 0.8]])
    rel = np.array([[1.0, 0.5], [0.0, 1.0]])
    # v2t row 0: ranked relevances [0.5, 1] -> hit at rank 2 with cumulative graded sum 1.5 -> AP 0.75
    #     row 1: ranked [1, 0] -> AP 1.                                                        v2t = 0.875
    # t2v row 0: sims [0.2, 0.3], rel [1, 0] -> ranked [0, 1] -> 1/2 = 0.5
    #     row 1: sims [0.9, 0.8], rel [0.5, 1] -> ranked [0.5, 1] -> 1.5/2 = 0.75                t2v = 0.625
    out = mir_map(sim, rel)
    assert out == pytest.approx({"v2t": 0.875, "t2v": 0.625, "avg": 0.75})


def test_map_uses_graded_not_binary_precision() -> None:
    # Ranked relevances [0.5, 1, 0, 1]: hits at ranks 2 and 4, graded cumsums 1.5 and 2.5
    # -> AP = (1.5/2 + 2.5/4) / 2 = 0.6875 (a binary-precision AP would be (1/2 + 2/4) / 2 = 0.5).
    sim = np.array([[0.9, 0.8, 0.7, 0.6]])
    rel = np.array([[0.5, 1.0, 0.0, 1.0]])
    assert mir_map(sim, rel)["v2t"] == pytest.approx(0.6875)


def test_map_only_exact_one_is_relevant_and_nan_rows() -> None:
    sim = np.array([[0.9, 0.1], [0.2, 0.8]])
    rel = np.array([[1.0, 0.5], [0.5, 0.99]])  # row 1 has no item of relevance exactly 1
    out = mir_map(sim, rel)
    assert math.isnan(out["v2t"]) and math.isnan(out["t2v"]) and math.isnan(out["avg"])


def test_shape_mismatch() -> None:
    with pytest.raises(ValueError):
        mir_map(np.zeros((2, 3)), np.zeros((3, 2)))
